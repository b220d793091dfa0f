"""Scale bars on grey data: found, measured and masked tightly (synthetic images)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from microlib.benchmarks.bar_render import BITMAP, BarStyle, available_fonts, render
from microlib.scalebar import detect_scale_bar, scale_bar_mask

FONTS = [BITMAP] + [f for f in available_fonts() if f != BITMAP][:1]


def _grey_texture(shape: tuple[int, int], seed: int, lo: float, hi: float) -> np.ndarray:
    """A grayscale micrograph-like texture spanning ``lo..hi`` (grains of varied grey)."""
    rng = np.random.default_rng(seed)
    f = ndimage.gaussian_filter(rng.normal(size=shape), 4.0)
    f = (f - f.min()) / np.ptp(f)
    return np.round(lo + (hi - lo) * f).astype(np.uint8)


def _mask_for(image: np.ndarray) -> tuple[dict, np.ndarray]:
    found = detect_scale_bar(image)
    assert found is not None
    mask = scale_bar_mask(
        image,
        found["box"],
        found["colour"],
        found["tolerance"],
        dilation=1 + found["edge_blur_px"],
        label_box=found["label_box"],
        bar_box=found["bar_box"],
    )
    return found, mask


@pytest.mark.parametrize("font", FONTS)
@pytest.mark.parametrize(
    ("colour", "lo", "hi"),
    [(0, 10, 230), (255, 25, 245), (40, 70, 230), (215, 20, 180)],
    ids=["black-on-grey", "white-on-grey", "dark-grey-on-grey", "light-grey-on-grey"],
)
def test_bar_and_label_over_grayscale_found_with_a_tight_mask(font, colour, lo, hi):
    img = _grey_texture((300, 420), seed=colour + lo, lo=lo, hi=hi)
    style = BarStyle(
        font=font,
        size=18,
        colour=colour,
        corner="bl",
        style="overlay",
        length_frac=0.25,
        thickness=5,
    )
    r = render(img, style)
    assert r["colour"] == colour  # drawn where it reads, in the asked grey
    found, mask = _mask_for(r["image"])
    assert found["bar_box"] == r["bar_box"]
    assert found["length_px"] == r["length_px"]
    assert found["label_box"] is not None
    truth = r["truth"]
    recall = (mask & truth).sum() / truth.sum()
    precision = (mask & truth).sum() / mask.sum()
    assert recall >= 0.99, recall
    assert precision >= 0.75, precision
    # nothing far from the bar and label is touched
    near = ndimage.binary_dilation(truth, iterations=3)
    assert not (mask & ~near).any()


def test_no_bar_found_in_plain_grey_textures():
    for seed in range(3):
        assert detect_scale_bar(_grey_texture((300, 420), seed, 0, 255)) is None


def test_mask_without_detector_boxes_keeps_the_colour_rule():
    """A curated bar (box + colour, no bar/label boxes) masks the box's bar-coloured pixels."""
    img = np.full((60, 80), 90, np.uint8)
    img[40:45, 10:50] = 250
    img[30:35, 20:24] = 250
    mask = scale_bar_mask(img, [8, 28, 52, 47], 250.0, 10.0, dilation=0)
    assert mask.sum() == 5 * 40 + 5 * 4
