import numpy as np
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


def test_first_transform_is_identity_for_every_mode():
    x = torch.rand(1, 1, 4, 6)
    for mode in TTA:
        assert torch.equal(tta_transforms(mode)[0].augment_image(x), x)


def test_unknown_mode():
    with pytest.raises(PipelineError, match="unknown"):
        tta_transforms("rot45")


class _Ramp(torch.nn.Module):
    """Logits = scale * (red / 255 - 0.5) + a left-to-right ramp: not flip-equivariant,
    large logits."""

    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ramp = torch.linspace(-6.0, 6.0, x.shape[-1]).view(1, 1, 1, -1)
        return self.scale * (x[:, :1] / 255.0 - 0.5) + ramp


def test_predictor_merges_flips_and_folds_in_probability_space():
    from pipeline.model.task import BinaryTask
    from pipeline.predict.engine import Predictor

    height, width, fitted = 32, 64, (24, 50)  # non-square network input, padded bottom/right
    torch.manual_seed(0)
    images = torch.zeros(2, 3, height, width, dtype=torch.uint8)
    images[:, :, : fitted[0], : fitted[1]] = torch.randint(
        0, 256, (2, 3, *fitted), dtype=torch.uint8
    )
    models = [_Ramp(8.0), _Ramp(2.0)]
    batch = {
        "image": images,
        "fitted": torch.tensor([fitted] * 2),
        "original": torch.tensor([fitted] * 2),
    }
    out = Predictor(models, BinaryTask(), "hflip", torch.device("cpu"), max_forward=3)(
        batch, with_plain=True
    )

    x = images.float()
    flip = lambda t: torch.flip(t, dims=[-1])  # noqa: E731
    logits = [(m(x), flip(m(flip(x)))) for m in models]  # per model: plain, un-flipped hflip copy
    want = torch.stack([torch.sigmoid(a) for pair in logits for a in pair]).mean(0)
    want_plain = torch.stack([torch.sigmoid(a) for a, _ in logits]).mean(0)
    logit_space = torch.sigmoid(torch.stack([a for pair in logits for a in pair]).mean(0))
    crop = (slice(None), slice(None), slice(0, fitted[0]), slice(0, fitted[1]))
    want, want_plain, logit_space = want[crop], want_plain[crop], logit_space[crop]
    assert (want - logit_space).abs().max() > 0.05  # the two merge spaces really differ here
    assert (want - want_plain).abs().max() > 0.05  # and the flipped copy really changes the answer
    for j, (merged, plain) in enumerate(out):
        assert merged.shape == plain.shape == (1, *fitted)
        torch.testing.assert_close(torch.from_numpy(merged), want[j], rtol=0, atol=1e-6)
        torch.testing.assert_close(torch.from_numpy(plain), want_plain[j], rtol=0, atol=1e-6)


def test_predictor_keeps_the_network_resolution_when_asked():
    from pipeline.model.augment import restore_size
    from pipeline.model.task import BinaryTask
    from pipeline.predict.engine import Predictor

    fitted, original = (
        (24, 50),
        (37, 71),
    )  # the image is larger than the network input: predict resizes
    torch.manual_seed(1)
    images = torch.zeros(1, 3, 32, 64, dtype=torch.uint8)
    images[:, :, : fitted[0], : fitted[1]] = torch.randint(
        0, 256, (1, 3, *fitted), dtype=torch.uint8
    )
    batch = {
        "image": images,
        "fitted": torch.tensor([fitted]),
        "original": torch.tensor([original]),
    }
    predictor = Predictor([_Ramp(4.0)], BinaryTask(), "hflip", torch.device("cpu"))
    ((restored, plain_restored),) = predictor(batch, with_plain=True)
    ((kept, plain_kept),) = predictor(batch, with_plain=True, restore=False)
    assert restored.shape == plain_kept.shape == (1, *original) and kept.shape == (1, *fitted)
    np.testing.assert_allclose(restore_size(kept, fitted, original), restored, atol=1e-6)
    np.testing.assert_allclose(plain_kept, plain_restored, atol=1e-6)
