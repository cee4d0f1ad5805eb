"""Synthetic dash-cam frames with comma10k's five classes: a fair miniature of comma10k / CamVid,
not blobs.

A pinhole camera 1.22 m above the road (comma10k's focal length in image widths) looks along a
straight or curving road of 1-4 lanes towards a horizon and vanishing point that vary per drive. The
sky has a gradient and clouds; the roadside is grass with trees or sidewalks with buildings and
people; lanes are dashed in perspective with optional solid edge lines; 0-4 cars drive ahead at
perspective-consistent scale (about 30% painted close to the asphalt); the ego car at the bottom
(hood reflecting the scene, dark dashboard below, about a quarter of the frame as in comma10k) is
``my_car``. Distance haze, light (day / overcast / dusk / night),
lens softness and sensor noise finish the frame.

Class ids are comma10k's 1..5 shifted to 0..4 (``CLASSES``); ``PALETTE`` holds comma10k's mask
colours. Masks are painted without anti-aliasing,
images with it. Frames of one drive share a :class:`DriveStyle`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.data.synthetic.driving_objects import draw_ego
from pipeline.data.synthetic.driving_paint import (
    FOCAL,
    LANE_MARKINGS,
    ROAD,
    Camera,
    Color,
    Painter,
    smooth_noise,
    texture,
)
from pipeline.data.synthetic.driving_scenery import draw_roadside, draw_traffic, road_strip
from pipeline.errors import PipelineError

CLASSES = ["road", "lane_markings", "undrivable", "movable", "my_car"]
# comma10k's mask colours (RGB), there numbered 1..5: road #402020, lane markings #ff0000,
# undrivable
# #808060, movable #00ff66, my car #cc00ff (see comma10k's README).
PALETTE = {0: (64, 32, 32), 1: (255, 0, 0), 2: (128, 128, 96), 3: (0, 255, 102), 4: (204, 0, 255)}
DEFAULT_SIZE = (582, 437)  # width, height: half of comma10k's 1164x874
MIN_SIZE = (32, 24)
MAX_SIZE = (4096, 4096)

# sky colour at the top, at the horizon (also the haze colour), exposure gain, visibility range (m)
_LIGHTS = {
    "day": ((70, 130, 210), (185, 210, 235), 1.0, (400.0, 900.0)),
    "overcast": ((150, 155, 165), (205, 205, 210), 0.9, (200.0, 450.0)),
    "dusk": ((45, 55, 100), (235, 155, 105), 0.6, (300.0, 700.0)),
    "night": (
        (8, 10, 18),
        (28, 28, 38),
        0.8,
        (40.0, 90.0),
    ),  # 'haze' to black: headlights reach ~60 m
}
_GRASS: list[Color] = [(70, 110, 50), (115, 125, 60), (140, 115, 80)]
_HOODS: list[Color] = [
    (25, 25, 28),
    (45, 47, 52),
    (205, 205, 210),
    (120, 20, 25),
    (30, 45, 90),
    (90, 95, 100),
]


@dataclass(frozen=True)
class DriveStyle:
    """What the frames of one drive share: camera mount, road, surroundings, ego car and light.

    ``horizon`` and ``vanish`` are fractions of the height / width; ``curve`` is in 1/m;
    colours are RGB.
    """

    horizon: float
    vanish: float
    curve: float
    curve_end: float  # m: where the bend ends (the road runs straight on beyond)
    lanes: int
    ego_lane: int
    lane_width: float
    town: bool  # sidewalks, buildings and people; otherwise grass, trees and gravel shoulders
    verge: float  # width of the sidewalks (town) or gravel shoulders (m)
    markings: bool  # dashed lane lines (worn away on some roads)
    edge_lines: bool  # solid lines along the road edges
    paint: Color
    road: Color
    ground: Color
    light: str
    visibility: float
    hood: Color
    hood_height: float  # fraction of the height the ego car (hood + dashboard) covers at the centre
    hood_bulge: float  # extra fraction at the frame's sides (the hood is convex)
    gloss: float  # how strongly the hood reflects the scene
    dashboard: float  # fraction of the ego region, from the bottom, that is dashboard


def random_drive(rng: np.random.Generator) -> DriveStyle:
    """Draw the shared look of one drive."""
    lanes = int(rng.choice([1, 2, 2, 3, 3, 4]))
    light = str(rng.choice(list(_LIGHTS), p=[0.55, 0.2, 0.13, 0.12]))
    gray = rng.uniform(70, 125)
    town = bool(rng.random() < 0.5)
    ground = (gray + 45, gray + 43, gray + 38) if town else _GRASS[rng.integers(len(_GRASS))]
    return DriveStyle(
        horizon=rng.uniform(0.40, 0.50),
        vanish=rng.uniform(0.42, 0.58),
        curve=0.0
        if rng.random() < 0.5
        else float(rng.choice([-1, 1]) * rng.uniform(0.0008, 0.003)),
        curve_end=rng.uniform(40.0, 120.0),
        lanes=lanes,
        ego_lane=int(rng.integers(lanes)),
        lane_width=rng.uniform(3.2, 3.8),
        town=town,
        verge=rng.uniform(2.0, 4.0) if town else rng.uniform(0.4, 1.5),
        markings=bool(rng.random() < 0.9),
        edge_lines=bool(rng.random() < 0.6),
        paint=(230, 190, 60) if rng.random() < 0.2 else (235, 235, 228),
        road=tuple(float(gray + rng.normal(0, 4)) for _ in range(3)),
        ground=tuple(map(float, ground)),
        light=light,
        visibility=rng.uniform(*_LIGHTS[light][3]),
        hood=_HOODS[rng.integers(len(_HOODS))],
        hood_height=rng.uniform(0.22, 0.31),
        hood_bulge=rng.uniform(0.01, 0.05),
        gloss=rng.uniform(0.15, 0.45),
        dashboard=rng.uniform(0.3, 0.65),
    )


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    width, height = (int(v) for v in size)
    if not (MIN_SIZE[0] <= width <= MAX_SIZE[0] and MIN_SIZE[1] <= height <= MAX_SIZE[1]):
        raise PipelineError(
            f"size {width}x{height}: width must be {MIN_SIZE[0]}..{MAX_SIZE[0]}, "
            f"height {MIN_SIZE[1]}..{MAX_SIZE[1]}"
        )
    return width, height


def _sky(p: Painter, rng: np.random.Generator, drive: DriveStyle) -> None:
    """Vertical gradient towards the horizon colour, plus soft clouds fading near the horizon.

    Clouds are as much brighter than the horizon as the light allows: near white by day,
    dim at night.
    """
    top, horizon = (np.asarray(c, np.float32) for c in _LIGHTS[drive.light][:2])
    height, width = p.mask.shape
    t = np.clip(np.arange(height, dtype=np.float32) / max(p.cam.horizon, 1.0), 0, 1) ** 0.6
    p.img[:] = (top * (1 - t[:, None]) + horizon * t[:, None])[:, None, :]
    cover = np.clip(
        smooth_noise(rng, height, width, max(width / 6, 2)) - rng.uniform(0.3, 1.5), 0, 1
    )
    cloud = horizon + (245 - horizon) * horizon.mean() / 255
    p.img += (cloud - p.img) * (0.7 * cover * (1 - t[:, None]))[..., None]


def _ground(
    p: Painter, rng: np.random.Generator, drive: DriveStyle, edges: tuple[float, float]
) -> None:
    """Grass or pavement, shoulders or sidewalks, the asphalt (``ROAD``), then the painted lines."""
    height, width = p.mask.shape
    left, right = edges
    field = texture(rng, height, width, drive.ground, 0.12 if not drive.town else 0.05, 0.08)
    p.fill(
        np.array(
            [
                (-1, p.cam.horizon),
                (width + 1, p.cam.horizon),
                (width + 1, height + 1),
                (-1, height + 1),
            ]
        ),
        field,
    )
    verge, shade = drive.verge, ((0.9, 1.1) if drive.town else (0.95, 0.95))
    side = texture(
        rng,
        height,
        width,
        (1.05 * drive.road[0] + 25, drive.road[1] + 22, 0.95 * drive.road[2] + 18),
        0.06,
        0.10,
    )
    for (x0, x1), s in zip(((left - verge, left), (right, right + verge)), shade, strict=True):
        p.fill(road_strip(p.cam, x0, x1), side * s)
    if drive.town:  # curbs: bright thin strips on the road edges
        for x0 in (left - 0.15, right):
            p.fill(road_strip(p.cam, x0, x0 + 0.15), np.asarray(drive.ground) * 1.2)
    p.fill(
        road_strip(p.cam, left, right), texture(rng, height, width, drive.road, 0.07, 0.06), ROAD
    )
    _markings(p, rng, drive, edges)
    p.haze_ground()


def _markings(
    p: Painter, rng: np.random.Generator, drive: DriveStyle, edges: tuple[float, float]
) -> None:
    """Dashed lines between lanes (3 m dash, 12 m period, as on US roads) and optional solid
    edge lines.

    Lines stop where they would be thinner than 0.3 px; the paint is partly worn (opacity) in the
    image but fully labelled in the mask, as comma10k's annotators do.
    """
    left, right = edges
    z_far = min(160.0, p.cam.focal * 0.13 / 0.3)
    wear = rng.uniform(0.55, 0.95)
    if drive.markings:
        for k in range(1, drive.lanes):
            x = left + k * drive.lane_width
            for z in np.arange(rng.uniform(-12.0, 0.0), z_far, 12.0):
                if z + 3.0 > 1.0:
                    dash = road_strip(p.cam, x - 0.065, x + 0.065, max(z, 1.0), z + 3.0, n=4)
                    p.fill(dash, drive.paint, LANE_MARKINGS, opacity=wear)
    if drive.edge_lines:
        for x in (left + 0.25, right - 0.4):
            p.fill(
                road_strip(p.cam, x, x + 0.15, z_far=z_far),
                drive.paint,
                LANE_MARKINGS,
                opacity=wear,
            )


def _finish(img: np.ndarray, rng: np.random.Generator, drive: DriveStyle) -> np.ndarray:
    """Exposure, gamma, colour cast, vignette, lens softness and sensor noise; returns uint8."""
    height, width = img.shape[:2]
    gain = _LIGHTS[drive.light][2] * rng.uniform(0.9, 1.1) * rng.normal(1.0, 0.03, 3)
    img = 255 * (np.clip(img, 0, 255) / 255) ** rng.uniform(0.9, 1.1) * gain.astype(np.float32)
    yy, xx = np.meshgrid(np.linspace(-1, 1, height), np.linspace(-1, 1, width), indexing="ij")
    img *= (1 - 0.2 * (xx**2 + yy**2) / 2)[..., None].astype(np.float32)
    img = cv2.GaussianBlur(img.astype(np.float32), (0, 0), 0.5)
    img += rng.normal(0, rng.uniform(1.5, 4.0), img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def render_scene(
    rng: np.random.Generator,
    size: tuple[int, int] = DEFAULT_SIZE,
    drive: DriveStyle | None = None,
    cars: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Render one dash-cam frame.

    Args:
        rng: the only source of randomness (same state -> same frame).
        size: ``(width, height)`` in pixels, from ``MIN_SIZE`` up.
        drive: shared look of the drive; a fresh :func:`random_drive` if None.
        cars: number of cars ahead (fewer if the lanes are full); random 0..4 if None.

    Returns:
        ``(image, mask)``: ``(H, W, 3)`` uint8 RGB and ``(H, W)`` uint8 class ids 0..4
        (``CLASSES``).
    """
    width, height = _check_size(size)
    drive = drive or random_drive(rng)
    # per frame: a little pitch/yaw shake and drift within the lane
    cam = Camera(
        focal=FOCAL * width,
        horizon=height * (drive.horizon + rng.normal(0, 0.008)),
        vanish=width * (drive.vanish + rng.normal(0, 0.01)),
        curve=drive.curve,
        curve_end=drive.curve_end,
        offset=float(np.clip(rng.normal(0, 0.3), -0.8, 0.8)),
    )
    p = Painter(width, height, cam, haze=_LIGHTS[drive.light][1], visibility=drive.visibility)
    left = -(drive.ego_lane + 0.5) * drive.lane_width
    edges = (left, left + drive.lanes * drive.lane_width)
    _sky(p, rng, drive)
    _ground(p, rng, drive, edges)
    sidewalks = [(edges[0] - drive.verge, edges[0]), (edges[1], edges[1] + drive.verge)]
    draw_roadside(p, rng, drive.town, sidewalks)
    n_cars = int(rng.choice(5, p=[0.1, 0.25, 0.3, 0.2, 0.15])) if cars is None else cars
    lanes = [left + (k + 0.5) * drive.lane_width for k in range(drive.lanes)]
    people = sidewalks if drive.town and rng.random() < 0.5 else []
    draw_traffic(p, rng, n_cars, lanes, drive.road, people)
    draw_ego(p, rng, drive.hood, drive.hood_height, drive.hood_bulge, drive.gloss, drive.dashboard)
    return _finish(p.img, rng, drive), p.mask.copy()
