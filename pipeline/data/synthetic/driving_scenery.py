"""Layout of the synthetic driving scenes: road strips, the roadside and the traffic,
painted far to near.

Painter's algorithm: every object is queued with its distance and drawn farthest first, so nearer
objects cover farther ones in the image and in the mask alike.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from pipeline.data.synthetic.driving_objects import (
    draw_building,
    draw_car,
    draw_person,
    draw_tree,
    random_cars,
)
from pipeline.data.synthetic.driving_paint import UNDRIVABLE, Camera, Color, Painter, smooth_noise

Strip = tuple[float, float]  # lateral extent (x0, x1) in m


def road_strip(
    cam: Camera, x0: float, x1: float, z_near: float = 1.0, z_far: float = 400.0, n: int = 40
) -> np.ndarray:
    """Pixel polygon ``(2n, 2)`` of the ground band ``x0..x1`` from ``z_near`` to ``z_far``
    (follows the curve).

    Distances are sampled geometrically: a bend changes fastest, in pixels, close to the camera.
    """
    z = np.geomspace(z_near, z_far, n)
    near = np.column_stack([np.full(n, x0), np.zeros(n), z])
    far = np.column_stack([np.full(n, x1), np.zeros(n), z[::-1]])
    return cam.project(np.vstack([near, far]))


def _skyline(p: Painter, rng: np.random.Generator, town: bool) -> None:
    """A hazy band on the horizon: blocky city blocks or a soft tree line/hills (``UNDRIVABLE``).

    It is labelled too because it covers the farthest sliver of road in the image.
    """
    width = p.mask.shape[1]
    if town:
        edges = np.cumsum(rng.uniform(0.02, 0.08, 64) * width) - rng.uniform(0, 0.05) * width
        tops = rng.uniform(0.005, 0.07, 64) * width
        xs, heights = np.repeat(np.concatenate([[-1.0], edges[:-1]]), 2), np.repeat(tops, 2)
        xs[1::2] = edges
        keep = np.concatenate([[True], xs[:-1] < width + 1])
        xs, heights, color = xs[keep], heights[keep], (90, 92, 105)
    else:
        xs = np.arange(-1, width + 2, dtype=np.float64)
        heights = (
            0.025
            * width
            * np.clip(1 + 0.6 * smooth_noise(rng, 1, len(xs), max(width / 12, 2))[0], 0.1, None)
        )
        color = (50, 75, 50)
    top = np.column_stack([xs, p.cam.horizon - heights])
    poly = np.vstack([top, [(xs[-1], p.cam.horizon + 0.5), (xs[0], p.cam.horizon + 0.5)]])
    p.fill(poly, p.fog(color, 0.8 * p.visibility), UNDRIVABLE)


def _buildings(rng: np.random.Generator, side: int, edge: float) -> list[tuple[float, Callable]]:
    """Blocks along one side, 10-35 m long with gaps,
    set back 0.3-3 m from the sidewalk ``edge``."""
    items, z = [], rng.uniform(3.0, 15.0)
    while z < 220.0:
        length = rng.uniform(10.0, 35.0)
        if rng.random() < 0.85:
            x, height = edge + side * rng.uniform(0.3, 3.0), rng.uniform(5.0, 25.0)
            items.append((z, lambda p, r, a=(x, z, z + length, height): draw_building(p, r, *a)))
        z += length + rng.uniform(0.0, 10.0)
    return items


def _trees(rng: np.random.Generator, side: int, edge: float) -> list[tuple[float, Callable]]:
    """0-24 trees 1.5-15 m beyond the shoulder ``edge``, log-uniform in distance 4..200 m."""
    leaves = tuple(float(c) for c in np.array([45, 85, 40]) * rng.uniform(0.7, 1.2))
    items = []
    for _ in range(int(rng.integers(0, 25))):
        x, z = edge + side * rng.uniform(1.5, 15.0), 4.0 * 10 ** rng.uniform(0, 1.7)
        items.append((z, lambda p, r, a=(x, z, leaves): draw_tree(p, r, *a)))
    return items


def draw_roadside(p: Painter, rng: np.random.Generator, town: bool, verges: list[Strip]) -> None:
    """Skyline, then buildings (town) or trees (country) beyond the ``verges`` (left, right),
    far first."""
    _skyline(p, rng, town)
    items = []
    for side, edge in ((-1, verges[0][0]), (1, verges[1][1])):
        items += _buildings(rng, side, edge) if town else _trees(rng, side, edge)
    for _, draw in sorted(items, key=lambda item: -item[0]):
        draw(p, rng)


def draw_traffic(
    p: Painter,
    rng: np.random.Generator,
    n_cars: int,
    lanes: list[float],
    road: Color,
    sidewalks: list[Strip],
) -> None:
    """``n_cars`` cars in the ``lanes`` (centres, m) and 1-3 people on ``sidewalks`` if any,
    far first."""
    items = [(car.z, lambda c=car: draw_car(p, c)) for car in random_cars(rng, n_cars, lanes, road)]
    for _ in range(int(rng.integers(1, 4)) if sidewalks else 0):
        x0, x1 = sidewalks[int(rng.integers(len(sidewalks)))]
        x, z = rng.uniform(x0 + 0.4, x1 - 0.4), rng.uniform(6.0, 40.0)
        items.append((z, lambda a=(x, z): draw_person(p, rng, *a)))
    for _, draw in sorted(items, key=lambda item: -item[0]):
        draw()
