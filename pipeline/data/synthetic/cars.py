"""Synthetic Carvana-like photos: a fair miniature of the real task, not blobs.

Each car is a side profile (bumpers, hood, windshield, roof, rear window, trunk) extruded to a
3-D prism plus four wheel cylinders, rendered orthographically from V view angles around a
turntable with the camera slightly above. The silhouette of an extruded polygon is exactly the
union of its two faces and the parallelograms swept by its edges, so the mask is exact. The studio
has a wall/floor gradient and a soft shadow; bodies get shading, glass, specular highlights, noise
and JPEG artifacts. About a quarter of the cars are painted close to the background (the hard case).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

_SHIFT = 4  # cv2 fixed-point bits: sub-pixel polygon vertices
_ELEVATION = np.deg2rad(12.0)
_LIGHT = np.array([0.3, 0.9, 0.3]) / np.linalg.norm([0.3, 0.9, 0.3])
_PAINTS = [
    (235, 235, 232),
    (222, 224, 226),
    (190, 192, 196),
    (28, 28, 32),
    (160, 20, 25),
    (20, 45, 120),
    (90, 92, 96),
    (200, 185, 150),
    (30, 90, 60),
    (240, 200, 40),
]
_NEAR_BACKGROUND = 2  # the first two paints are close to the studio background


@dataclass(frozen=True)
class CarSpec:
    """One car: id, paint colour (RGB), body proportions (units of the car length)."""

    car_id: str
    paint: tuple[int, int, int]
    roof: float  # roof height
    roof_back: float  # x of the roof's rear end (hatchbacks/SUVs reach further back)
    hood: float  # hood height
    width: float  # body width
    wheel: float  # wheel radius


def random_car(rng: np.random.Generator) -> CarSpec:
    """Draw a car: a 12-hex-digit id, a paint (25% near the background colour), proportions."""
    car_id = "".join(rng.choice(list("0123456789abcdef"), size=12))
    if rng.random() < 0.25:
        base = _PAINTS[rng.integers(_NEAR_BACKGROUND)]
    else:
        base = _PAINTS[rng.integers(_NEAR_BACKGROUND, len(_PAINTS))]
    paint = tuple(int(np.clip(c + rng.normal(0, 8), 0, 255)) for c in base)
    return CarSpec(
        car_id,
        paint,
        roof=rng.uniform(0.36, 0.48),
        roof_back=rng.uniform(-0.36, -0.2),
        hood=rng.uniform(0.24, 0.30),
        width=rng.uniform(0.38, 0.44),
        wheel=rng.uniform(0.075, 0.095),
    )


def _profile(car: CarSpec) -> tuple[np.ndarray, list[str]]:
    """Side profile polygon (x forward, y up) and the material of each edge i -> i+1."""
    r, h, top, back = car.wheel, car.hood, car.roof, car.roof_back
    pts = [
        (0.50, 0.10),
        (0.50, 0.20),
        (0.45, h),
        (0.17, h + 0.02),
        (0.02, top),
        (back, top),
        (back - 0.14, h + 0.02),
        (-0.48, h),
        (-0.50, 0.20),
        (-0.50, 0.10),
        (-0.42, r * 0.7),
        (0.42, r * 0.7),
    ]
    materials = [
        "body",
        "body",
        "body",
        "glass",
        "body",
        "glass",
        "body",
        "body",
        "body",
        "body",
        "body",
        "body",
    ]
    return np.array(pts, dtype=np.float64), materials


def _windows(car: CarSpec) -> np.ndarray:
    h, top, back = car.hood, car.roof, car.roof_back
    return np.array(
        [(0.15, h + 0.03), (0.02, top - 0.02), (back + 0.01, top - 0.02), (back - 0.11, h + 0.03)]
    )


class _Camera:
    """Orthographic camera: turntable angle ``theta``, fixed elevation,
    pixel scale and ground point."""

    def __init__(self, theta: float, scale: float, cx: float, ground_y: float):
        self.cos, self.sin = np.cos(theta), np.sin(theta)
        self.scale, self.cx, self.gy = scale, cx, ground_y
        self.toward = np.array(
            [-self.sin * np.cos(_ELEVATION), np.sin(_ELEVATION), self.cos * np.cos(_ELEVATION)]
        )

    def project(self, xyz: np.ndarray) -> np.ndarray:
        x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
        depth = -x * self.sin + z * self.cos
        sx = self.cx + self.scale * (x * self.cos + z * self.sin)
        sy = self.gy - self.scale * (y * np.cos(_ELEVATION) - depth * np.sin(_ELEVATION))
        return np.stack([sx, sy], axis=-1)


def _fill(canvas: np.ndarray, poly2d: np.ndarray, color, antialias: bool) -> None:
    pts = np.round(poly2d * (1 << _SHIFT)).astype(np.int32)[None]
    cv2.fillPoly(
        canvas, pts, color, lineType=cv2.LINE_AA if antialias else cv2.LINE_8, shift=_SHIFT
    )


def _prism_parts(profile: np.ndarray, z0: float, z1: float, cam: _Camera):
    """Faces and edge quads of ``profile`` extruded from z0 to z1: yields
    (2-D polygon, normal, kind)."""
    ccw = (
        np.sum(
            profile[:, 0] * np.roll(profile[:, 1], -1) - np.roll(profile[:, 0], -1) * profile[:, 1]
        )
        > 0
    )
    faces = {z: np.column_stack([profile, np.full(len(profile), z)]) for z in (z0, z1)}
    for z, face in faces.items():
        yield cam.project(face), np.array([0.0, 0.0, np.sign(z - (z0 + z1) / 2)]), ("face", -1)
    for i in range(len(profile)):
        a, b = profile[i], profile[(i + 1) % len(profile)]
        edge = b - a
        normal = np.array([edge[1], -edge[0], 0.0]) * (1 if ccw else -1)
        normal /= np.linalg.norm(normal) + 1e-12
        quad = np.array([[*a, z0], [*b, z0], [*b, z1], [*a, z1]])
        yield cam.project(quad), normal, ("edge", i)


def _shade(color, normal: np.ndarray, gloss: float = 0.35) -> tuple[int, int, int]:
    light = max(0.0, float(normal @ _LIGHT))
    return tuple(int(np.clip(c * (0.72 + gloss * light), 0, 255)) for c in color)


def _draw_solid(img, mask, profile, materials, z0, z1, cam, paint, glass) -> None:
    """Union of all parts into the mask; only camera-facing parts painted, near ones last."""
    parts = list(_prism_parts(profile, z0, z1, cam))
    for poly, _, _ in parts:
        _fill(mask, poly, 1, antialias=False)
    visible = [(p, n, k) for p, n, k in parts if n @ cam.toward > 0]
    visible.sort(key=lambda part: part[2][0] == "face")  # faces after quads
    for poly, normal, (kind, i) in visible:
        base = glass if kind == "edge" and materials[i] == "glass" else paint
        _fill(img, poly, _shade(base, normal), antialias=True)


def _wheel_profile(x: float, r: float) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, 20, endpoint=False)
    return np.column_stack([x + r * np.cos(t), r + r * np.sin(t)])


def _studio(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Light-grey wall over a darker floor, soft horizon, slight warm/cool tint and vignette."""
    horizon = height * rng.uniform(0.5, 0.6)
    y = np.arange(height, dtype=np.float32)[:, None]
    wall = 240 - 12 * y / horizon
    floor = 212 - 30 * (y - horizon) / max(height - horizon, 1)
    blend = 1 / (1 + np.exp(-(y - horizon) / (0.015 * height)))
    gray = (1 - blend) * wall + blend * floor
    x = np.linspace(-1, 1, width, dtype=np.float32)[None, :]
    gray = gray - 10 * x**2
    tint = rng.uniform(-4, 4, size=3).astype(np.float32)
    return np.clip(gray[..., None] + tint, 0, 255).repeat(1, axis=2)


def _add_shadow(canvas: np.ndarray, cx: float, gy: float, half_len: float, scale: float) -> None:
    shade = np.zeros(canvas.shape[:2], np.float32)
    axes = (max(int(half_len * 1.1), 2), max(int(0.07 * scale), 2))
    cv2.ellipse(shade, (int(cx), int(gy)), axes, 0, 0, 360, 1.0, -1)
    k = max(3, int(0.06 * scale) | 1)
    shade = cv2.GaussianBlur(shade, (k, k), 0)
    canvas *= (1 - 0.45 * shade)[..., None]


def _add_highlights(
    img: np.ndarray, body: np.ndarray, rng: np.random.Generator, scale: float
) -> None:
    glow = np.zeros(img.shape[:2], np.float32)
    ys, xs = np.nonzero(body)
    for _ in range(int(rng.integers(1, 4))):
        i = int(rng.integers(len(ys)))
        axes = (
            max(int(scale * rng.uniform(0.03, 0.1)), 1),
            max(int(scale * rng.uniform(0.005, 0.02)), 1),
        )
        cv2.ellipse(
            glow, (int(xs[i]), int(ys[i])), axes, float(rng.uniform(-20, 20)), 0, 360, 1.0, -1
        )
    k = max(3, int(0.02 * scale) | 1)
    glow = cv2.GaussianBlur(glow, (k, k), 0) * body
    img += (255 - img) * (0.8 * glow)[..., None]


def render_view(
    car: CarSpec, view: int, n_views: int, size: tuple[int, int], rng: np.random.Generator
):
    """Render view ``view`` (0-based) of ``n_views`` around ``car`` at ``size`` = (width, height).

    Returns ``(image, mask)``: ``(H, W, 3)`` uint8 RGB (before JPEG) and ``(H, W)`` uint8 {0, 1}.
    """
    width, height = size
    scale = 0.72 * min(width, 1.5 * height) * rng.uniform(0.96, 1.04)
    theta = 2 * np.pi * view / n_views + rng.normal(0, 0.02)
    cx = width / 2 + rng.normal(0, 0.015 * width)
    gy = height * 0.8 + rng.normal(0, 0.01 * height)
    cam = _Camera(theta, scale, cx, gy)
    canvas = _studio(height, width, rng)
    half_len = 0.5 * scale * (abs(cam.cos) + car.width * abs(cam.sin))
    _add_shadow(canvas, cx, gy, half_len, scale)
    img = canvas.astype(np.float32)
    mask = np.zeros((height, width), np.uint8)
    profile, materials = _profile(car)
    paint = np.array(car.paint, np.float32)
    glass = (30.0, 34.0, 42.0)
    w2 = car.width / 2
    wheels = [(x, z) for x in (-0.33, 0.33) for z in (-w2 + 0.02, w2 - 0.06)]
    wheels.sort(key=lambda xz: -xz[0] * cam.sin + xz[1] * cam.cos)  # far wheels first
    for x, z in wheels[:2]:
        _draw_solid(
            img,
            mask,
            _wheel_profile(x, car.wheel),
            ["body"] * 20,
            z,
            z + 0.04,
            cam,
            (22, 22, 24),
            glass,
        )
    _draw_solid(img, mask, profile, materials, -w2, w2, cam, paint, glass)
    for x, z in wheels[2:]:
        _draw_solid(
            img,
            mask,
            _wheel_profile(x, car.wheel),
            ["body"] * 20,
            z,
            z + 0.04,
            cam,
            (22, 22, 24),
            glass,
        )
    near_z = w2 if cam.cos > 0 else -w2
    if abs(cam.cos) > 0.15:
        window = np.column_stack([_windows(car), np.full(4, near_z * 1.001)])
        _fill(img, cam.project(window), glass, antialias=True)
    _add_highlights(img, mask.astype(np.float32), rng, scale)
    img += rng.normal(0, 3.0, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8), mask
