"""The threshold search's figure (``threshold_curve.png``) as PNG bytes (matplotlib, Agg backend);
``write_search`` decides where it goes. The other figures live in ``pipeline.review.plots``."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def threshold_curve(curves: list[tuple[str, list, int, float]], title: str) -> bytes:
    """Mean OOF Dice vs threshold per channel:
    (name, curve over 256 levels, chosen level, min_area)."""
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    thresholds = [k / 255 for k in range(256)]
    for name, curve, level, min_area in curves:
        line = ax.plot(thresholds, curve, label=f"{name} (min_area {min_area:g})")[0]
        ax.plot([level / 255], [curve[level]], "*", ms=14, color=line.get_color())
        ax.annotate(
            f"{level / 255:.3f}: {curve[level]:.5f}",
            (level / 255, curve[level]),
            textcoords="offset points",
            xytext=(6, -14),
        )
    ax.axvline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("threshold (pixel positive when p > threshold)")
    ax.set_ylabel("mean OOF Dice")
    lows = [min(c[20:236]) for _, c, _, _ in curves]
    highs = [max(c) for _, c, _, _ in curves]
    ax.set_ylim(max(0.0, min(lows) - 0.01), min(1.0, max(highs) + 0.005))
    ax.legend(loc="lower center")
    ax.set_title(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
