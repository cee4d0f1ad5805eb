import pytest
import torch

from pipeline.errors import PipelineError
from pipeline.predict.tta import TTA, tta_predict, tta_transforms


@pytest.mark.parametrize("mode", sorted(TTA))
@pytest.mark.parametrize("max_batch", [1, 3, 64])
def test_identity_model_returns_input_exactly(mode, max_batch):
    images = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).view(2, 3, 4, 6)  # non-square
    merged, plain = tta_predict(lambda x: x, images, tta_transforms(mode), max_batch)
    assert torch.equal(merged, images) and torch.equal(plain, images)


@pytest.mark.parametrize("mode, copies", [("none", 1), ("hflip", 2), ("flip", 4), ("d4", 8)])
def test_copies_go_through_in_few_forward_passes(mode, copies):
    calls = []

    def model(x):
        calls.append(x.shape[0])
        return x[:, :1]

    tta_predict(model, torch.rand(2, 3, 4, 6), tta_transforms(mode), max_batch=64)
    assert sum(calls) == 2 * copies
    assert len(calls) == (2 if mode == "d4" else 1)  # d4 on a non-square batch: two shapes


def test_merge_is_in_probability_space():
    images = torch.zeros(1, 3, 2, 4)
    images[..., :2] = 1.0  # left half set; a horizontal flip moves it right

    def model(x):
        return torch.sigmoid(10 * (x[:, :1] - 0.5))

    merged, plain = tta_predict(model, images, tta_transforms("hflip"))
    # each copy is de-augmented back to the same place: the mean of equal probabilities
    torch.testing.assert_close(merged, plain)


def test_first_transform_is_identity_for_every_mode():
    x = torch.rand(1, 1, 4, 6)
    for mode in TTA:
        assert torch.equal(tta_transforms(mode)[0].augment_image(x), x)


def test_unknown_mode():
    with pytest.raises(PipelineError, match="unknown"):
        tta_transforms("rot45")
