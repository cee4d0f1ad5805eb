import cv2
import numpy as np

from pipeline.data.synthetic.cars import random_car, render_view


def test_views_change_the_silhouette_and_masks_are_binary():
    rng = np.random.default_rng(0)
    car = random_car(rng)
    areas, widths = [], []
    for view in range(8):
        image, mask = render_view(car, view, 8, (160, 96), rng)
        assert image.shape == (96, 160, 3) and image.dtype == np.uint8
        assert set(np.unique(mask)) == {0, 1}
        cols = np.flatnonzero(mask.any(0))
        widths.append(cols[-1] - cols[0])
        areas.append(mask.mean())
    assert max(widths) > 1.8 * min(widths)  # side view much longer than the front view
    assert 0.03 < min(areas) and max(areas) < 0.6


def test_car_is_distinguishable_but_not_trivially():
    rng = np.random.default_rng(3)
    gaps = []
    for _ in range(12):
        car = random_car(rng)
        image, mask = render_view(car, 2, 16, (160, 96), rng)
        gray, ring = image.mean(-1), np.ones((3, 3), np.uint8)
        inside, outside = mask - cv2.erode(mask, ring), cv2.dilate(mask, ring) - mask
        gaps.append(
            abs(gray[inside == 1].mean() - gray[outside == 1].mean())
        )  # contrast across the outline
    assert max(gaps) > 100  # some cars contrast strongly
    assert min(gaps) < 45  # and some are close to the studio background


def test_size_up_to_carvana_resolution():
    rng = np.random.default_rng(1)
    image, mask = render_view(random_car(rng), 0, 16, (1918, 1280), rng)
    assert image.shape == (1280, 1918, 3) and mask.shape == (1280, 1918)
