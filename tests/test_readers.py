import shutil

import numpy as np
import pytest
from PIL import Image

from pipeline.config.schema import CarvanaData, FolderData
from pipeline.data import READERS, open_dataset
from pipeline.errors import PipelineError
from tests.conftest import TINY, make_folder_dataset, save_png


@pytest.fixture()
def carvana_copy(tiny_carvana, tmp_path):
    root = tmp_path / "carvana"
    shutil.copytree(tiny_carvana, root)
    return root


def carvana(root):
    return open_dataset(CarvanaData(name="c", root=str(root)))


def test_registry_lists_layouts():
    assert set(READERS) == {"carvana", "folder", "comma10k", "cityscapes"}


def test_carvana_reads_everything(tiny_carvana):
    ds = carvana(tiny_carvana)
    assert len(ds.train) == 24 and len(ds.test) == 4
    sample = ds.train[0]
    assert sample.group == sample.image_id.rsplit("_", 1)[0]
    image, mask = ds.read_image(sample), ds.read_mask(sample)
    assert image.shape == (TINY[1], TINY[0], 3) and image.dtype == np.uint8
    assert mask.shape == (TINY[1], TINY[0]) and set(np.unique(mask)) <= {0, 1} and mask.any()


def test_carvana_rle_csv_gives_the_same_masks(carvana_copy):
    gif = {s.image_id: carvana(carvana_copy).read_mask(s) for s in carvana(carvana_copy).train}
    shutil.rmtree(carvana_copy / "train_masks")
    ds = carvana(carvana_copy)
    assert all(s.mask_path is None for s in ds.train)
    for s in ds.train:
        np.testing.assert_array_equal(ds.read_mask(s), gif[s.image_id])


def test_image_without_mask(carvana_copy):
    victim = sorted((carvana_copy / "train_masks").iterdir())[0]
    victim.unlink()
    with pytest.raises(PipelineError, match=r"_01\.jpg: image without mask"):
        carvana(carvana_copy)


def test_mask_without_image(carvana_copy):
    victim = sorted((carvana_copy / "train").iterdir())[0]
    victim.unlink()
    with pytest.raises(PipelineError, match=rf"{victim.stem}_mask\.gif: mask without image"):
        carvana(carvana_copy)


def test_rle_row_without_image(carvana_copy):
    shutil.rmtree(carvana_copy / "train_masks")
    victim = sorted((carvana_copy / "train").iterdir())[-1]
    victim.unlink()
    with pytest.raises(
        PipelineError, match=rf"train_masks.csv row '{victim.name}': mask without image"
    ):
        carvana(carvana_copy)


def test_mask_size_differs_from_image(carvana_copy):
    ds = carvana(carvana_copy)
    sample = ds.train[0]
    Image.new("P", (TINY[0] + 2, TINY[1])).save(sample.mask_path)
    with pytest.raises(
        PipelineError, match=rf"{sample.mask_path.name}: mask is 98x64 but image .* is 96x64"
    ):
        ds.read_mask(sample)


@pytest.mark.parametrize("content", [b"", b"not a jpeg at all", "truncate"])
def test_corrupt_image_names_the_file(carvana_copy, content):
    ds = carvana(carvana_copy)
    sample = ds.train[0]
    data = sample.image_path.read_bytes()
    sample.image_path.write_bytes(data[: len(data) // 2] if content == "truncate" else content)
    with pytest.raises(PipelineError, match=rf"{sample.image_path.name}: (unreadable|corrupt)"):
        ds.read_image(sample)


def test_mask_values_outside_allowed_set(carvana_copy):
    ds = carvana(carvana_copy)
    sample = ds.train[0]
    bad = np.zeros((TINY[1], TINY[0]), np.uint8)
    bad[0, 0] = 7
    Image.fromarray(bad, mode="L").save(
        sample.mask_path, format="PNG"
    )  # content decides, not the name
    with pytest.raises(PipelineError, match=r"mask values \[0, 7\] are outside the allowed set"):
        ds.read_mask(sample)


def test_sample_submission_must_match_test_folder(carvana_copy):
    victim = sorted((carvana_copy / "test").iterdir())[0]
    victim.unlink()
    with pytest.raises(PipelineError, match="listed in sample_submission.csv but missing"):
        carvana(carvana_copy)


def folder(root, **kw):
    return open_dataset(FolderData(name="f", root=str(root), group_pattern=r"^([^_]+)_", **kw))


@pytest.mark.parametrize("scale", [1, 255])
def test_folder_binary_01_and_0255(tmp_path, scale):
    ds = folder(make_folder_dataset(tmp_path, mask_scale=scale))
    assert {s.group for s in ds.train} == {"seq0", "seq1", "seq2"}
    assert ds.sample("seq1_004").group == "seq1"
    for s in ds.train:
        assert set(np.unique(ds.read_mask(s))) == {0, 1}


def test_folder_index_masks_with_ignore(tmp_path):
    root = make_folder_dataset(tmp_path, classes=4)
    sample_mask = root / "masks" / "seq0_000.png"
    mask = np.array(Image.open(sample_mask))
    mask[0, :5] = 255
    save_png(sample_mask, mask)
    ds = folder(root, mask_mode="index", classes=["a", "b", "c", "d"], ignore_index=255)
    values = set(np.unique(ds.read_mask(ds.sample("seq0_000"))))
    assert values == {0, 1, 2, 3, 255}
    with pytest.raises(PipelineError, match=r"seq0_000.png: mask values \[3, 255\] .* 0\.\.2"):
        ds3 = folder(root, mask_mode="index", classes=["a", "b", "c"])
        ds3.read_mask(ds3.sample("seq0_000"))


def test_folder_mixed_binary_values_rejected(tmp_path):
    root = make_folder_dataset(tmp_path, mask_scale=255)
    mask = np.array(Image.open(root / "masks" / "seq0_000.png"))
    mask[0, 0] = 1
    save_png(root / "masks" / "seq0_000.png", mask)
    ds = folder(root)
    with pytest.raises(PipelineError, match=r"mixes values 1 and 255"):
        ds.read_mask(ds.sample("seq0_000"))


def test_folder_orphans_and_name_rule(tmp_path):
    root = make_folder_dataset(tmp_path)
    for p in (root / "masks").iterdir():
        p.rename(p.with_name(p.stem + "_mask.png"))
    with pytest.raises(PipelineError, match="image without mask"):
        folder(root)
    ds = folder(root, mask_name="{stem}_mask.png")
    assert len(ds.train) == 6
    (root / "images" / "seq0_000.png").unlink()
    with pytest.raises(PipelineError, match=r"seq0_000_mask.png: mask without image"):
        folder(root, mask_name="{stem}_mask.png")


def test_folder_colour_mask_is_an_error(tmp_path):
    root = make_folder_dataset(tmp_path)
    colour = np.zeros((TINY[1], TINY[0], 3), np.uint8)
    colour[2, 3] = (255, 0, 0)
    save_png(root / "masks" / "seq0_000.png", colour)
    ds = folder(root)
    with pytest.raises(
        PipelineError,
        match=r"seq0_000.png: binary mask has colour pixels \(1, first rgb\(255, 0, 0\)",
    ):
        ds.read_mask(ds.sample("seq0_000"))


def test_folder_group_pattern_must_match(tmp_path):
    root = make_folder_dataset(tmp_path)
    with pytest.raises(PipelineError, match="group_pattern"):
        open_dataset(FolderData(name="f", root=str(root), group_pattern=r"^zzz(\d)"))


def test_missing_root_is_an_error(tmp_path):
    with pytest.raises(PipelineError, match="root folder .* not found"):
        carvana(tmp_path / "nope")
