"""See the results: overlay panels and grids (show), prediction QA with planted failures,
run report."""

import contextlib
import csv
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from pipeline.cli import cli
from pipeline.config import load_config
from pipeline.config.schema import EnsembleConfig
from pipeline.data.palette import COMMA10K_COLORS
from pipeline.data.synthetic.cars import random_car, render_view
from pipeline.decide.decision import (
    Decision,
    MulticlassDecision,
    applied_decision,
    read_decision,
    write_decision,
)
from pipeline.decide.store import ProbStore
from pipeline.errors import PipelineError
from pipeline.ops.fusion import fuse
from pipeline.paths import Layout
from pipeline.review import html
from pipeline.review.overlay import (
    BINARY_COLOUR,
    FN_COLOUR,
    FP_COLOUR,
    class_colours,
    compose_row,
    error_map,
    grid,
    overlay,
    uncertainty,
)
from pipeline.review.sources import open_source
from pipeline.review.suspicion import ImageQA, QAConfig, add_area_z, agreement, assess, summary_line
from pipeline.stages.demo_data import DemoSpec, write_demo
from pipeline.stages.driving_data import DrivingSpec, write_driving
from pipeline.stages.qa import run_qa
from pipeline.stages.report import run_report
from pipeline.stages.show import run_show
from tests.conftest import copy_project, tiny_train_config

RUN = "tiny_64x96"
# image value of the hand-made cases: dimmed 40, blended with 255 -> 177.5 -> 178 (round half even)
GREY = 100


# ---- overlay truth tables ------------------------------------------------------------------------
def test_binary_overlay_and_error_colours_are_exact():
    image = np.full((2, 3, 3), GREY, np.uint8)
    truth = np.array([[1, 1, 0], [0, 0, 1]], np.uint8)  # TP, FN, FP / TN, TN, TP
    pred = np.array([[1, 0, 1], [0, 0, 1]], np.uint8)
    errors = error_map(image, pred, truth)
    assert tuple(errors[0, 0]) == (40, 40, 40)  # TP: dimmed image
    assert tuple(errors[0, 1]) == FN_COLOUR == (0, 0, 255)
    assert tuple(errors[0, 2]) == FP_COLOUR == (255, 0, 0)
    assert tuple(errors[1, 0]) == (40, 40, 40)  # TN: dimmed image
    drawn = overlay(image, truth, class_colours(2), skip=0)
    assert tuple(drawn[0, 0]) == (50, 178, 50) and BINARY_COLOUR == (
        0,
        255,
        0,
    )  # 0.5 image + 0.5 green
    assert tuple(drawn[0, 2]) == (GREY, GREY, GREY)  # background untouched


def test_multiclass_errors_wrong_class_red_missed_blue_ignore_untouched():
    image = np.full((1, 5, 3), GREY, np.uint8)
    truth = np.array([[0, 1, 2, 255, 0]], np.uint8)
    pred = np.array(
        [[0, 2, 0, 1, 1]], np.uint8
    )  # correct, wrong class, missed, ignored, false positive
    errors = error_map(image, pred, truth, background=0, ignore_index=255)
    assert [tuple(p) for p in errors[0]] == [
        (40, 40, 40),
        FP_COLOUR,
        FN_COLOUR,
        (40, 40, 40),
        FP_COLOUR,
    ]
    colours = np.array([(10, 20, 30), (200, 0, 0), (0, 200, 0)], np.uint8)
    drawn = overlay(image, truth, colours)  # every class painted; 255 (ignore) left alone
    assert [tuple(p) for p in drawn[0]] == [
        (55, 60, 65),
        (150, 50, 50),
        (50, 150, 50),
        (GREY,) * 3,
        (55, 60, 65),
    ]


@pytest.mark.parametrize(
    "probs, expected",
    [([[0, 255, 128, 127]], [0, 0, 254, 254]), ([[255, 85], [0, 85], [0, 85]], [0, 255])],
)
def test_uncertainty_is_zero_when_sure_and_high_at_a_coin_toss(probs, expected):
    probs = np.array(probs, np.uint8)[:, None, :]
    assert uncertainty(probs)[0].tolist() == expected


def test_rows_of_any_image_size_are_scaled_to_one_width():
    small, wide = np.zeros((64, 96, 3), np.uint8), np.zeros((30, 200, 3), np.uint8)
    rows = [compose_row([small, small], "a", 1200), compose_row([wide, wide, wide], "b", 1200)]
    assert {r.shape[1] for r in rows} == {1200}
    assert grid(rows, ["x", "y"]).shape[1] == 1200


# ---- QA components -------------------------------------------------------------------------------
def test_agreement_dice_for_binary_and_miou_for_multiclass():
    a = np.array([[1, 1, 0, 0]], np.uint8)
    assert agreement([a], 2) is None
    assert agreement([a, a], 2) == 1.0
    assert agreement([a, np.array([[1, 0, 0, 0]], np.uint8)], 2) == pytest.approx(2 / 3)
    m = np.array([[0, 1, 2, 2]], np.uint8)
    assert agreement([m, m, m], 3) == 1.0
    assert agreement([m, np.array([[0, 1, 2, 1]], np.uint8)], 3) == pytest.approx(
        (1 + 0.5 + 0.5) / 3
    )


def test_area_outlier_needs_a_group_of_three_and_view_effects_spare_front_views():
    rows = [
        ImageQA(f"c{g}_{v}", f"c{g}", None, area * (3 if (g, v) == (1, 2) else 1), None)
        for g in range(4)
        for v, area in enumerate([0.1, 0.3, 0.3, 0.3, 0.28])
    ]
    rows.append(ImageQA("lone_1", "lone", None, 0.9, None))
    add_area_z(rows, QAConfig())
    by_id = {r.image_id: r for r in rows}
    assert by_id["lone_1"].area_z is None  # a group of one has nothing to compare with
    assert (
        abs(by_id["c0_0"].area_z) > 3.5
    )  # without view effects a front view looks odd beside side views
    add_area_z(rows, QAConfig(), {r.image_id: r.image_id[-1] for r in rows})
    z = {r.image_id: r.area_z for r in rows}
    assert z["c1_2"] > 3.5 and all(abs(v) < 1 for k, v in z.items() if k not in ("c1_2", "lone_1"))
    assert by_id["c1_2"].expected == pytest.approx(0.3, rel=0.05)


# ---- synthetic ensembles (no training) -----------------------------------------------------------
def demo_masks(spec: DemoSpec) -> dict[str, np.ndarray]:
    """The masks ``write_demo`` rendered, test cars included
    (it draws from one rng in this order)."""
    rng = np.random.default_rng(spec.seed)
    cars = [random_car(rng) for _ in range(spec.cars + spec.test_cars)]
    return {
        f"{car.car_id}_{view + 1:02d}": render_view(car, view, spec.views, spec.size, rng)[1]
        for car in cars
        for view in range(spec.views)
    }


def degrade(mask: np.ndarray, k: int) -> np.ndarray:
    """(1, h, w) uint8 probabilities of a model that is ``k`` px off to the side with edges blurred
    by ``k``."""
    probs = np.roll(mask, k, axis=1).astype(np.float32) * 223 + 16
    return np.clip(np.round(cv2.GaussianBlur(probs, (0, 0), 0.6 + 0.8 * k)), 0, 255).astype(
        np.uint8
    )[None]


def write_store(
    path: Path, split: str, classes: list[str], probs: dict[str, np.ndarray], weights=None
) -> None:
    header = {
        "run": path.parent.name,
        "split": split,
        "folds": [0, 1],
        "tta": "none",
        "classes": classes,
        "resolution": "original",
        "checkpoints": weights or {},
    }
    store = ProbStore.create(path, header)
    for image_id, p in probs.items():
        store.write(image_id, p)
    store.finalize([(i, *p.shape[1:]) for i, p in probs.items()])


def write_ensemble(
    work: Path,
    config_text: str,
    classes: list[str],
    members: list[dict[str, np.ndarray]],
    oof: list[dict[str, np.ndarray]],
    name: str = "qa-ens",
) -> Layout:
    """Runs m0.. with test (``members``) and OOF (``oof``) stores, and ensemble ``name`` with their
    fused stores, equal weights, threshold 0.5, no clean-up."""
    layout = Layout(work)
    runs = [f"m{k}" for k in range(len(members))]
    for run, test, train in zip(runs, members, oof, strict=True):
        (layout.run_dir(run)).mkdir(parents=True)
        (layout.run_dir(run) / "config.yaml").write_text(config_text)
        write_store(layout.run_dir(run) / "test", "test", classes, test)
        write_store(layout.run_dir(run) / "oof", "oof", classes, train)
    folder = layout.ensemble_dir(name)
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(config_text)
    (folder / "ensemble.yaml").write_text(
        f"name: {name}\nmembers: [{', '.join(f'{{run: {r}}}' for r in runs)}]\n"
        "threshold: 0.5\nmin_area: 0\ncleanup: false\nworkers: 0\n"
    )
    weights = {r: {"weight": 1 / len(runs)} for r in runs}
    for split, stores in (("test", members), ("oof", oof)):
        fused = {i: fuse([m[i] for m in stores], [1.0] * len(stores)) for i in stores[0]}
        write_store(folder / split, split, classes, fused, weights)
    decision = Decision(0.5, 0, False) if len(classes) == 2 else MulticlassDecision("argmax")
    write_decision(layout.ensemble(name), decision, "ensemble")  # what 'pipeline ensemble' leaves
    return layout


def grow(mask: np.ndarray, factor: float) -> np.ndarray:
    """Dilate until the area is at least ``factor`` times the original."""
    out, target = mask.copy(), factor * mask.sum()
    while out.sum() < target:
        out = cv2.dilate(out, np.ones((3, 3), np.uint8))
    return out


def demo_ensemble(
    work: Path, test_k, oof_empty: bool = False, members: int = 2, plant_flags: bool = False
) -> dict:
    """6 train cars and 3 test cars x 4 views (96x64). OOF image n is ``degrade``d by 0-3 px (one
    empty with ``oof_empty``), so features and Dice move together; test image i by
    ``test_k(i, car)``. ``plant_flags``: member m1 empty on DISAGREE,
    every member 3x the area on BIG."""
    spec = DemoSpec(cars=6, views=4, test_cars=3, size=(96, 64), seed=5)
    write_demo(work / "data", spec)
    masks = demo_masks(spec)
    config_text = tiny_train_config(work / "tiny.yaml", work / "data").read_text()
    tests = sorted(p.stem for p in (work / "data" / "test").glob("*.jpg"))
    train = sorted(p.stem for p in (work / "data" / "train").glob("*.jpg"))
    cars = sorted({t[:-3] for t in tests})
    disagree = f"{cars[0]}_02"
    big = min((i for i in tests if i.startswith(cars[1])), key=lambda i: masks[i].sum())
    m0 = {
        i: degrade(
            grow(masks[i], 3.0) if plant_flags and i == big else masks[i],
            test_k(i, cars.index(i[:-3])),
        )
        for i in tests
    }
    oof0 = {
        i: degrade(masks[i], (n + n // 4) % 4) for n, i in enumerate(train)
    }  # every k in every car and view
    if oof_empty:
        oof0[train[0]] = degrade(
            np.zeros_like(masks[train[0]]), 0
        )  # one empty prediction: all missed
    tests_by_member, oof_by_member = [m0], [oof0]
    if members > 1:
        m1 = {i: np.roll(p, 1, axis=2) for i, p in m0.items()}
        if plant_flags:
            m1[disagree] = np.full_like(m0[disagree], 5)
        tests_by_member.append(m1)
        oof_by_member.append({i: np.roll(p, 1, axis=2) for i, p in oof0.items()})
    layout = write_ensemble(
        work, config_text, ["background", "car"], tests_by_member, oof_by_member
    )
    gif = np.array(Image.open(work / "data" / "train_masks" / f"{train[1]}_mask.gif"))
    assert (gif == masks[train[1]]).all()  # demo_masks reproduces write_demo
    return {
        "layout": layout,
        "disagree": disagree,
        "big": big,
        "tests": tests,
        "train": train,
        "cars": cars,
    }


@pytest.fixture(scope="module")
def carvana_ensemble(tmp_path_factory):
    """Two members; planted hard failures: member m1 empty on DISAGREE, all members 3x on BIG."""
    return demo_ensemble(
        tmp_path_factory.mktemp("qa"), lambda i, car: 0, oof_empty=True, plant_flags=True
    )


def read_csv(path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_qa_ranks_flagged_images_first_and_writes_csv_and_html(carvana_ensemble):
    layout, disagree, big = (
        carvana_ensemble["layout"],
        carvana_ensemble["disagree"],
        carvana_ensemble["big"],
    )
    out = run_qa(layout, "qa-ens", top=4)
    rows = read_csv(out["csv"])
    assert len(rows) == 12 and [r["image_id"] for r in rows[:2]] == [disagree, big]
    assert "disagreement" in rows[0]["flags"] and float(rows[0]["member_dice"]) == 0.0
    assert (
        "empty" in rows[0]["flags"] and float(rows[0]["estimate"]) < 0.5
    )  # fused map below 0.5 everywhere
    assert rows[1]["flags"] == "area_outlier" and float(rows[1]["area_z"]) > 3.5
    assert all(r["flags"] == "" for r in rows[2:])
    assert float(rows[2]["member_dice"]) > 0.9 and int(rows[2]["components"]) == 1
    assert [float(r["estimate"]) for r in rows[2:]] == sorted(
        float(r["estimate"]) for r in rows[2:]
    )
    assert (
        out["flagged"] == 2
        and out["counts"]["disagreement"] == 1
        and out["counts"]["area_outlier"] >= 1
    )
    assert re.match(
        rf"QA: 2 of 12 test images flagged \(.*1 member disagreement.*\); worst {disagree} \(.+\); "
        r"worst group \S+ \(est. Dice 0\.\d{4}\); estimated test Dice 0\.\d{4} ± 0\.\d{4} — "
        r"see .*qa/index.html$",
        out["line"],
    )
    page = Path(out["html"]).read_text()
    for src in re.findall(r'<img src="([^"]+)"', page):
        assert (Path(out["html"]).parent / src).is_file()
    assert (
        f"001_{disagree}.png" in page
        and "Flagged by a hard rule" in page
        and "Worst groups first" in page
    )
    assert "members disagree" in page and "http" not in page
    oof = read_csv(Path(out["csv"]).parent / "oof.csv")
    assert len(oof) == 24 and float(oof[0]["score"]) == 0.0 and "empty" in oof[0]["flags"]


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """No hard failure; BROKEN (the smallest view of car 0) is 3 px off and blurred,
    every view of car 1 2 px off."""

    def test_k(image_id: str, car: int) -> int:
        return 3 if (car, image_id[-2:]) == (0, "02") else 2 if car == 1 else 0

    work = tmp_path_factory.mktemp("planted")
    return {
        "two": demo_ensemble(work / "two", test_k),
        "one": demo_ensemble(work / "one", test_k, members=1),
    }


@pytest.mark.parametrize("members", ["two", "one"])
def test_a_planted_broken_image_and_a_planted_broken_group_rank_first(planted, members):
    case = planted[members]
    out = run_qa(case["layout"], "qa-ens", top=6)
    rows = read_csv(out["csv"])
    assert not any(r["flags"] for r in rows)
    assert rows[0]["image_id"] == f"{case['cars'][0]}_02"
    assert {r["image_id"][:-3] for r in rows[1:5]} == {
        case["cars"][1]
    }  # then the broken car's four views
    groups = read_csv(Path(out["csv"]).parent / "groups.csv")
    assert [g["group"] for g in groups] == [case["cars"][1], case["cars"][0], case["cars"][2]]
    assert out["groups"][0]["group"] == case["cars"][1] and out["groups"][0]["reasons"]
    calibration = json.loads((Path(out["csv"]).parent / "calibration.json").read_text())
    assert ("estimator" in calibration) and (
        ("disagreement" in calibration["estimator"]["features"]) == (members == "two")
    )
    assert calibration["oof"]["spearman"] > 0.8  # the planted relation is learnt across cars
    assert abs(calibration["oof"]["estimated_mean"] - calibration["oof"]["true_mean"]) < 0.01
    board = out["estimate"]
    assert (
        board["low"] < board["mean"] < board["high"]
        and board["groups"] == 3
        and board["metric"] == "Dice"
    )
    assert board["mean"] == pytest.approx(np.mean([float(r["estimate"]) for r in rows]))


def test_qa_estimates_are_reproducible(planted):
    layout = planted["two"]["layout"]
    folder = Path(run_qa(layout, "qa-ens", top=2)["csv"]).parent
    first = {
        name: (folder / name).read_bytes()
        for name in ("qa.csv", "groups.csv", "oof.csv", "calibration.json")
    }
    run_qa(layout, "qa-ens", top=2, workers=1)
    assert {name: (folder / name).read_bytes() for name in first} == first


def test_show_worst_oof_and_random_test_of_an_ensemble(carvana_ensemble, tmp_path):
    layout = carvana_ensemble["layout"]
    out = run_show(layout, ensemble="qa-ens", worst=3, out=tmp_path / "worst.png")
    assert (
        out["images"][0] == carvana_ensemble["train"][0] and out["scores"][out["images"][0]] == 0.0
    )
    assert list(out["scores"].values()) == sorted(out["scores"].values())
    picture = np.array(Image.open(tmp_path / "worst.png"))
    assert picture.shape[1] == 1200
    assert (picture == FP_COLOUR).all(-1).sum() > 100 and (picture == FN_COLOUR).all(-1).sum() > 100
    test = run_show(layout, ensemble="qa-ens", random=2, split="test", seed=3)
    assert (
        Path(test["path"]).name == "test_random2.png"
        and len(test["images"]) == 2
        and Path(test["path"]).is_file()
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"worst": 2, "split": "test"}, "--worst"),
        ({"ids": ["nope_01"]}, "no image 'nope_01'"),
        ({"worst": 2, "random": 2}, "exactly one"),
    ],
)
def test_show_rejects_bad_requests(carvana_ensemble, kwargs, message):
    with pytest.raises(PipelineError, match=message):
        run_show(carvana_ensemble["layout"], ensemble="qa-ens", **kwargs)


def test_multiclass_qa_uses_miou_agreement_and_palette(tmp_path):
    """One member predicts 'my_car' everywhere on one frame: mIoU agreement 0, flagged first;
    estimates are mIoU."""
    write_driving(tmp_path / "data", DrivingSpec(frames=6, test_frames=8, size=(96, 64), seed=2))
    config_text = (
        f"name: drive\ndataset: {{layout: comma10k, name: drive, root: {tmp_path / 'data'}, "
        "test_dir: test_imgs}\nmodel: {arch: Unet, encoder: resnet18}\n"
    )
    tests = sorted(p.stem for p in (tmp_path / "data" / "test_imgs").glob("*.png"))
    train = sorted(p.stem for p in (tmp_path / "data" / "imgs").glob("*.png"))
    label = np.zeros((64, 96), np.uint8)
    label[:20], label[40:55, 30:60] = 2, 3
    probs = np.where(np.arange(6)[:, None, None] == label, 230, 5).astype(np.uint8)
    m1 = {i: probs for i in tests}
    m1[tests[5]] = np.where(np.arange(6)[:, None, None] == np.full_like(label, 4), 230, 5).astype(
        np.uint8
    )
    oof = {
        i: cv2.GaussianBlur(probs.transpose(1, 2, 0), (0, 0), 0.5 + n).transpose(2, 0, 1)
        for n, i in enumerate(train)
    }
    layout = write_ensemble(
        tmp_path,
        config_text,
        ["road", "lane_markings", "undrivable", "movable", "my_car", "movable_in_my_car"],
        [{i: probs for i in tests}, m1],
        [oof, oof],
    )
    out = run_qa(layout, "qa-ens", top=2)
    first = read_csv(out["csv"])[0]
    assert (
        first["image_id"] == tests[5]
        and "disagreement" in first["flags"]
        and first["components"] == ""
    )
    assert "band:my_car" in first and out["estimate"]["metric"] == "mIoU"
    assert "mean pairwise mIoU" in Path(out["html"]).read_text()
    oof_rows = read_csv(Path(out["csv"]).parent / "oof.csv")
    assert len(oof_rows) == 6 and all(0 <= float(r["score"]) <= 1 for r in oof_rows)
    assert (
        tuple(open_source(layout.ensemble("qa-ens")).colours()[2]) == COMMA10K_COLORS["undrivable"]
    )
    shown = run_show(layout, ensemble="qa-ens", ids=[tests[0], tests[5]], split="test")
    assert shown["images"] == [tests[0], tests[5]] and Path(shown["path"]).name == "test_ids2.png"


def test_qa_limits_are_checked():
    with pytest.raises(PipelineError, match="min_agreement = 1.5: must be in"):
        QAConfig(min_agreement=1.5)


def test_ensemble_decision_uses_tuned_values_only_where_the_config_says_tune(tmp_path):
    (tmp_path / "ensemble.yaml").write_text(
        "name: e\nmembers: [{run: a}]\nthreshold: tune\nmin_area: 50\n"
    )
    fixed = load_config(tmp_path / "ensemble.yaml", schema=EnsembleConfig)
    tuned = {"threshold": 0.4, "min_area": 9, "cleanup": True}
    assert applied_decision(tuned, False, fixed) == Decision(0.4, 50.0, True)
    assert applied_decision(tuned, False) == Decision(0.4, 9.0, True)


def test_decision_json_round_trips_and_untuned_runs_use_the_default(tmp_path):
    layout = Layout(tmp_path)
    run, ensemble = layout.run("r"), layout.ensemble("e")
    assert read_decision(run, multiclass=False) == Decision(0.5, 0.0, False)
    assert read_decision(run, multiclass=True) == MulticlassDecision("argmax")
    with pytest.raises(PipelineError, match="decision.json: not found; rerun 'pipeline ensemble'"):
        read_decision(ensemble, multiclass=False)
    for folder, decision in (
        (run, Decision(0.42, 7.0, True)),
        (ensemble, MulticlassDecision("threshold", (0.5, 0.3, 0.6), (0.0, 10.0, 0.0))),
    ):
        write_decision(folder, decision, "test")
        assert (
            read_decision(folder, multiclass=isinstance(decision, MulticlassDecision)) == decision
        )
    with pytest.raises(PipelineError, match="a multi-class decision for a binary task"):
        read_decision(ensemble, multiclass=False)
    run.thresholds().write_text(
        "{}"
    )  # tuned before decision.json existed: say so, do not fall back to 0.5
    run.decision().unlink()
    with pytest.raises(
        PipelineError, match="tuned before decision.json existed; rerun 'pipeline tune --run r'"
    ):
        read_decision(run, multiclass=False)


def test_summary_line_without_flags():
    rows = assess([ImageQA("a_01", "a", 0.99, 0.2, 1)])
    assert summary_line(rows, "x/index.html") == "QA: 0 of 1 test images flagged — see x/index.html"


# ---- a trained run: show + report ----------------------------------------------------------------
@pytest.fixture(scope="module")
def predicted(tiny_project, tmp_path_factory):
    """tiny_project with OOF/test stores and tuned thresholds of its run."""
    work = copy_project(tiny_project, tmp_path_factory.mktemp("show") / "work")
    with contextlib.chdir(work):
        for args in (
            ["predict", "tiny.yaml", "--split", "oof", "--tta", "none"],
            ["tune", "--run", RUN],
        ):
            result = CliRunner().invoke(cli, args)
            assert result.exit_code == 0, result.output
    return work


def test_show_and_report_of_a_trained_run(predicted):
    layout = Layout(predicted)
    shown = run_show(layout, run=RUN, worst=2)
    assert Path(shown["path"]) == layout.run_dir(RUN) / "show" / "oof_worst2.png"
    assert Image.open(shown["path"]).size[0] == 1200 and len(shown["scores"]) == 2
    (layout.fold_dir(RUN, 1) / "curve.png").unlink()
    path = run_report(layout, RUN)
    page = path.read_text()
    assert (
        path == layout.run_dir(RUN) / "report.html"
        and (layout.fold_dir(RUN, 1) / "curve.png").is_file()
    )
    for src in re.findall(r'<img src="([^"]+)"', page):
        assert (path.parent / src).is_file(), src
    assert {
        "fold0/curve.png",
        "fold1/curve.png",
        "threshold_curve.png",
        "show/oof_worst2.png",
    } <= set(re.findall(r'<img src="([^"]+)"', page))
    assert (
        "all (OOF)" in page
        and "Threshold tuning" in page
        and "<script" not in page
        and "http" not in page
    )


def test_report_escapes_names_from_the_artifacts(tmp_path):
    """Run, class and note text are data: a '<' in them shows as text, never becomes markup."""
    layout, run = Layout(tmp_path), "r<i>1"
    run_dir = layout.run(run)
    run_dir.path.mkdir(parents=True)
    run_dir.config().write_text("name: x\n")
    channel = {"class": "<script>car", "threshold": 0.42, "min_area": 0}
    run_dir.thresholds().write_text(json.dumps({"channels": [channel]}))
    run_dir.predict_report().write_text(
        json.dumps(
            {
                "oof": {"images": 3, "score": 0.9, "score_plain": 0.8},
                "notes": ["a<b & c"],
                "tta": "flip",
            }
        )
    )
    page = run_report(layout, run).read_text()
    assert "<title>Run r&lt;i&gt;1</title>" in page and "<h1>Run r&lt;i&gt;1</h1>" in page
    assert "<td>&lt;script&gt;car</td><td>0.4200</td>" in page and "note: a&lt;b &amp; c" in page
    assert "<script" not in page and "<i>" not in page
    assert "<td>all (OOF)</td><td>3</td><td>0.8000</td><td>0.9000</td><td>+0.1000</td>" in page


def test_html_fragments_escape_their_text():
    assert html.paragraph("a<b", "muted") == '<p class="muted">a&lt;b</p>'
    assert html.table(["x<"], [[None, 0.5]]) == (
        "<table><tr><th>x&lt;</th></tr>\n<tr><td>-</td><td>0.5000</td></tr>\n</table>"
    )
    assert html.image('a"b.png', "<x>") == (
        '<a href="a&#34;b.png"><img src="a&#34;b.png" alt="&lt;x&gt;" loading="lazy"></a>'
    )
    page = html.page("T<", [html.heading("h&")])
    assert (
        page.startswith("<!DOCTYPE html>")
        and "<h1>T&lt;</h1>" in page
        and "<h2>h&amp;</h2>" in page
    )


def test_report_of_an_untrained_or_unknown_run(tiny_project, tmp_path):
    work = copy_project(tiny_project, tmp_path / "work")
    page = run_report(Layout(work), RUN).read_text()
    assert "no predict_report.json yet" in page and "no thresholds.json yet" in page
    with pytest.raises(PipelineError, match="run 'nope' not found"):
        run_report(Layout(work), "nope")
