"""Figures as PNG bytes (matplotlib, Agg backend); stages decide where they go. The threshold
search's figure lives with the search (``pipeline.decide.curve``)."""

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
    metric = "val mIoU" if history[0].extra.get("miou") is not None else "val Dice"
    right.plot(epochs, [r.val_score for r in history], "o-", color="tab:green", label=metric)
    best = max(history, key=lambda r: r.val_score)
    right.plot(
        [best.epoch],
        [best.val_score],
        "*",
        ms=14,
        color="tab:red",
        label=f"best {best.val_score:.4f}",
    )
    right.set_xlabel("epoch")
    right.legend()
    fig.suptitle(title)
    return _png(fig)


def _png(fig) -> bytes:
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
