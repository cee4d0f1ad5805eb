"""Exact polygon rasterisation by pixel centres (numpy only).

Coordinates are floats in pixel units, x to the right and y down, with pixel ``(x, y)`` covering
the square ``[x, x+1) x [y, y+1)``: the convention of COCO and VIA polygons. A pixel is inside when
its centre ``(x + 0.5, y + 0.5)`` is inside the polygon under the even-odd rule. A centre lying
exactly on an edge follows the half-open "top-left" rule (inside on a left or top edge, outside on a
right or bottom edge), so two polygons sharing an edge never both claim a pixel and a square with
integer corners ``(2, 2)..(6, 6)`` covers exactly the 4x4 pixels ``x, y in 2..5``.

``cv2.fillPoly`` is not used on purpose: it rounds vertices to integers and fills every pixel the
outline touches (boundary inclusive), which grows every object by about half a pixel on each side.
"""

from __future__ import annotations

import numpy as np

_CELLS_PER_BLOCK = 1 << 21  # rows x edges per block: bounds the float64 work arrays to ~16 MiB each


def check_polygon(points) -> np.ndarray:
    """Validate polygon vertices; return them as an ``(N, 2)`` float64 array of ``(x, y)``.

    Raises:
        ValueError: not ``(N, 2)`` numbers, fewer than 3 points, or a non-finite coordinate.
    """
    try:
        pts = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("polygon coordinates must be numbers") from None
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(
            f"polygon must be a list of (x, y) points, got an array of shape {pts.shape}"
        )
    if len(pts) < 3:
        raise ValueError(f"polygon needs at least 3 points, got {len(pts)}")
    if not np.isfinite(pts).all():
        raise ValueError("polygon has a non-finite coordinate (NaN or infinity)")
    return pts


def polygon_area(points) -> float:
    """Absolute area of the polygon (shoelace formula) in square pixels; 0 for a degenerate one."""
    pts = check_polygon(points)
    x, y = pts[:, 0], pts[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def rasterize_polygon(points, height: int, width: int) -> np.ndarray:
    """Fill a polygon by pixel centres (even-odd rule, half-open edges; see the module docstring).

    Args:
        points: ``(N, 2)`` array-like of ``(x, y)`` vertices, N >= 3, in pixel units; the polygon
            closes itself (last vertex back to the first). Self-intersections follow even-odd.
        height: mask height H.
        width: mask width W.

    Returns:
        ``(H, W)`` uint8 mask with values {0, 1}. Parts of the polygon outside the image are cut
        off exactly (vertices are never clamped, so a shape far outside simply gives fewer pixels).

    Raises:
        ValueError: malformed points (see ``check_polygon``).
    """
    pts = check_polygon(points)
    mask = np.zeros((height, width), np.uint8)
    x0, y0 = pts[:, 0], pts[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    keep = y0 != y1  # a horizontal edge never crosses a scanline under the half-open rule
    x0, y0, x1, y1 = x0[keep], y0[keep], x1[keep], y1[keep]
    if len(x0) == 0 or width <= 0:
        return mask
    # Scanline of row r is y = r + 0.5; only rows whose centre lies in [ymin, ymax) can be inside.
    first = max(0, int(np.ceil(y0.min() - 0.5)))
    stop = min(height, int(np.ceil(max(y0.max(), y1.max()) - 0.5)))
    step = max(1, _CELLS_PER_BLOCK // len(x0))
    for r0 in range(first, stop, step):
        r1 = min(stop, r0 + step)
        mask[r0:r1] = _fill_rows(r0, r1, width, x0, y0, x1, y1)
    return mask


def _fill_rows(r0: int, r1: int, width: int, x0, y0, x1, y1) -> np.ndarray:
    """``(r1 - r0, W)`` uint8 coverage of rows ``r0..r1-1`` by the edges
    ``(x0, y0) -> (x1, y1)``."""
    yc = np.arange(r0, r1, dtype=np.float64)[:, None] + 0.5
    # Half-open [lo, hi): a vertex on a scanline counts once for a pass-through and 0 or 2 times for
    # a local extremum, so every row has an even number of crossings.
    crosses = (yc >= np.minimum(y0, y1)) & (yc < np.maximum(y0, y1))
    xs = x0 + (yc - y0) * ((x1 - x0) / (y1 - y0))
    xs = np.sort(np.where(crosses, xs, np.inf), axis=1)
    pairs = xs.shape[1] // 2 * 2  # rows have an even count; unused slots are +inf
    # Pixel x is inside a span [xa, xb) when xa <= x + 0.5 < xb,
    # i.e. ceil(xa - .5) <= x < ceil(xb - .5).
    cols = np.clip(np.ceil(xs[:, :pairs] - 0.5), 0, width).astype(np.int64)
    # Span starts +1, ends -1 on a (rows, W + 1) grid, then a running sum along each row; bincount
    # on flat indices does the scatter-add (much faster than np.add.at).
    flat = cols + (np.arange(r1 - r0) * (width + 1))[:, None]
    size = (r1 - r0) * (width + 1)
    diff = np.bincount(flat[:, 0::2].ravel(), minlength=size) - np.bincount(
        flat[:, 1::2].ravel(), minlength=size
    )
    return (np.cumsum(diff.reshape(r1 - r0, width + 1)[:, :width], axis=1) > 0).astype(np.uint8)
