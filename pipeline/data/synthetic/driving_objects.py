"""Things in the synthetic driving scenes: cars, people, buildings, trees and the ego car's hood.

Every object is a few planar 3-D faces in road coordinates (X right, Y up, Z forward, metres) handed
to :class:`~pipeline.data.synthetic.driving_paint.Painter`, so perspective, scale and haze come from
the one camera and the mask always matches the image (both painted in the same order, far to near).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.data.synthetic.driving_paint import (
    MOVABLE,
    MY_CAR,
    UNDRIVABLE,
    Color,
    Painter,
    circle,
)

_PAINTS: list[Color] = [
    (235, 235, 232),
    (200, 202, 206),
    (28, 28, 32),
    (150, 20, 25),
    (25, 50, 120),
    (95, 97, 100),
    (200, 185, 150),
    (35, 85, 60),
    (235, 190, 40),
    (120, 60, 30),
]
_FACADES: list[Color] = [
    (190, 175, 150),
    (150, 80, 60),
    (170, 170, 165),
    (225, 220, 205),
    (95, 110, 130),
    (120, 100, 80),
]
_GLASS: Color = (32, 38, 48)
_TYRE: Color = (16, 16, 18)


@dataclass(frozen=True)
class Car:
    """A car driving ahead, seen from behind: rear centre at lateral ``x``, distance ``z`` (m).

    ``body`` is the trunk-lid height (below the camera, so the lid is seen from above) and ``roof``
    the roof height; ``paint`` is RGB.
    """

    x: float
    z: float
    width: float
    body: float
    roof: float
    length: float
    paint: Color


def random_cars(rng: np.random.Generator, n: int, lanes: list[float], road: Color) -> list[Car]:
    """Up to ``n`` cars in the lanes centred at ``lanes`` (m), at least 8 m apart in a lane,
    far first.

    About 30% are painted close to the asphalt colour ``road`` (the hard case for a segmenter).
    """
    cars: list[Car] = []
    for _ in range(8 * n):
        if len(cars) == n:
            break
        lane = int(rng.integers(len(lanes)))
        z = 7.0 * 10 ** rng.uniform(
            0, 1
        )  # log-uniform 7..70 m: near cars are as common as far ones
        if any(abs(c.x - lanes[lane]) < 1.0 and abs(c.z - z) < 8.0 for c in cars):
            continue
        if rng.random() < 0.3:
            paint = tuple(float(np.clip(c + rng.normal(0, 10), 0, 255)) for c in road)
        else:
            paint = tuple(
                float(np.clip(c + rng.normal(0, 8), 0, 255))
                for c in _PAINTS[rng.integers(len(_PAINTS))]
            )
        cars.append(
            Car(
                lanes[lane] + rng.normal(0, 0.2),
                z,
                rng.uniform(1.7, 2.0),
                rng.uniform(0.85, 1.1),
                rng.uniform(1.4, 1.9),
                rng.uniform(4.0, 4.9),
                paint,
            )
        )
    return sorted(cars, key=lambda c: -c.z)


def _quad_z(x0: float, x1: float, y0: float, y1: float, z: float) -> np.ndarray:
    """Upright rectangle facing the camera at distance ``z``."""
    return np.array([(x0, y0, z), (x1, y0, z), (x1, y1, z), (x0, y1, z)])


def _quad_x(x: float, z0: float, z1: float, y0: float, y1: float) -> np.ndarray:
    """Upright rectangle along the road at lateral ``x``."""
    return np.array([(x, y0, z0), (x, y0, z1), (x, y1, z1), (x, y1, z0)])


def _car_side(p: Painter, car: Car, side: float) -> None:
    """The flank facing the camera: body, two wheels (exact circles on the flank plane),
    side glass."""
    z0, z1 = car.z, car.z + car.length
    p.face(_quad_x(side, z0, z1, 0.25, car.body), car.paint, MOVABLE, shade=0.7)
    t = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    for zc in (z0 + 0.8, z1 - 0.9):
        rim = np.column_stack([np.full(12, side), 0.33 + 0.33 * np.sin(t), zc + 0.33 * np.cos(t)])
        p.face(rim, _TYRE, MOVABLE)
    inner = side - 0.12 * np.sign(side - car.x)
    glass = np.array(
        [
            (inner, car.body, z0 + 0.3),
            (inner, car.roof, z0 + 0.9),
            (inner, car.roof, z1 - 1.7),
            (inner, car.body, z1 - 1.1),
        ]
    )
    p.face(glass, _GLASS, MOVABLE)


def draw_car(p: Painter, car: Car) -> None:
    """Paint ``car`` (mask: ``MOVABLE``): shadow, wheels, flank, trunk lid, cabin, rear,
    lights, plate."""
    left, right, z0 = car.x - car.width / 2, car.x + car.width / 2, car.z
    shadow = np.array(
        [
            (left - 0.1, 0, z0 - 0.2),
            (right + 0.1, 0, z0 - 0.2),
            (right + 0.1, 0, z0 + car.length),
            (left - 0.1, 0, z0 + car.length),
        ]
    )
    p.face(shadow, (0, 0, 0), opacity=0.6)  # image only: the road under a car is still road
    for wx in (left + 0.05, right - 0.3):
        p.face(_quad_z(wx, wx + 0.25, 0.0, 0.5, z0 + 0.8), _TYRE, MOVABLE)
    if right < p.cam.offset or left > p.cam.offset:  # a car beside our lane shows its flank
        _car_side(p, car, right if right < p.cam.offset else left)
    lid = np.array(
        [
            (left, car.body, z0),
            (right, car.body, z0),
            (right, car.body, z0 + car.length),
            (left, car.body, z0 + car.length),
        ]
    )
    p.face(lid, car.paint, MOVABLE, shade=1.08)
    cabin = np.array(
        [
            (left + 0.12, car.body, z0 + 0.3),
            (right - 0.12, car.body, z0 + 0.3),
            (right - 0.25, car.roof, z0 + 0.9),
            (left + 0.25, car.roof, z0 + 0.9),
        ]
    )
    p.face(cabin, car.paint, MOVABLE, shade=0.9)
    p.face(cabin + (cabin.mean(0) - cabin) * 0.18, _GLASS, MOVABLE)  # rear window inside its frame
    p.face(_quad_z(left, right, 0.25, car.body, z0), car.paint, MOVABLE, shade=0.85)
    p.face(
        _quad_z(left, right, 0.25, 0.42, z0), np.asarray(car.paint) * 0.35 + 15, MOVABLE
    )  # bumper
    for x0 in (left + 0.06, right - 0.42):
        p.face(_quad_z(x0, x0 + 0.36, car.body - 0.3, car.body - 0.12, z0), (205, 25, 30), MOVABLE)
    p.face(_quad_z(car.x - 0.26, car.x + 0.26, 0.46, 0.58, z0), (225, 225, 215), MOVABLE)


def draw_person(p: Painter, rng: np.random.Generator, x: float, z: float) -> None:
    """A pedestrian facing the camera at ``(x, z)`` (mask: ``MOVABLE``): legs, torso, arms, head."""
    h = rng.uniform(1.55, 1.9)
    shirt, trousers = rng.uniform(20, 230, 3), rng.uniform(20, 120, 3)
    for x0 in (x - 0.17, x + 0.02):
        p.face(_quad_z(x0, x0 + 0.15, 0.0, 0.48 * h, z), trousers, MOVABLE)
    p.face(_quad_z(x - 0.22, x + 0.22, 0.47 * h, 0.82 * h, z), shirt, MOVABLE)
    for x0 in (x - 0.3, x + 0.22):
        p.face(_quad_z(x0, x0 + 0.08, 0.45 * h, 0.8 * h, z), shirt, MOVABLE, shade=0.85)
    center = p.cam.project(np.array([x, 0.9 * h, z]))
    r = p.cam.pixels(0.11, z)
    p.fill(circle(center, (r, 1.2 * r), 12), p.fog((200, 160, 130), z), MOVABLE)


def draw_building(
    p: Painter, rng: np.random.Generator, x: float, z0: float, z1: float, height: float
) -> None:
    """A block whose facade runs along the road at lateral ``x`` from ``z0`` to ``z1``,
    with windows."""
    side = np.sign(x)
    color = np.asarray(_FACADES[rng.integers(len(_FACADES))]) * rng.uniform(0.85, 1.1)
    # labelled although the mask starts undrivable: a block may hide the far end of a bending road
    p.face(_quad_x(x, z0, z1, 0.0, height), color, UNDRIVABLE, shade=0.8 if side > 0 else 0.95)
    front = np.array(
        [(x, 0, z0), (x + 12 * side, 0, z0), (x + 12 * side, height, z0), (x, height, z0)]
    )
    p.face(front, color, UNDRIVABLE)
    if p.cam.pixels(1.4, z0) < 1.5:  # windows too small to see: skip them (and their cost)
        return
    lit = rng.random() < 0.3
    for y in np.arange(1.2, height - 2.0, 3.0):
        for z in np.arange(z0 + 1.0, z1 - 2.3, 3.5):
            glass = (210, 190, 120) if lit and rng.random() < 0.3 else _GLASS
            p.face(_quad_x(x, z, z + 1.8, y, y + 1.5), glass, shade=rng.uniform(0.8, 1.6))


def draw_tree(p: Painter, rng: np.random.Generator, x: float, z: float, leaves: Color) -> None:
    """A trunk and a round canopy of a few overlapping, differently lit blobs."""
    trunk, r = rng.uniform(1.5, 3.0), rng.uniform(1.2, 3.2)
    p.face(
        _quad_z(x - 0.15, x + 0.15, 0.0, trunk + r * 0.5, z), (80, 60, 40), UNDRIVABLE
    )  # may hide road
    for k, shade in enumerate((0.75, 1.0, 1.2)):
        offset = np.array([(k - 1) * 0.35 * r, trunk + r * (1.0 + 0.15 * k), z])
        center = p.cam.project(offset + (x, 0, 0))
        radius = p.cam.pixels(r * (1.0 - 0.2 * k), z)
        p.fill(
            circle(center, (radius, 0.9 * radius), 14),
            p.fog(np.asarray(leaves) * shade, z),
            UNDRIVABLE,
        )


def _arc(width: int, height: int, top: float, sag: float) -> np.ndarray:
    """Region below a convex edge: ``top`` (px) at the centre,
    ``top + sag`` at the frame's sides."""
    xs = np.linspace(-1, width + 1, 33)
    edge = top + sag * ((xs - width / 2) / (width / 2)) ** 2
    return np.vstack([np.column_stack([xs, edge]), [(width + 1, height + 1), (-1, height + 1)]])


def draw_ego(
    p: Painter,
    rng: np.random.Generator,
    paint: Color,
    cover: float,
    bulge: float,
    gloss: float,
    dashboard: float,
) -> None:
    """The ego car (``MY_CAR``): a hood that mirrors the scene, and below it the dark dashboard.

    ``cover`` (fraction of the height at the centre) and ``bulge`` (extra at the sides) shape the
    hood's edge; ``gloss`` scales the reflection; ``dashboard`` is the share of the region that is
    dashboard, as comma10k labels hood and dashboard alike.
    """
    height, width = p.mask.shape
    top = height * (1 - cover)
    rows = np.arange(height, dtype=np.float32)[:, None]
    below = np.clip((rows - top) / max(height - top, 1.0), 0, 1)
    color = np.asarray(paint, np.float32) * (1 - 0.45 * below) + 60 * np.exp(
        -below / 0.08
    )  # lit rim
    mirror = np.clip(2 * top - rows[:, 0], 0, height - 1).astype(
        int
    )  # the scene flipped about the edge
    reflection = cv2.GaussianBlur(p.img[mirror], (0, 0), max(0.6, 0.006 * width))
    p.fill(
        _arc(width, height, top, bulge * height),
        color[:, None, :] + gloss * (1 - below[..., None]) * reflection,
        MY_CAR,
    )
    dash_top = height - dashboard * (height - top)
    depth = height - dash_top
    vents = (
        np.abs(rows - dash_top - 0.06 * depth) < 0.04 * depth + 0.5
    )  # a defroster grille below the glass
    slots = vents & (np.sin(2 * np.pi * np.arange(width) / max(3.0, width / 50)) > 0.3)
    shade = rng.uniform(15, 40) * (1 + 0.2 * below) * np.where(slots, 0.45, 1.0)
    p.fill(
        _arc(width, height, dash_top, 0.4 * bulge * height),
        np.repeat(shade[..., None], 3, axis=2),
        MY_CAR,
    )
