"""Issue 13: every bad input a user can give gets one clear line (exit 1), never a wrong answer.

One test (or one parametrised row) per row of the issue's table, plus the sweep's findings.
Each CLI row checks: exit code 1, one line, the file or key named, nothing already written changed.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from pipeline.cli import cli
from pipeline.config import load_config
from pipeline.config.schema import CarvanaData
from pipeline.data import imageio, open_dataset
from pipeline.errors import PipelineError
from pipeline.model import checkpoint
from pipeline.review.server import BadRequest, decode_image
from tests.conftest import write_config

ROOT = Path(__file__).resolve().parents[1]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones included) and its bytes."""
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def one_line_error(args: list[str], folder: Path, *named: str) -> str:
    """Run the CLI; assert exit 1, a one-line message naming ``named``, and ``folder`` unchanged."""
    before = snapshot(folder)
    result = CliRunner().invoke(cli, args)
    out = result.output.strip()
    assert result.exit_code == 1, out
    assert out.count("\n") == 0 and out.startswith("Error: "), out
    assert "Traceback" not in out and "Aborted" not in out
    for name in named:
        assert name in out, (name, out)
    assert snapshot(folder) == before
    return out


@pytest.fixture()
def carvana_copy(tiny_carvana, tmp_path) -> Path:
    root = tmp_path / "carvana"
    shutil.copytree(tiny_carvana, root)
    return root


# ---- row 1: GIF masks are read through their palette -------------------------------------------
def _gif(indices: np.ndarray, colours: list[tuple[int, int, int]]) -> bytes:
    img = Image.fromarray(indices.astype(np.uint8), mode="P")
    img.putpalette([v for c in colours for v in c] + [0, 0, 0] * (256 - len(colours)))
    buf = io.BytesIO()
    img.save(buf, format="GIF")
    return buf.getvalue()


def _truth(shape: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    mask[10:40, 20:70] = 1
    return mask


@pytest.mark.parametrize("case, greys", [("inverted palette", 0), ("grey 128 edge", 50)])
def test_gif_mask_read_through_its_palette(carvana_copy, case, greys):
    ds = open_dataset(CarvanaData(name="c", root=str(carvana_copy)))
    sample = ds.train[0]
    truth = _truth(ds.image_size(sample))
    if (
        case == "inverted palette"
    ):  # index 0 = white, 1 = black: looks right, indices say the opposite
        indices, colours = 1 - truth, [(255, 255, 255), (0, 0, 0)]
    else:  # black/white plus one anti-aliased grey row, as index 2
        indices, colours = truth.copy(), [(0, 0, 0), (255, 255, 255), (128, 128, 128)]
        indices[9, 20:70] = 2
    sample.mask_path.write_bytes(_gif(indices, colours))
    assert np.array_equal(
        np.asarray(Image.open(sample.mask_path)), indices
    )  # what the old reader returned
    expected = truth.copy()
    if greys:
        expected[9, 20:70] = 1  # grey 128 > 127: foreground
    assert np.array_equal(ds.read_mask(sample), expected)
    assert ds.greyed.get(sample.image_id, 0) == greys


def test_gif_mask_with_a_colour_is_one_line(carvana_copy, tmp_path):
    ds = open_dataset(CarvanaData(name="c", root=str(carvana_copy)))
    sample = ds.train[0]
    sample.mask_path.write_bytes(_gif(_truth(ds.image_size(sample)), [(0, 0, 0), (255, 0, 0)]))
    cfg = write_config(
        tmp_path / "c.yaml",
        f"name: c\ndataset: {{layout: carvana, name: c, root: {carvana_copy}}}\n",
    )
    os.chdir(tmp_path)
    one_line_error(
        ["folds", str(cfg)], carvana_copy, sample.mask_path.name, "colour pixels", "rgb(255, 0, 0)"
    )
    assert not (tmp_path / "folds").exists()


@pytest.mark.parametrize(
    "values, expected, greys, error",
    [
        ([0, 1], [0, 1], 0, None),
        ([0, 255], [0, 1], 0, None),
        ([0, 100, 128, 255], [0, 0, 1, 1], 2, None),
        ([0, 1, 255], None, 0, "mixes values 1 and 255"),
        ([0, 2], None, 0, r"mask values \[0, 2\]"),
    ],
)
def test_binary_grey_rule(values, expected, greys, error):
    grey = np.array([values], np.uint8)
    if error:
        with pytest.raises(PipelineError, match=error):
            imageio.binarize_grey(grey, "m.png")
        return
    mask, counted = imageio.binarize_grey(grey, "m.png")
    assert mask.tolist() == [expected] and counted == greys


# ---- row 2: images decode to 8-bit RGB from every mode (readers and serve alike) ----------------
def _encoded(mode: str) -> tuple[bytes, np.ndarray]:
    """An image of ``mode`` holding grey levels 0..220, and the 8-bit RGB it must decode to."""
    grey8 = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    expected = np.repeat(grey8[..., None], 3, axis=2)
    if mode == "I;16":
        img, fmt = Image.fromarray(grey8.astype(np.uint16) * 257), "PNG"
    elif mode == "F":
        img, fmt = Image.fromarray(grey8.astype(np.float32) / 255), "TIFF"
    elif mode == "CMYK":
        img, fmt = Image.fromarray(expected).convert("CMYK"), "TIFF"
    else:
        img, fmt = Image.fromarray(expected).convert(mode), "PNG"
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue(), expected


@pytest.mark.parametrize("mode", ["I;16", "F", "L", "LA", "RGBA", "CMYK", "RGB"])
def test_every_mode_decodes_to_rgb8(mode, tmp_path):
    data, expected = _encoded(mode)
    got = decode_image(data, "a.img")
    assert got.dtype == np.uint8 and got.shape == (3, 4, 3)
    assert np.abs(got.astype(int) - expected).max() <= 1, (mode, got[..., 0])
    path = tmp_path / "a.img"
    path.write_bytes(data)
    assert np.array_equal(imageio.read_rgb(path), got)


def test_unconvertible_upload_is_a_400():
    buf = io.BytesIO()
    Image.fromarray(np.full((3, 4), 7.5, np.float32)).save(buf, format="TIFF")
    with pytest.raises(
        BadRequest, match=r"field 'image' \(x.tif\): float image values span 7.5"
    ) as info:
        decode_image(buf.getvalue(), "x.tif")
    assert info.value.status == 400


# ---- rows 3-8: pipeline validate ---------------------------------------------------------------
@pytest.fixture()
def subs(tiny_carvana, tmp_path) -> Path:
    """A folder with a good submission (every row "1 1") and a copy of the sample CSV."""
    folder = tmp_path / "subs"
    folder.mkdir()
    shutil.copy(tiny_carvana / "sample_submission.csv", folder / "sample.csv")
    shutil.copy(tiny_carvana / "sample_submission.csv", folder / "good.csv")
    return folder


def _past_last_pixel(subs: Path) -> Path:
    text = (subs / "good.csv").read_text().splitlines()
    image_id = text[1].split(",")[0]
    bad = subs / "past.csv"
    bad.write_text(
        "\n".join([text[0], f"{image_id},6140 10", *text[2:]]) + "\n"
    )  # 96x64 = 6144 pixels
    return bad


def test_validate_without_size_cannot_check_bounds(subs):
    bad = _past_last_pixel(subs)
    one_line_error(
        ["validate", str(bad), "--sample", str(subs / "sample.csv")], subs, str(bad), "--size"
    )


def test_validate_without_size_uses_the_sidecar_dataset(subs, tiny_carvana):
    bad = _past_last_pixel(subs)
    run_config = write_config(
        subs / "run.yaml", f"name: t\ndataset: {{layout: carvana, name: t, root: {tiny_carvana}}}\n"
    )
    (subs / "past.json").write_text(
        json.dumps({"format": "carvana", "run_config": str(run_config)})
    )
    before = snapshot(subs)
    result = CliRunner().invoke(cli, ["validate", str(bad), "--sample", str(subs / "sample.csv")])
    assert result.exit_code == 1 and snapshot(subs) == before
    last = result.output.strip().splitlines()[
        -1
    ]  # each violation is listed, then the one-line verdict
    assert (
        last.startswith(f"Error: {bad}: 1 problem(s)") and "ends past the last pixel (6144)" in last
    )
    result = CliRunner().invoke(
        cli, ["validate", str(bad)]
    )  # sidecar alone: same dataset, same verdict
    assert result.exit_code == 1 and "ends past" in result.output


@pytest.mark.parametrize(
    "case, content, named",
    [
        ("gzip named .csv", lambda good: gzip.compress(good), "gzip-compressed but named .csv"),
        ("corrupt gzip", lambda good: gzip.compress(good)[:40], "truncated or corrupt gzip"),
        ("plain named .gz", lambda good: good, "not gzip-compressed but named .gz"),
        ("not UTF-8", lambda good: good.replace(b"img,", "ímg,".encode("latin-1")), "not UTF-8"),
        ("zero bytes", lambda good: b"", "file is empty"),
    ],
)
def test_validate_unreadable_submission(subs, case, content, named):
    name = "sub.csv.gz" if case in ("corrupt gzip", "plain named .gz") else "sub.csv"
    path = subs / name
    path.write_bytes(content((subs / "good.csv").read_bytes()))
    one_line_error(
        ["validate", str(path), "--sample", str(subs / "sample.csv"), "--size", "96x64"],
        subs,
        str(path),
        named,
    )


def test_validate_reads_a_byte_order_mark(subs):
    path = subs / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + (subs / "good.csv").read_bytes())
    (subs / "sample.csv").write_bytes(b"\xef\xbb\xbf" + (subs / "sample.csv").read_bytes())
    result = CliRunner().invoke(
        cli, ["validate", str(path), "--sample", str(subs / "sample.csv"), "--size", "96x64"]
    )
    assert result.exit_code == 0, result.output


def test_bom_in_dataset_csvs(carvana_copy):
    for name in ("sample_submission.csv", "train_masks.csv"):
        path = carvana_copy / name
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    shutil.rmtree(carvana_copy / "train_masks")  # masks from train_masks.csv
    ds = open_dataset(CarvanaData(name="c", root=str(carvana_copy)))
    assert ds.read_mask(ds.train[0]).any() and ds.test


@pytest.mark.parametrize("missing", ["nosuch.csv", "nosuch.csv.gz"])
def test_validate_missing_file(subs, missing):
    one_line_error(["validate", str(subs / missing)], subs, str(subs / missing), "file not found")


def test_validate_missing_sample(subs):
    one_line_error(
        ["validate", str(subs / "good.csv"), "--sample", str(subs / "nope.csv"), "--size", "96x64"],
        subs,
        str(subs / "nope.csv"),
        "not found",
    )


def test_validate_broken_sidecar(subs):
    (subs / "good.json").write_text("{not json")
    one_line_error(["validate", str(subs / "good.csv")], subs, str(subs / "good.json"), "sidecar")


# ---- rows 6, 9, 10: config errors name the file and the --set ----------------------------------
@pytest.mark.parametrize(
    "case, files, overrides, named",
    [
        ("not UTF-8", {"c.yaml": "name: caf\xe9\n".encode("latin-1")}, [], ["c.yaml", "not UTF-8"]),
        ("zero bytes", {"c.yaml": b""}, [], ["c.yaml", "missing required key"]),
        (
            "missing base",
            {"c.yaml": b"base: nope.yaml\nname: c\n"},
            [],
            ["c.yaml", "base: nope.yaml", "not found"],
        ),
        (
            "mistake in a base",
            {
                "b.yaml": (
                    b"name: c\ndataset: {layout: carvana, name: c, root: x}\nfolds: {kk: 3}\n"
                ),
                "c.yaml": b"base: b.yaml\n",
            },
            [],
            ["b.yaml", "folds.kk"],
        ),
        (
            "--set",
            {"c.yaml": b"name: c\ndataset: {layout: carvana, name: c, root: x}\n"},
            ["folds.kk=3"],
            ["--set folds.kk=3", "unknown key 'folds.kk'"],
        ),
        (
            "--set wrong type",
            {"c.yaml": b"name: c\ndataset: {layout: carvana, name: c, root: x}\n"},
            ["folds.k=abc"],
            ["--set folds.k=abc", "folds.k"],
        ),
    ],
)
def test_config_errors_name_the_source(tmp_path, case, files, overrides, named):
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    args = ["config", str(tmp_path / "c.yaml")] + [a for o in overrides for a in ("--set", o)]
    out = one_line_error(args, tmp_path, *named)
    if case == "mistake in a base":
        assert "c.yaml" not in out


def test_config_value_from_the_top_file_names_it(tmp_path):
    (tmp_path / "b.yaml").write_text(
        "name: c\ndataset: {layout: carvana, name: c, root: x}\nfolds: {k: 3}\n"
    )
    (tmp_path / "c.yaml").write_text("base: b.yaml\nfolds: {k: abc}\n")
    with pytest.raises(PipelineError, match=r"c.yaml: key 'folds.k'") as info:
        load_config(tmp_path / "c.yaml")
    assert "b.yaml" not in str(info.value)


# ---- row 11: a killed writer's temp file is removed by the next write ---------------------------
_KILLED_WRITER = """
import sys, time
from pipeline.fsio import atomic_open
with atomic_open(sys.argv[1], "wb") as fh:
    fh.write(b"x" * 100_000)
    fh.flush()
    print("writing", flush=True)
    time.sleep(60)
"""


def test_killed_checkpoint_write_leaves_no_temp_behind(tmp_path):
    path = tmp_path / "fold0" / "last.pt"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(path)], stdout=subprocess.PIPE, env=env
    )
    assert proc.stdout.readline().strip() == b"writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stale = [p.name for p in path.parent.iterdir()]
    assert len(stale) == 1 and stale[0].startswith(".last.pt.") and stale[0].endswith(".tmp")
    legacy = (
        path.parent / ".last.pt.abcd1234.tmp"
    )  # an older version's name (no pid), two hours old
    legacy.write_bytes(b"x")
    os.utime(legacy, (time.time() - 7200,) * 2)
    keep = path.parent / ".notes.tmp"  # not a temp name of ours
    keep.write_text("mine")
    checkpoint.save(path, {"epoch": 1})
    assert sorted(p.name for p in path.parent.iterdir()) == [".notes.tmp", "last.pt"]
    assert checkpoint.load(path)["epoch"] == 1


def test_live_writers_temp_is_kept(tmp_path):
    from pipeline.fsio import remove_stale_temps

    live = tmp_path / f".a.csv.{os.getppid()}.abcd1234.tmp"
    live.write_text("x")
    assert remove_stale_temps(tmp_path) == [] and live.exists()


# ---- the sweep: zero-byte, truncated, wrong-encoding and wrong-kind files elsewhere -------------
@pytest.mark.parametrize(
    "content, message",
    [
        (None, "file not found"),
        (b"", "unreadable JSON"),
        (b'{"a": 1', "unreadable JSON"),
        (b'{"a": "caf\xe9"}', "unreadable JSON"),
        (b"[1, 2]", "expected a JSON object, found list"),
    ],
)
def test_read_json(tmp_path, content, message):
    from pipeline.fsio import read_json

    path = tmp_path / "thresholds.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(PipelineError, match=message) as info:
        read_json(path, "rerun 'pipeline tune'")
    assert str(path) in str(info.value) and "rerun 'pipeline tune'" in str(info.value)
    if content is None:
        assert read_json(path, optional=True) == {}


@pytest.mark.parametrize("manifest", [b"", b"\xff\xfe{}", b"[]"])
def test_store_info_on_a_bad_manifest(tmp_path, manifest):
    store = tmp_path / "oof"
    store.mkdir()
    (store / "manifest.json").write_bytes(manifest)
    one_line_error(["store", "info", str(store)], tmp_path, str(store / "manifest.json"))


@pytest.mark.parametrize(
    "which, content, named",
    [
        ("json", b"", "not valid JSON"),
        ("json", b'{"images": "caf\xe9"}', "not valid JSON"),
        ("json", b"[]", "expected a JSON object"),
        (
            "sheet",
            "source,source_id,source_name,class\ncoco,1,,caf\xe9\n".encode("latin-1"),
            "save it as a UTF-8 CSV",
        ),
        ("sheet", b"", "header"),
    ],
)
def test_import_annotations_bad_files(tmp_path, which, content, named):
    from tests.test_annotations import SHEET

    (tmp_path / "images").mkdir()
    (tmp_path / "labels.csv").write_text(SHEET, encoding="utf-8")
    (tmp_path / "coco.json").write_text(
        json.dumps({"images": [], "annotations": [], "categories": []})
    )
    bad = tmp_path / ("coco.json" if which == "json" else "labels.csv")
    bad.write_bytes(content)
    one_line_error(
        [
            "import-annotations",
            str(tmp_path / "coco.json"),
            "--format",
            "coco",
            "--images",
            str(tmp_path / "images"),
            "--out",
            str(tmp_path / "out"),
            "--label-map",
            str(tmp_path / "labels.csv"),
            "--classes",
            "background,person,vehicle",
        ],
        tmp_path,
        str(bad),
        named,
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "content, error",
    [
        (b"\xef\xbb\xbfsource,class\n0,background\n1,foreground\n", None),  # Excel's BOM is read
        (b"source,class\n0,backgr\xf6und\n", "save it as a UTF-8 CSV"),
    ],
)
def test_folder_label_map_csv_encoding(tmp_path, content, error):
    from pipeline.config.schema import FolderData
    from tests.conftest import make_folder_dataset

    root = make_folder_dataset(tmp_path / "data")
    (tmp_path / "map.csv").write_bytes(content)
    cfg = FolderData(
        name="f", root=str(root), mask_mode="index", label_map=str(tmp_path / "map.csv")
    )
    if error:
        with pytest.raises(PipelineError, match=error) as info:
            open_dataset(cfg)
        assert "map.csv" in str(info.value)
    else:
        ds = open_dataset(cfg)
        assert set(np.unique(ds.read_mask(ds.train[0]))) <= {0, 1}


def test_zero_byte_video_is_one_line(tmp_path):
    from pipeline.stages.video import open_video

    (tmp_path / "in.mp4").write_bytes(b"")
    with pytest.raises(PipelineError, match=r"in.mp4: unreadable video"):
        open_video(tmp_path / "in.mp4")
