"""Camera and painter for the synthetic driving scenes (see ``pipeline.data.synthetic.driving``).

World coordinates are metres in a road-aligned frame: X to the right, Y up, Z forward along the
road. The road bends sideways by ``curve * Z**2 / 2`` up to ``curve_end`` and runs straight on along
its new heading beyond (so it meets the horizon at a shifted vanishing point, as a real bend does,
instead of spiralling off along the horizon). Everything placed in road coordinates
(lanes, cars, buildings) follows the bend without its own geometry. The painter draws every polygon
twice: into the image with anti-aliasing (like a camera) and into the mask without it
(labels must be exact class ids).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Class ids (comma10k's classes 1..5, shifted to 0..4; names and colours live in
# pipeline.data.synthetic.driving).
ROAD, LANE_MARKINGS, UNDRIVABLE, MOVABLE, MY_CAR = range(5)

CAM_HEIGHT = 1.22  # m: a windshield-mounted comma device sits about 1.2 m above the road
FOCAL = 0.78  # focal length in image widths: comma10k's ~910 px at 1164 px wide
Z_MIN = (
    0.5  # m: nothing is projected nearer, which keeps fixed-point vertices far from int32 overflow
)
_SHIFT = 4  # cv2 fixed-point bits: sub-pixel polygon vertices

Color = tuple[float, float, float]


@dataclass(frozen=True)
class Camera:
    """Pinhole camera ``CAM_HEIGHT`` above the road, looking along +Z.

    Attributes:
        focal: focal length in pixels.
        horizon: image row of the horizon (camera pitch), pixels from the top.
        vanish: image column of the vanishing point (camera yaw).
        curve: road curvature in 1/m (0 = straight; positive bends right).
        curve_end: distance (m) where the bend ends and the road runs straight on.
        offset: lateral position of the camera in road coordinates, m.
    """

    focal: float
    horizon: float
    vanish: float
    curve: float = 0.0
    curve_end: float = 100.0
    offset: float = 0.0

    def bend(self, z: np.ndarray) -> np.ndarray:
        """Sideways displacement (m) of the road centre at distance ``z``: a parabola,
        then its tangent."""
        end = self.curve_end
        return self.curve * np.where(z < end, 0.5 * z * z, end * (z - 0.5 * end))

    def project(self, pts: np.ndarray) -> np.ndarray:
        """Project ``(..., 3)`` road points (X, Y, Z in m) to ``(..., 2)`` float pixel (x, y)."""
        pts = np.asarray(pts, np.float64)
        x, y, z = pts[..., 0], pts[..., 1], np.maximum(pts[..., 2], Z_MIN)
        sx = self.vanish + self.focal * (x - self.offset + self.bend(z)) / z
        sy = self.horizon + self.focal * (CAM_HEIGHT - y) / z
        return np.stack([sx, sy], axis=-1)

    def ground_distance(self, rows: np.ndarray) -> np.ndarray:
        """Distance Z (m) of the road seen at pixel-centre ``rows``;
        ``inf`` at and above the horizon."""
        below = np.asarray(rows, np.float64) + 0.5 - self.horizon
        with np.errstate(divide="ignore"):
            return np.where(below > 0, self.focal * CAM_HEIGHT / np.maximum(below, 1e-9), np.inf)

    def pixels(self, metres: float, z: float) -> float:
        """Apparent size in pixels of ``metres`` at distance ``z``."""
        return self.focal * metres / max(z, Z_MIN)


def _fixed(poly: np.ndarray) -> np.ndarray:
    return np.round(poly * (1 << _SHIFT)).astype(np.int32)[None]


class Painter:
    """An RGB float image and a class-id mask painted together, with distance haze.

    Attributes:
        img: ``(H, W, 3)`` float32 RGB in [0, 255] (clipped and cast by the caller).
        mask: ``(H, W)`` uint8 class ids; starts as ``UNDRIVABLE`` (sky, roadside).
        cam: the projection used by :meth:`face`.
    """

    def __init__(self, width: int, height: int, cam: Camera, haze: Color, visibility: float):
        self.img = np.zeros((height, width, 3), np.float32)
        self.mask = np.full((height, width), UNDRIVABLE, np.uint8)
        self.cam, self.haze, self.visibility = cam, np.asarray(haze, np.float32), visibility

    def fill(self, poly: np.ndarray, color, cls: int | None = None, opacity: float = 1.0) -> None:
        """Fill pixel polygon ``poly`` ``(N, 2)`` with an RGB colour or an ``(H, W, 3)`` texture.

        ``cls`` (if given) is written to the mask with 8-connected, non-anti-aliased edges; the
        image gets an anti-aliased blend, computed only inside the polygon's bounding box
        (cheap for small parts).
        """
        poly = np.asarray(poly, np.float64)
        height, width = self.mask.shape
        x0, y0 = np.maximum(np.floor(poly.min(0)).astype(int) - 1, 0)
        x1, y1 = np.minimum(np.ceil(poly.max(0)).astype(int) + 2, (width, height))
        if x0 >= x1 or y0 >= y1:
            return
        if cls is not None:
            cv2.fillPoly(self.mask, _fixed(poly), int(cls), lineType=cv2.LINE_8, shift=_SHIFT)
        alpha = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillPoly(alpha, _fixed(poly - (x0, y0)), 255, lineType=cv2.LINE_AA, shift=_SHIFT)
        weight = alpha.astype(np.float32)[..., None] * np.float32(opacity / 255)
        color = np.asarray(color, np.float32)
        source = color[y0:y1, x0:x1] if color.ndim == 3 else color
        region = self.img[y0:y1, x0:x1]
        region += (source - region) * weight

    def fog(self, color, z: float) -> np.ndarray:
        """``color`` seen through ``z`` m of air: blends towards the haze colour
        (aerial perspective)."""
        t = 1.0 - np.exp(-max(z, 0.0) / self.visibility)
        return np.asarray(color, np.float32) * (1 - t) + self.haze * t

    def face(
        self,
        pts: np.ndarray,
        color,
        cls: int | None = None,
        shade: float = 1.0,
        opacity: float = 1.0,
    ) -> None:
        """Fill the 3-D polygon ``pts`` ``(N, 3)``,
        shaded by ``shade`` and hazed by its mean distance."""
        pts = np.asarray(pts, np.float64)
        self.fill(
            self.cam.project(pts),
            self.fog(np.asarray(color) * shade, float(pts[:, 2].mean())),
            cls,
            opacity,
        )

    def haze_ground(self) -> None:
        """Haze every row below the horizon by its road distance
        (done once, after the flat layers)."""
        rows = np.arange(self.img.shape[0])
        dist = self.cam.ground_distance(rows)
        t = np.where(np.isfinite(dist), 1.0 - np.exp(-dist / self.visibility), 0.0).astype(
            np.float32
        )
        self.img += (self.haze - self.img) * t[:, None, None]


def smooth_noise(rng: np.random.Generator, height: int, width: int, cell: float) -> np.ndarray:
    """``(H, W)`` float32 noise, about unit variance, with features about ``cell`` pixels wide."""
    grid_h, grid_w = int(np.ceil(height / cell)) + 2, int(np.ceil(width / cell)) + 2
    grid = rng.standard_normal((grid_h, grid_w)).astype(np.float32)
    big = cv2.resize(grid, (int(grid_w * cell), int(grid_h * cell)), interpolation=cv2.INTER_CUBIC)
    return big[:height, :width] / 0.8


def texture(
    rng: np.random.Generator, height: int, width: int, color: Color, coarse: float, fine: float
) -> np.ndarray:
    """``(H, W, 3)`` float32 surface: ``color`` modulated by blotches (``coarse``) and grain
    (``fine``)."""
    blotches = smooth_noise(rng, height, width, max(width / 8, 2))
    light = 1 + coarse * blotches + fine * smooth_noise(rng, height, width, 1)
    return np.asarray(color, np.float32) * light[..., None]


def circle(center: np.ndarray, radius: tuple[float, float], n: int = 16) -> np.ndarray:
    """``(n, 2)`` polygon of an axis-aligned ellipse around pixel ``center``
    with radii ``(rx, ry)``."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.column_stack([center[0] + radius[0] * np.cos(t), center[1] + radius[1] * np.sin(t)])
