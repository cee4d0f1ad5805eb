"""Figures as PNG bytes (matplotlib, Agg backend); stages decide where they go."""
from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def training_curve(history: list, title: str) -> bytes:
    """Loss (train/val) and validation Dice per epoch, side by side."""
    epochs = [r.epoch for r in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2), dpi=100)
    left.plot(epochs, [r.train_loss for r in history], "o-", label="train loss")
    left.plot(epochs, [r.val_loss for r in history], "o-", label="val loss")
    left.set_xlabel("epoch")
    left.legend()
    right.plot(epochs, [r.val_dice for r in history], "o-", color="tab:green", label="val Dice")
    best = max(history, key=lambda r: r.val_dice)
    right.plot([best.epoch], [best.val_dice], "*", ms=14, color="tab:red", label=f"best {best.val_dice:.4f}")
    right.set_xlabel("epoch")
    right.legend()
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
