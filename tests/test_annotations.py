"""Annotation import: polygon rasterisation, COCO RLE, label map, COCO/VIA converters, the stage."""

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from pipeline.config.schema import FolderData
from pipeline.data import open_dataset
from pipeline.data.annotations.coco_rle import string_to_counts
from pipeline.data.annotations.parse import (
    coco_rle_decode,
    coco_rle_encode,
    coco_to_masks,
    load_label_map,
    rasterize_polygon,
    via_to_masks,
)
from pipeline.errors import PipelineError
from pipeline.stages.import_annotations import run_import

H, W = 10, 12  # non-square on purpose: catches x/y and row/column-major mix-ups
CLASSES = ["background", "person", "vehicle"]
SHEET = """source,source_id,source_name,class,note
coco,1,,person,by id
coco,,car,vehicle,by name
via,,walker,person,
via,,truck,vehicle,
"""
SQUARE = [(2, 2), (6, 2), (6, 6), (2, 6)]


def box(y0, y1, x0, x1, value=1, shape=(H, W)):
    """Mask with ``value`` on rows y0..y1-1, columns x0..x1-1."""
    mask = np.zeros(shape, np.uint8)
    mask[y0:y1, x0:x1] = value
    return mask


@pytest.fixture()
def label_map(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text(SHEET, encoding="utf-8")
    return load_label_map(path, CLASSES)


# ---- polygons -----------------------------------------------------------------------------------


@pytest.mark.parametrize("points", [SQUARE, SQUARE[::-1], SQUARE[2:] + SQUARE[:2]])
def test_square_fills_exactly_its_16_pixels(points):
    assert np.array_equal(rasterize_polygon(points, H, W), box(2, 6, 2, 6))


def test_triangle_follows_the_pixel_centre_rule():
    # centre (x+.5, y+.5) inside x + y < 4  <=>  x + y < 3; centres on the hypotenuse (x + y == 3)
    # lie on a right edge and stay out (half-open rule)
    expected = np.array([[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0], [0] * 5], np.uint8)
    assert np.array_equal(rasterize_polygon([(0, 0), (4, 0), (0, 4)], 4, 5), expected)
    # a thin sliver between pixel centres covers nothing; a diamond covers the centres it contains
    assert not rasterize_polygon([(0, 0.1), (12, 0.1), (12, 0.4)], H, W).any()
    diamond = rasterize_polygon([(5, 1.3), (7.7, 4), (5, 6.7), (2.3, 4)], H, W)
    yy, xx = np.mgrid[:H, :W] + 0.5
    assert np.array_equal(diamond, (np.abs(xx - 5) + np.abs(yy - 4) < 2.7).astype(np.uint8))


def _pnpoly(points, height, width):
    """Brute-force even-odd test of every pixel centre (the classic PNPOLY loop)."""
    out = np.zeros((height, width), np.uint8)
    for y in range(height):
        for x in range(width):
            px, py, inside = x + 0.5, y + 0.5, False
            for (xi, yi), (xj, yj) in zip(points, np.roll(points, 1, axis=0), strict=True):
                if (yi > py) != (yj > py) and px < (xj - xi) * (py - yi) / (yj - yi) + xi:
                    inside = not inside
            out[y, x] = inside
    return out


def test_random_polygons_match_a_brute_force_reference():
    rng = np.random.default_rng(0)
    for _ in range(30):  # self-intersecting and partly outside the image on purpose
        points = rng.uniform(-4, 16, (rng.integers(3, 9), 2))
        assert np.array_equal(rasterize_polygon(points, H, W), _pnpoly(points, H, W))


def test_shared_edges_and_outside_parts():
    left, right = [(1, 1), (9, 1), (1, 9)], [(9, 1), (9, 9), (1, 9)]  # the square's two halves
    halves = rasterize_polygon(left, H, W).astype(int) + rasterize_polygon(right, H, W)
    assert np.array_equal(halves, box(1, 9, 1, 9))  # every pixel claimed exactly once
    assert np.array_equal(
        rasterize_polygon([(-50, -50), (6, -50), (6, 3), (-50, 3)], H, W), box(0, 3, 0, 6)
    )
    assert not rasterize_polygon([(100, 100), (200, 100), (200, 200)], H, W).any()


# ---- COCO RLE -----------------------------------------------------------------------------------
# pycocotools decodes and encodes; these two plain transcriptions of cocoapi's maskApi.c are the
# independent references: the uncompressed counts of a mask (``rleEncode``) and their string form
# (``rleToString``), for counts far larger than any mask a test can build.


def mask_to_counts(mask):
    """Column-major run lengths of a mask, starting with a (possibly empty) zero run."""
    flat = np.asarray(mask).ravel(order="F") != 0
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
    return [0, *runs] if flat[0] else runs


def uncompressed(mask):
    return {"size": list(mask.shape), "counts": mask_to_counts(mask)}


def counts_to_string(counts):
    chars = []
    for i, count in enumerate(counts):
        x = count - counts[i - 2] if i > 2 else count
        more = True
        while more:
            c = x & 0x1F
            x >>= 5  # arithmetic shift, like C's on a signed long
            more = x != -1 if c & 0x10 else x != 0
            chars.append(chr((c | 0x20 if more else c) + 48))
    return "".join(chars)


HAND = [  # (mask, uncompressed counts, compressed string): column-major, zeros first
    (np.array([[0, 1], [1, 1], [0, 0]]), [1, 1, 1, 2, 1], "11110"),  # 3x2; 4th count delta 2-1 = 1
    (np.array([[0, 1, 1, 1, 1, 0, 1]]).T, [1, 4, 1, 1], "141M"),  # delta 1-4 = -3 -> 'M' (sign bit)
    (np.ones((1, 1)), [0, 1], "01"),  # a set first pixel starts with an empty zero run
    (np.zeros((5, 8)), [40], "X1"),  # 40 = 8 + 1*32: continuation char then '1'
    (np.zeros((4, 4)), [16], "`0"),  # 16 sets the sign bit, so it needs a second char
]


@pytest.mark.parametrize("mask,counts,text", HAND)
def test_coco_rle_hand_examples(mask, counts, text):
    h, w = mask.shape
    assert (
        mask_to_counts(mask) == counts and counts_to_string(counts) == text
    )  # the references agree
    assert coco_rle_encode(mask) == {"size": [h, w], "counts": text}
    assert string_to_counts(text).tolist() == counts
    for rle in (
        {"size": [h, w], "counts": counts},
        {"size": [h, w], "counts": text},
        {"size": [h, w], "counts": text.encode()},
    ):
        decoded = coco_rle_decode(rle, h, w)
        assert (
            decoded.dtype == np.uint8
            and decoded.flags.c_contiguous
            and np.array_equal(decoded, mask)
        )


@settings(max_examples=150, deadline=None)
@given(
    arrays(np.uint8, st.tuples(st.integers(1, 9), st.integers(1, 13)), elements=st.integers(0, 1))
)
def test_coco_rle_round_trips(mask):
    h, w = mask.shape
    encoded = coco_rle_encode(mask)
    assert encoded["counts"] == counts_to_string(mask_to_counts(mask))
    assert np.array_equal(coco_rle_decode(encoded, h, w), mask)
    assert np.array_equal(coco_rle_decode(uncompressed(mask), h, w), mask)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 2**31 - 1), max_size=12))
def test_compressed_counts_round_trip_large_values(counts):
    assert string_to_counts(counts_to_string(counts)).tolist() == counts


@pytest.mark.parametrize(
    "rle,match",
    [
        ({"size": [3, 3], "counts": [1, 1, 1, 2, 1]}, "differs from the image size"),
        ({"size": [3, 2], "counts": [1, 1, 1, 2]}, "cover 5 pixels"),
        (
            {"size": [3, 2], "counts": "1111"},
            "cover 5 pixels",
        ),  # pycocotools alone decodes this, padding with 0
        ({"size": [3, 2], "counts": "11114"}, "cover 10 pixels"),
        ({"size": [3, 2], "counts": [1, -1, 6]}, "negative"),
        ({"size": [3, 2], "counts": "11 10"}, "outside the allowed chars"),
        ({"size": [3, 2], "counts": "111X"}, "truncated"),
        ({"size": [3, 2], "counts": 11110}, "list of integers or a string"),
        ({"counts": "11110"}, "'size'"),
    ],
)
def test_coco_rle_errors(rle, match):
    with pytest.raises(ValueError, match=match):
        coco_rle_decode(rle, 3, 2)


# ---- label map ----------------------------------------------------------------------------------


def test_label_map_by_id_by_name_and_first_match(tmp_path, label_map):
    assert label_map.lookup("coco", 1, "anything") == 1  # by id
    assert label_map.lookup("coco", 99, "car") == 2  # by name
    assert label_map.lookup("via", None, "truck") == 2
    path = tmp_path / "first.csv"
    path.write_text(
        "class,source_name,source,source_id\nperson,car,,\nvehicle,,,\n", encoding="utf-8-sig"
    )
    sheet = load_label_map(path, CLASSES)  # any column order, Excel BOM, wildcard catch-all last
    assert sheet.lookup("x", 5, "car") == 1 and sheet.lookup("y", None, "bus") == 2


def test_unknown_category_names_it_its_source_and_the_sheet(label_map):
    with pytest.raises(PipelineError) as err:
        label_map.lookup("coco", 7, "bicycle", where="a.json: annotation id 3")
    msg = str(err.value)
    for part in (
        "labels.csv",
        "id 7",
        "'bicycle'",
        "source 'coco'",
        "annotation id 3",
        "id 1 -> person",
        "'car' -> vehicle",
        "coco,7,bicycle,<class>",
    ):
        assert part in msg
    assert "\n" not in msg


@pytest.mark.parametrize(
    "text,match",
    [
        (
            "source,source_id,source_name,class\ncoco,1,,cyclist\n",
            r"line 2: class 'cyclist' is not a project class",
        ),
        (
            "source,source_id,source_name,class\ncoco,one,,person\n",
            r"line 2: source_id 'one' is not an integer",
        ),
        ("source,id,class\ncoco,1,person\n", r"missing \['source_id', 'source_name'\]"),
        ("source,source_id,source_name,class\n", "no rows"),
    ],
)
def test_label_map_errors_name_the_row(tmp_path, text, match):
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PipelineError, match=match):
        load_label_map(path, CLASSES)


# ---- COCO ---------------------------------------------------------------------------------------


def coco_doc(annotations, images=None):
    images = images or [
        {"id": i + 1, "file_name": f"{n}.png", "height": H, "width": W}
        for i, n in enumerate("abcd")
    ]
    categories = [{"id": 1, "name": "human"}, {"id": 3, "name": "car"}]
    return {"images": images, "annotations": annotations, "categories": categories}


def flat(points):
    return [float(v) for p in points for v in p]


CROWD = box(0, 3, 0, 12)  # top three rows
COCO_ANNOTATIONS = [
    {"id": 10, "image_id": 1, "category_id": 1, "segmentation": [flat(SQUARE)], "iscrowd": 0},
    {
        "id": 11,
        "image_id": 1,
        "category_id": 3,
        "segmentation": [flat([(0, 0), (10, 0), (10, 8), (0, 8)])],
    },
    {"id": 12, "image_id": 2, "category_id": 3, "segmentation": uncompressed(CROWD), "iscrowd": 1},
    {"id": 13, "image_id": 3, "category_id": 1, "segmentation": coco_rle_encode(box(4, 9, 7, 11))},
]


def expected_coco_masks():
    a = box(0, 8, 0, 10, 2)
    a[2:6, 2:6] = 1  # the small person, listed first, stays on top of the larger car
    return {
        "a.png": a,
        "b.png": CROWD * 2,
        "c.png": box(4, 9, 7, 11),
        "d.png": np.zeros((H, W), np.uint8),
    }


def test_coco_polygons_rle_and_paint_order(label_map):
    masks = {
        name: (h, w, m)
        for name, h, w, m in coco_to_masks(coco_doc(COCO_ANNOTATIONS), "coco", label_map)
    }
    for name, mask in expected_coco_masks().items():
        h, w, got = masks[name]
        assert (h, w) == (H, W) and got.dtype == np.uint8 and np.array_equal(got, mask), name


def test_coco_crowd_value_and_multi_polygon_union(label_map):
    two = [flat([(0, 0), (2, 0), (2, 2), (0, 2)]), flat([(8, 6), (12, 6), (12, 10), (8, 10)])]
    anns = COCO_ANNOTATIONS[2:3] + [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": two}]
    masks = {
        n: m for n, _, _, m in coco_to_masks(coco_doc(anns), "coco", label_map, crowd_value=255)
    }
    assert np.array_equal(masks["b.png"], CROWD * 255)
    assert np.array_equal(masks["a.png"], box(0, 2, 0, 2) + box(6, 10, 8, 12))


@pytest.mark.parametrize(
    "segmentation,match",
    [
        ([[1.0, 1.0, 5.0, 1.0]], "polygon 0: polygon needs at least 3 points, got 2"),
        ([[1.0, 1.0, 5.0, 1.0, 5.0]], r"polygon 0 has an odd number of coordinates \(5\)"),
        ([[1.0, 1.0, math.nan, 1.0, 5.0, 5.0]], "non-finite"),
        ([[1.0, 1.0, 3.0, 3.0, 5.0, 5.0]], "zero area"),
        ([], "segmentation is empty"),
        ({"size": [H, W], "counts": [5]}, "RLE segmentation: RLE counts cover 5 pixels"),
    ],
)
def test_malformed_coco_annotations_name_file_annotation_and_image(label_map, segmentation, match):
    ann = {"id": 42, "image_id": 2, "category_id": 1, "segmentation": segmentation}
    with pytest.raises(PipelineError, match=match) as err:
        list(coco_to_masks(coco_doc([ann]), "coco", label_map, file="train.json"))
    assert str(err.value).startswith("train.json: annotation id 42 (image 'b.png'): ")


def test_coco_unknown_category_in_the_sheet(label_map):
    doc = coco_doc([{"id": 5, "image_id": 1, "category_id": 3, "segmentation": [flat(SQUARE)]}])
    doc["categories"][1]["name"] = "bus"
    with pytest.raises(
        PipelineError, match="no row maps category id 3 'bus' of source 'coco'.*annotation id 5"
    ):
        list(coco_to_masks(doc, "coco", label_map, file="x.json"))


# ---- VIA ----------------------------------------------------------------------------------------

TRIANGLE = {"name": "polygon", "all_points_x": [0, 4, 0], "all_points_y": [0, 0, 4]}
RECT = {"name": "rect", "x": 6, "y": 5, "width": 4, "height": 3}


def via_regions(as_dict):
    regions = [
        {"shape_attributes": TRIANGLE, "region_attributes": {"class": "walker"}},
        {
            "shape_attributes": RECT,
            "region_attributes": {"class": {"truck": True, "walker": False}},
        },
    ]
    return {str(i): r for i, r in enumerate(regions)} if as_dict else regions


def via_doc(project, as_dict):
    meta = {
        "p.jpg123": {
            "filename": "p.jpg",
            "size": 123,
            "regions": via_regions(as_dict),
            "file_attributes": {},
        },
        "q.jpg99": {"filename": "q.jpg", "size": 99, "regions": [], "file_attributes": {}},
    }
    return (
        {"_via_settings": {}, "_via_img_metadata": meta, "_via_attributes": {}} if project else meta
    )


def expected_via_masks():
    p = box(5, 8, 6, 10, 2)
    p[0, :3], p[1, :2], p[2, 0] = 1, 1, 1  # the triangle's pixel centres
    return {"p.jpg": p, "q.jpg": np.zeros((H, W), np.uint8)}


@pytest.mark.parametrize("project,as_dict", [(True, False), (False, False), (False, True)])
def test_via_project_and_export_formats(label_map, project, as_dict):
    items = via_to_masks(
        via_doc(project, as_dict), "via", label_map, image_sizes=lambda name: (H, W)
    )
    assert {n: m.tolist() for n, _, _, m in items} == {
        n: m.tolist() for n, m in expected_via_masks().items()
    }


@pytest.mark.parametrize(
    "region,match",
    [
        (
            {
                "shape_attributes": {"name": "circle", "cx": 3, "cy": 3, "r": 2},
                "region_attributes": {"class": "truck"},
            },
            "region 0 of 'p.jpg': shape 'circle' is not supported",
        ),
        (
            {"shape_attributes": TRIANGLE, "region_attributes": {"type": "truck"}},
            r"region 0 of 'p.jpg': region attribute 'class' is missing .*\['type'\].*--attribute",
        ),
        (
            {
                "shape_attributes": {**TRIANGLE, "all_points_y": [0, 0]},
                "region_attributes": {"class": "truck"},
            },
            "equal length",
        ),
        (
            {"shape_attributes": TRIANGLE, "region_attributes": {"class": "boat"}},
            "no row maps category 'boat'",
        ),
    ],
)
def test_via_errors_name_region_and_file(label_map, region, match):
    doc = {"k": {"filename": "p.jpg", "regions": [region]}}
    with pytest.raises(PipelineError, match=match):
        list(via_to_masks(doc, "via", label_map, image_sizes=lambda name: (H, W), file="via.json"))


# ---- the stage ----------------------------------------------------------------------------------


def write_images(folder, names):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(folder / name)


def import_case(tmp_path, fmt):
    sheet = tmp_path / "labels.csv"
    sheet.write_text(SHEET, encoding="utf-8")
    doc, expected = (
        (coco_doc(COCO_ANNOTATIONS), expected_coco_masks())
        if fmt == "coco"
        else (via_doc(True, False), expected_via_masks())
    )
    source = tmp_path / f"{fmt}.json"
    source.write_text(json.dumps(doc), encoding="utf-8")
    write_images(tmp_path / "raw", expected)
    return source, sheet, expected


@pytest.mark.parametrize("fmt", ["coco", "via"])
def test_stage_writes_a_folder_dataset_that_reads_back(tmp_path, fmt):
    source, sheet, expected = import_case(tmp_path, fmt)
    out = tmp_path / "imported"
    summary = run_import(source, fmt, tmp_path / "raw", out, sheet, CLASSES, source_name=fmt)
    assert summary["images"] == len(expected) and summary["annotations"] == (
        4 if fmt == "coco" else 2
    )
    total = sum(np.bincount(m.ravel(), minlength=3) for m in expected.values())
    assert summary["pixels"] == dict(zip(CLASSES, total.tolist(), strict=True))
    dataset = open_dataset(FolderData(**summary["dataset"]))
    assert len(dataset.train) == len(expected)
    for sample in dataset.train:
        name = sample.image_path.name
        assert np.array_equal(dataset.read_mask(sample), expected[name]), name
        assert (
            sample.image_path.read_bytes() == (tmp_path / "raw" / name).read_bytes()
        )  # copied, not re-encoded
    assert json.loads((out / "import.json").read_text())["images"] == len(expected)


def test_stage_default_source_name_is_the_file_stem(tmp_path):
    source, sheet, _ = import_case(tmp_path, "coco")  # source 'coco' = stem of coco.json
    assert (
        run_import(source, "coco", tmp_path / "raw", tmp_path / "out", sheet, CLASSES)[
            "source_name"
        ]
        == "coco"
    )


def test_stage_errors_before_writing_anything(tmp_path):
    source, sheet, _ = import_case(tmp_path, "coco")
    out = tmp_path / "out"
    Image.new("RGB", (W + 1, H)).save(tmp_path / "raw" / "c.png")
    with pytest.raises(
        PipelineError,
        match=r"coco.json: image 'c.png' is declared 12x10 \(WxH\) but .*raw/c.png is "
        "13x10",
    ):
        run_import(source, "coco", tmp_path / "raw", out, sheet, CLASSES)
    (tmp_path / "raw" / "c.png").unlink()
    with pytest.raises(
        PipelineError, match=r"refer to image 'c.png' but .*raw/c.png does not exist"
    ):
        run_import(source, "coco", tmp_path / "raw", out, sheet, CLASSES)
    assert not out.exists()
    with pytest.raises(PipelineError, match="format 'yolo' is unknown"):
        run_import(source, "yolo", tmp_path / "raw", out, sheet, CLASSES)


def test_stage_rejects_two_images_with_one_stem(tmp_path):
    source, sheet, _ = import_case(tmp_path, "coco")
    images = [
        {"id": 1, "file_name": "a.png", "height": H, "width": W},
        {"id": 2, "file_name": "sub/a.png", "height": H, "width": W},
    ]
    source.write_text(json.dumps(coco_doc([], images)), encoding="utf-8")
    write_images(tmp_path / "raw" / "sub", ["a.png"])
    with pytest.raises(PipelineError, match=r"'a.png' and 'sub/a.png' would both give masks/a.png"):
        run_import(source, "coco", tmp_path / "raw", tmp_path / "out", sheet, CLASSES)


def test_stage_crowd_value_becomes_the_ignore_index(tmp_path):
    source, sheet, expected = import_case(tmp_path, "coco")
    summary = run_import(
        source, "coco", tmp_path / "raw", tmp_path / "out", sheet, CLASSES, crowd_value=255
    )
    assert (
        summary["dataset"]["ignore_index"] == 255 and summary["pixels"]["value 255"] == CROWD.sum()
    )
    dataset = open_dataset(FolderData(**summary["dataset"]))
    assert np.array_equal(dataset.read_mask(dataset.sample("b")), CROWD * 255)
