import numpy as np
import pytest
from PIL import Image

from pipeline.config.schema import CityscapesData, Comma10kData, FolderData
from pipeline.data import open_dataset
from pipeline.data.labelmaps import CITYSCAPES_TRAIN_CLASSES, cityscapes_map, csv_id_map
from pipeline.data.palette import COMMA10K_COLORS, COMMA10K_PALETTE, Palette, parse_color
from pipeline.errors import PipelineError
from pipeline.ops.metrics import (
    confusion_matrix,
    cross_entropy_sum,
    iou_per_class,
    mean_iou,
    pixel_accuracy,
)
from tests.conftest import save_png

# comma10k's README, written out here (not read from the code's table): colour -> 0-based class id
COMMA10K_TRUTH = [
    ("#402020", 0, "road"),
    ("#ff0000", 1, "lane_markings"),
    ("#808060", 2, "undrivable"),
    ("#00ff66", 3, "movable"),
    ("#cc00ff", 4, "my_car"),
    ("#00ccff", 5, "movable_in_my_car"),
]


TRUTH_RGB = np.array(
    [[int(h[i : i + 2], 16) for i in (1, 3, 5)] for h, _, _ in COMMA10K_TRUTH], np.uint8
)


def test_every_comma10k_colour_is_pinned_to_its_class_id():
    rgb = TRUTH_RGB[None]
    ids, snapped = COMMA10K_PALETTE.decode(rgb)
    assert ids.tolist() == [[cid for _, cid, _ in COMMA10K_TRUTH]] and snapped == 0
    np.testing.assert_array_equal(COMMA10K_PALETTE.encode(ids), rgb)
    assert list(COMMA10K_COLORS) == [name for _, _, name in COMMA10K_TRUTH]


def test_palette_round_trip():
    ids = np.random.default_rng(0).integers(0, 6, (7, 9)).astype(np.uint8)
    rgb = COMMA10K_PALETTE.encode(ids)
    back, snapped = COMMA10K_PALETTE.decode(rgb)
    np.testing.assert_array_equal(back, ids)
    assert snapped == 0


def test_unknown_colour_names_file_colour_and_count():
    rgb = COMMA10K_PALETTE.encode(np.zeros((4, 5), np.uint8))
    rgb[0, :3] = (70, 30, 30)  # an anti-aliased road edge
    with pytest.raises(
        PipelineError, match=r"m\.png: 3 pixels .*#461e1e \(3 px\).*snap_to_palette"
    ):
        COMMA10K_PALETTE.decode(rgb, "m.png")


def test_snap_to_palette_counts_changed_pixels():
    rgb = COMMA10K_PALETTE.encode(np.full((4, 5), 3, np.uint8))
    rgb[1, 1] = (250, 5, 5)  # nearest: lane markings (255, 0, 0)
    rgb[2, 2] = (10, 250, 100)  # nearest: movable
    ids, snapped = COMMA10K_PALETTE.decode(rgb, "m.png", snap=True)
    assert snapped == 2 and ids[1, 1] == 1 and ids[2, 2] == 3


@pytest.mark.parametrize(
    "text, rgb",
    [
        ("#402020", (64, 32, 32)),
        ("00ff66", (0, 255, 102)),
        ("1 2 3", (1, 2, 3)),
        ("4,5,6", (4, 5, 6)),
    ],
)
def test_parse_color(text, rgb):
    assert parse_color(text) == rgb


def test_cityscapes_label_maps():
    train = cityscapes_map("trainids")
    assert len(train.classes) == 19 and train.ignore_index == 255
    # road, sidewalk, car, unlabeled / person, bicycle, sky, parking
    raw = np.array([[7, 8, 26, 0], [24, 33, 23, 9]], np.uint8)
    np.testing.assert_array_equal(train.apply(raw, "x"), [[0, 1, 13, 255], [11, 18, 10, 255]])
    assert CITYSCAPES_TRAIN_CLASSES[13] == "car"
    cats = cityscapes_map("categories")
    np.testing.assert_array_equal(cats.apply(raw, "x"), [[1, 1, 7, 0], [6, 7, 5, 1]])
    with pytest.raises(PipelineError, match="label values 40"):
        train.apply(np.array([[40]], np.uint8), "lbl.png")


def test_csv_label_map(tmp_path):
    path = tmp_path / "map.csv"
    path.write_text("source,class\n0,background\n1,car\n2,car\n255,ignore\n")
    m = csv_id_map(path, ["background", "car"], 255)
    np.testing.assert_array_equal(
        m.apply(np.array([[0, 1, 2, 255]], np.uint8), "x"), [[0, 1, 1, 255]]
    )
    path.write_text("source,class\n0,bg\n")
    with pytest.raises(PipelineError, match="line 2: class 'bg'"):
        csv_id_map(path, ["background", "car"], None)


@pytest.mark.parametrize(
    "pred, target, expected_iou, acc",
    [
        ([[0, 1], [1, 1]], [[0, 1], [1, 1]], [1.0, 1.0], 1.0),
        ([[0, 0], [1, 1]], [[0, 1], [1, 1]], [0.5, 2 / 3], 0.75),
        ([[1, 1], [1, 1]], [[1, 1], [1, 1]], [np.nan, 1.0], 1.0),
    ],
)
def test_iou_truth_table(pred, target, expected_iou, acc):
    cm = confusion_matrix(np.array(pred), np.array(target), 2)
    np.testing.assert_allclose(iou_per_class(cm), expected_iou)
    assert mean_iou(cm) == pytest.approx(np.nanmean(expected_iou)) and pixel_accuracy(cm) == acc


def test_ignore_pixels_and_ce_truth_table():
    target = np.array([[0, 1, 255]])
    cm = confusion_matrix(np.array([[1, 1, 0]]), target, 2, ignore_index=255)
    assert cm.sum() == 2
    probs = np.array([[[0.5, 0.25, 0.9]], [[0.5, 0.75, 0.1]]])
    total, count = cross_entropy_sum(probs, target, ignore_index=255)
    assert count == 2 and total == pytest.approx(-np.log(0.5) - np.log(0.75))


def _comma10k(root, colours_of):
    for i, ids in enumerate(colours_of):
        name = f"000{i}_abcdef0123456789_2018-08-19--13-26-08_11_86{i}.png"
        save_png(root / "imgs" / name, np.zeros((*ids.shape, 3), np.uint8))
        rgba = np.concatenate([TRUTH_RGB[ids], np.full((*ids.shape, 1), 255, np.uint8)], -1)
        save_png(root / "masks" / name, rgba)  # comma10k ships RGBA masks too
    return root


def test_comma10k_reader_rgba_and_snap(tmp_path):
    ids = np.array([[0, 1, 2], [3, 4, 5]], np.uint8)
    root = _comma10k(tmp_path / "c", [ids, ids])
    ds = open_dataset(Comma10kData(name="c", root=str(root)))
    assert len(ds.train) == 2 and ds.train[0].group == "abcdef0123456789_2018-08-19--13-26-08"
    np.testing.assert_array_equal(ds.read_mask(ds.train[0]), ids)
    mask_path = ds.train[1].mask_path
    rgb = np.array(Image.open(mask_path).convert("RGB"))
    rgb[0, 0] = (70, 30, 30)
    save_png(mask_path, rgb)
    with pytest.raises(PipelineError, match="#461e1e"):
        ds.read_mask(ds.train[1])
    snapping = open_dataset(Comma10kData(name="c", root=str(root), snap_to_palette=True))
    assert snapping.read_mask(snapping.train[1])[0, 0] == 0 and snapping.snapped == {
        snapping.train[1].image_id: 1
    }


def test_folder_colour_mode_with_label_map(tmp_path):
    root = tmp_path / "f"
    save_png(root / "images" / "a_1.png", np.zeros((2, 3, 3), np.uint8))
    save_png(
        root / "masks" / "a_1.png",
        Palette([(0, 0, 0), (255, 0, 0), (0, 0, 255)]).encode(
            np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
        ),
    )
    (tmp_path / "map.csv").write_text("source,class\n#000000,bg\n#ff0000,thing\n0 0 255,thing\n")
    ds = open_dataset(
        FolderData(
            name="f",
            root=str(root),
            mask_mode="colour",
            classes=["bg", "thing", "other"],
            label_map=str(tmp_path / "map.csv"),
        )
    )
    np.testing.assert_array_equal(ds.read_mask(ds.train[0]), [[0, 1, 1], [1, 1, 0]])


def test_cityscapes_reader(tmp_path):
    root = tmp_path / "cs"
    for split, city, frame in [
        ("train", "aachen", "000000_000019"),
        ("val", "bonn", "000001_000020"),
    ]:
        stem = f"{city}_{frame}"
        save_png(
            root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png",
            np.zeros((4, 6, 3), np.uint8),
        )
        save_png(
            root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png",
            np.full((4, 6), 26, np.uint8),
        )
    save_png(
        root / "leftImg8bit" / "test" / "berlin" / "berlin_000000_000019_leftImg8bit.png",
        np.zeros((4, 6, 3), np.uint8),
    )
    ds = open_dataset(CityscapesData(name="cs", root=str(root)))
    assert [s.group for s in ds.train] == ["aachen_000000", "bonn_000001"] and len(ds.test) == 1
    assert (
        (ds.read_mask(ds.train[0]) == 13).all() and ds.num_classes == 19 and ds.ignore_index == 255
    )
    cats = open_dataset(CityscapesData(name="cs", root=str(root), label_map="categories"))
    assert (cats.read_mask(cats.train[0]) == 7).all()
    (root / "leftImg8bit" / "train" / "aachen" / "aachen_000000_000019_leftImg8bit.png").unlink()
    with pytest.raises(PipelineError, match="mask without image"):
        open_dataset(CityscapesData(name="cs", root=str(root)))
