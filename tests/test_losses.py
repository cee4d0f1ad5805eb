import numpy as np
import pytest
import torch

from pipeline.errors import PipelineError
from pipeline.model.losses import LOSSES, border_weights, make_loss


def test_border_weights_truth_table():
    # 1x1x6x6 target, left half foreground; kernel 3: columns 2 and 3 touch the boundary.
    target = torch.zeros(1, 1, 6, 6)
    target[..., :3] = 1
    weights = border_weights(target, kernel=3, factor=2.0)[0, 0]
    raw = np.ones((6, 6))
    raw[:, 2:4] = 3.0
    expected = raw * raw.size / raw.sum()  # rescaled so the total weight is unchanged
    np.testing.assert_allclose(weights.numpy(), expected, rtol=1e-6)
    assert weights.sum().item() == pytest.approx(36.0)


def test_border_weights_flat_target_is_all_ones():
    for value in (0.0, 1.0):
        w = border_weights(torch.full((2, 1, 8, 8), value), kernel=5, factor=3.0)
        torch.testing.assert_close(w, torch.ones_like(w))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_loss_forward_backward(name):
    torch.manual_seed(0)
    logits = torch.randn(2, 1, 8, 12, requires_grad=True)
    target = (torch.rand(2, 1, 8, 12) > 0.5).float()
    valid = torch.ones(2, 1, 8, 12)
    valid[..., -2:] = 0
    loss = make_loss(name, border_kernel=3)(logits, target, valid)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    assert logits.grad[..., -2:].abs().sum() == 0  # padding gets no gradient


@pytest.mark.parametrize("name", ["bce", "dice", "bce_dice", "bce_logdice"])
def test_perfect_prediction_beats_wrong_one(name):
    target = torch.zeros(1, 1, 4, 4)
    target[..., :2] = 1
    good, bad = (target * 2 - 1) * 10, (1 - target * 2) * 10
    loss = make_loss(name)
    assert loss(good, target) < loss(bad, target)


def test_unknown_loss():
    with pytest.raises(PipelineError, match="unknown; choose one of"):
        make_loss("nope")


def test_median_frequency_weights_by_hand():
    from pipeline.model.losses import class_balance_weights

    # class pixel counts and the pixels of the images each class appears in
    pixels, image_pixels = np.array([60.0, 30.0, 10.0, 0.0]), np.array([100.0, 100.0, 50.0, 0.0])
    freq = np.array([0.6, 0.3, 0.2])  # median 0.3
    classic = class_balance_weights(pixels, image_pixels, 1.0)
    np.testing.assert_allclose(classic, [*(0.3 / freq), 1.0])  # absent class: weight 1
    np.testing.assert_allclose(
        class_balance_weights(pixels, image_pixels, 0.5), [*np.sqrt(0.3 / freq), 1.0]
    )
    np.testing.assert_allclose(class_balance_weights(pixels, image_pixels, 0.0), np.ones(4))


def test_balanced_cross_entropy_is_torchs_class_weighted_mean():
    from pipeline.model.losses import IGNORE

    torch.manual_seed(0)
    logits = torch.randn(2, 3, 5, 7)
    target = torch.randint(0, 3, (2, 5, 7))
    target[0, 0] = IGNORE
    weights = torch.tensor([0.2, 1.0, 5.0])
    ours = make_loss("ce", multiclass=True, class_weights=weights)(logits, target)
    theirs = torch.nn.functional.cross_entropy(logits, target, weight=weights, ignore_index=IGNORE)
    torch.testing.assert_close(ours, theirs)
    plain = make_loss("ce", multiclass=True)(logits, target)
    assert not torch.allclose(ours, plain)


def test_class_balance_on_a_binary_dataset_is_one_clear_line(tiny_carvana, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from pipeline.cli import cli
    from tests.conftest import tiny_train_config, write_config

    monkeypatch.chdir(tmp_path)
    base = tiny_train_config(tmp_path / "base.yaml", tiny_carvana)
    cfg = write_config(
        tmp_path / "c.yaml", "base: base.yaml\nloss: {name: bce_dice, class_balance: 1.0}\n"
    )
    assert CliRunner().invoke(cli, ["folds", str(base)]).exit_code == 0
    result = CliRunner().invoke(cli, ["train", str(cfg), "--fold", "0"])
    assert result.exit_code == 1
    assert "loss.class_balance" in result.output and "Traceback" not in result.output
