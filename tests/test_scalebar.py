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


def _two_phase(
    shape: tuple[int, int], seed: int, lo: int, hi: int, level: float = 0.0
) -> np.ndarray:
    """A segmented two-phase micrograph at raw grey levels ``lo``/``hi`` (blobs, sharp;
    a higher ``level`` leaves fewer ``hi`` blobs)."""
    rng = np.random.default_rng(seed)
    f = ndimage.gaussian_filter(rng.normal(size=shape), 3.0)
    f /= f.std()
    return np.where(f > level, hi, lo).astype(np.uint8)


@pytest.mark.parametrize(
    ("lo", "hi", "font", "size"),
    [(26, 155, BITMAP, 18), (64, 192, FONTS[-1], 12), (122, 199, FONTS[-1], 16)],
    ids=["reads-in-grey", "turned-black-thin-text", "black-next-to-a-mid-phase"],
)
def test_light_grey_bar_over_two_phase_data_masked_tightly(lo, hi, font, size):
    """A grey-200 bar over a sharp two-phase image (drawn in black where 200 would not
    read): the phases next to the bar are not an edge blur, and a dark phase beside black
    text does not join the label, so the mask stays tight."""
    img = _two_phase((320, 440), seed=lo, lo=lo, hi=hi)
    style = BarStyle(
        font=font,
        size=size,
        colour=200,
        corner="bl",
        style="overlay",
        length_frac=0.24,
        thickness=8,
    )
    r = render(img, style)
    found, mask = _mask_for(r["image"])
    assert found["bar_box"] == r["bar_box"]
    assert found["edge_blur_px"] == 0  # drawn sharp
    truth = r["truth"]
    recall = (mask & truth).sum() / truth.sum()
    precision = (mask & truth).sum() / mask.sum()
    assert recall >= 0.99, recall
    assert precision >= 0.8, precision


def test_blurred_bar_edges_measured():
    img = np.full((200, 300), 120.0)
    img[150:156, 40:140] = 250.0
    blurred = np.round(ndimage.gaussian_filter(img, 1.0)).astype(np.uint8)
    found = detect_scale_bar(blurred)
    assert found is not None and found["edge_blur_px"] >= 1
    sharp = detect_scale_bar(img.astype(np.uint8))
    assert sharp is not None and sharp["edge_blur_px"] == 0


def test_short_phase_rectangle_with_pieces_attached_is_not_a_bar():
    """A two-phase image's light phase can form a short solid rectangle with blobs of the
    same grey hanging off it (micrograph 630): those blobs are not its text label."""
    img = np.full((375, 435), 64, np.uint8)
    img[100:105, 200:221] = 192  # 21 x 5: as long as the shortest bar
    img[105:113, 203:207] = 192  # glyph-sized blobs joined to its lower edge
    img[105:110, 212:217] = 192
    img[96:100, 214:219] = 192  # and to its upper edge
    assert detect_scale_bar(img) is None
    # the same blobs set apart from the bar by a gap read as its label
    img[105:107] = 64
    img[98:100] = 64
    assert detect_scale_bar(img) is not None


def test_grey_200_bar_beside_a_192_phase_leaves_the_phase_out():
    """Micrograph 160: a grey-200 bar reads over the dark phase, but blobs of the 192
    phase lie 8 levels from it; the tolerance stays under 8 so they are not glyphs."""
    img = _two_phase((467, 700), seed=160, lo=64, hi=192, level=1.2)
    style = BarStyle(
        font=FONTS[-1],
        size=27,
        colour=200,
        corner="bl",
        style="overlay",
        length_frac=0.34,
        thickness=4,
    )
    r = render(img, style)
    assert r["colour"] == 200
    found, mask = _mask_for(r["image"])
    assert found["bar_box"] == r["bar_box"]
    assert found["tolerance"] < 8
    truth = r["truth"]
    assert (mask & truth).sum() / truth.sum() >= 0.99
    assert (mask & truth).sum() / mask.sum() >= 0.8
