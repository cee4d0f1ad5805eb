import re
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from pipeline.data.splits import holdout_assign
from pipeline.data.synthetic.driving import CLASSES, PALETTE, random_drive, render_scene
from pipeline.data.synthetic.driving_objects import random_cars
from pipeline.data.synthetic.driving_paint import LANE_MARKINGS, MOVABLE, MY_CAR, ROAD, UNDRIVABLE
from pipeline.errors import PipelineError
from pipeline.stages.driving_data import FRAMES_PER_DRIVE, DrivingSpec, mask_to_rgb, write_driving

TINY = (96, 64)  # width, height: non-square on purpose
# the group regex of the comma10k reader config: dongle id + route
GROUP = re.compile(r"^\d+_([0-9a-f]+_[0-9-]+--[0-9-]+)")
NAME = re.compile(r"^\d{4}_[0-9a-f]{16}_\d{4}-\d\d-\d\d--\d\d-\d\d-\d\d_\d+_\d+\.png$")


def _frames(seed: int, n: int, size=TINY, **kwargs):
    rng = np.random.default_rng(seed)
    return [render_scene(rng, size, **kwargs) for _ in range(n)]


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_class_constants_follow_comma10k():
    assert CLASSES == ["road", "lane_markings", "undrivable", "movable", "my_car"]
    assert (ROAD, LANE_MARKINGS, UNDRIVABLE, MOVABLE, MY_CAR) == (0, 1, 2, 3, 4)
    assert PALETTE[0] == (0x40, 0x20, 0x20) and PALETTE[4] == (0xCC, 0x00, 0xFF)
    assert mask_to_rgb(np.arange(5, dtype=np.uint8)[None]).tolist() == [
        [list(PALETTE[k]) for k in range(5)]
    ]


@pytest.mark.parametrize("size", [(96, 64), (64, 96), (32, 24), (33, 25), (582, 437)])
def test_any_size_gives_matching_image_and_mask(size):
    ((image, mask),) = _frames(0, 1, size)
    assert image.shape == (size[1], size[0], 3) and image.dtype == np.uint8
    assert mask.shape == (size[1], size[0]) and mask.dtype == np.uint8
    assert set(np.unique(mask)) <= set(range(len(CLASSES)))


def test_too_small_size_is_refused():
    with pytest.raises(PipelineError, match="width must be"):
        render_scene(np.random.default_rng(0), (16, 16))


def test_every_class_appears_and_sits_where_a_dashcam_sees_it():
    frames = _frames(1, 12)
    height, width = TINY[1], TINY[0]
    assert set(np.unique(np.stack([m for _, m in frames]))) == set(range(5))
    for _, mask in frames:
        assert {ROAD, UNDRIVABLE, MY_CAR} <= set(np.unique(mask))  # in every frame
        assert (mask[0] == UNDRIVABLE).all()  # sky or buildings at the top
        assert (mask[-1] == MY_CAR).all() and not (
            mask[: int(0.6 * height)] == MY_CAR
        ).any()  # hood at the bottom
        assert not np.isin(
            mask[: int(0.36 * height)], [ROAD, LANE_MARKINGS]
        ).any()  # road only below the horizon
        hood_top = np.flatnonzero(mask[:, width // 2] == MY_CAR)[0]
        assert hood_top > 0.6 * height and (mask[hood_top:, width // 2] == MY_CAR).all()
        assert mask[hood_top - 2, width // 2] in (
            ROAD,
            LANE_MARKINGS,
            MOVABLE,
        )  # our lane (or a car in it)
        assert (mask == LANE_MARKINGS).mean() < 0.05  # lane lines are thin


def test_lane_markings_are_common_but_not_everywhere():
    has_lanes = [(mask == LANE_MARKINGS).any() for _, mask in _frames(2, 24)]
    assert 12 <= sum(has_lanes)


def test_cars_shrink_towards_the_horizon():
    rng = np.random.default_rng(3)
    size, rows = (240, 160), []
    for _ in range(16):
        drive = replace(
            random_drive(rng), town=False, curve=0.0
        )  # no people: one component = one car
        _, mask = render_scene(rng, size, drive, cars=1)
        ys = np.flatnonzero((mask == MOVABLE).any(1))
        if len(ys):
            rows.append((ys[-1] + 1 - drive.horizon * size[1], ys[-1] - ys[0] + 1))
    below, height = np.array(rows).T  # car bottom below the horizon (px) and car height (px)
    assert len(rows) >= 12 and np.ptp(below) > 10
    assert np.corrcoef(below, height)[0, 1] > 0.9
    # pinhole: height / (bottom - horizon) = roof height / camera height (1.15..1.56), give or take
    # a pixel of pitch shake and rounding at each end
    big = below >= 8
    assert big.sum() >= 8 and np.all(
        (height[big] / below[big] > 0.9) & (height[big] / below[big] < 2.0)
    )


def test_some_cars_are_painted_close_to_the_road():
    road = (90.0, 90.0, 92.0)
    rng, gaps = np.random.default_rng(4), []
    for _ in range(50):
        cars = random_cars(rng, 4, [-3.5, 0.0, 3.5], road)
        assert [c.z for c in cars] == sorted(
            (c.z for c in cars), reverse=True
        )  # far first: painter's order
        gaps += [np.abs(np.subtract(c.paint, road)).max() for c in cars]
    assert len(gaps) == 200 and 0.15 < np.mean(np.array(gaps) < 30) < 0.5


def test_image_edges_are_antialiased_but_mask_edges_are_not():
    image, mask = _frames(5, 1, (192, 128))[0]
    edge = (
        cv2.morphologyEx(
            (mask == ROAD).astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)
        )
        > 0
    )
    assert edge.any() and set(np.unique(mask[edge])) <= set(range(5))
    assert (
        len(np.unique(image.reshape(-1, 3), axis=0)) > 1000
    )  # textures, blends and noise, not flat fills


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    spec = DrivingSpec(frames=5, size=TINY, seed=7, test_frames=2)
    write_driving(tmp_path / "a", spec)
    write_driving(tmp_path / "b", spec)
    write_driving(tmp_path / "c", replace(spec, seed=8))
    a, b, c = (_files(tmp_path / x) for x in "abc")
    assert a == b and len(a) == 5 * 2 + 2
    assert a.keys() != c.keys() or a != c


def test_comma10k_layout(tmp_path):
    info = write_driving(tmp_path / "d", DrivingSpec(frames=9, size=TINY, seed=0, test_frames=3))
    assert info == {
        "train": 9,
        "test": 3,
        "drives": 4,
        "layout": "comma10k",
        "root": str(tmp_path / "d"),
    }
    imgs = sorted((tmp_path / "d" / "imgs").iterdir())
    assert [p.name for p in imgs] == sorted(p.name for p in (tmp_path / "d" / "masks").iterdir())
    assert len(imgs) == 9 and len(list((tmp_path / "d" / "test_imgs").iterdir())) == 3
    assert all(NAME.match(p.name) for p in imgs)
    groups = [GROUP.match(p.name).group(1) for p in imgs]
    assert sorted(groups.count(g) for g in set(groups)) == [1, FRAMES_PER_DRIVE, FRAMES_PER_DRIVE]
    palette = {tuple(c) for c in PALETTE.values()}
    seen = set()
    for path in imgs:
        with Image.open(tmp_path / "d" / "masks" / path.name) as im:
            assert im.mode == "RGB" and im.size == TINY
            colours = {tuple(c) for c in np.unique(np.asarray(im).reshape(-1, 3), axis=0).tolist()}
        assert colours <= palette  # exact colours: no anti-aliased in-betweens
        seen |= colours
    assert seen == palette


def test_folder_layout_has_class_id_masks(tmp_path):
    write_driving(
        tmp_path / "d", DrivingSpec(frames=8, size=(64, 48), seed=2, layout="folder", test_frames=1)
    )
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["images", "masks", "test"]
    values = set()
    for path in sorted((tmp_path / "d" / "masks").iterdir()):
        with Image.open(path) as im:
            assert im.mode == "L" and im.size == (64, 48)
            values |= set(np.unique(np.asarray(im)).tolist())
        assert (tmp_path / "d" / "images" / path.name).is_file()
    assert values == set(range(5))


def test_comma10k_holdout_rule_takes_whole_drives(tmp_path):
    write_driving(tmp_path / "d", DrivingSpec(frames=40, size=(32, 24), seed=0))
    names = sorted(p.name for p in (tmp_path / "d" / "imgs").iterdir())
    groups = [GROUP.match(n).group(1) for n in names]
    rows = holdout_assign([n[:-4] for n in names], names, groups, [0.0] * len(names), "*9.png")
    held = [r for r in rows if r.fold == 0]
    assert len(held) == FRAMES_PER_DRIVE and len({r.group for r in held}) == 1


def test_refuses_to_overwrite_a_non_empty_folder(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "keep.txt").write_text("x")
    with pytest.raises(PipelineError, match="not empty"):
        write_driving(tmp_path / "d", DrivingSpec(frames=1, size=TINY))
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["keep.txt"]
    write_driving(
        tmp_path / "empty", DrivingSpec(frames=1, size=TINY)
    )  # an empty or new folder is fine


@pytest.mark.parametrize(
    "spec, message",
    [
        (DrivingSpec(size=(16, 16)), "width must be"),
        (DrivingSpec(frames=0), "--frames"),
        (DrivingSpec(test_frames=-1), "--test-frames"),
        (DrivingSpec(layout="cityscapes"), "comma10k"),
    ],
)
def test_bad_specs_are_refused(tmp_path, spec, message):
    with pytest.raises(PipelineError, match=message):
        write_driving(tmp_path / "d", spec)
    assert not (tmp_path / "d").exists()
