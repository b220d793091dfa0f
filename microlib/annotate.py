"""Automatic annotation of a raw micrograph: crop, scale bar, data type, phases, filters.

This replaces MicroLib's hand-driven GUI (crop clicks, bar-colour clicks, phase clicks,
human exclusion judgement) with pure functions on arrays. Every function takes an image
array plus explicit parameters and returns arrays or plain dicts; nothing here touches a
file, configures logging or draws a progress bar (that is ``microlib.commands.annotate``).

Coordinates
-----------
Boxes are ``[x0, y0, x1, y1]`` in pixels, ``x`` = column, ``y`` = row, half-open
(``image[y0:y1, x0:x1]``), the same convention as MicroLib's ``barbox``
(``mask[y0:y1, x0:x1]``). Annotation boxes are in *raw* image coordinates; the segment
stage converts them to cropped coordinates.

The exclusion criteria are MicroLib's five (Kench et al. 2022): isotropy, feature
representativity, even exposure, uniqueness and image quality. The first four and the
quality checks are per-image scores with thresholds (:func:`filter_scores`,
:func:`evaluate_filters`); uniqueness compares entries with each other and is decided by
:func:`select_entries`.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np
from scipy import ndimage

SCHEMA_VERSION = 1

FILTERS = ("isotropy", "representativity", "exposure", "quality")
QUALITY_COMPONENTS = ("resolution", "edge_width", "blur", "contrast", "noise", "jpeg")
# radii (px) at which the radial autocorrelation of the fingerprint is sampled
FINGERPRINT_RADII = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
FINGERPRINT_BINS = 32
_INV_E = math.exp(-1.0)


# --------------------------------------------------------------------------- thresholds


@dataclass(frozen=True)
class FilterThresholds:
    """Thresholds of the per-image exclusion filters and of the uniqueness check.

    Defaults were calibrated on the 60 real MicroLib training images (all of which
    MicroLib included) and on the demo library's bad cases; ``microlib bench annotate``
    prints the pass rates they give.

    Attributes
    ----------
    iso_max : float
        Largest allowed ratio of the major to the minor correlation length (isotropy).
    repr_min : float
        Smallest allowed field of view, in major correlation lengths across the shorter
        image side (representativity).
    exposure_max : float
        Largest allowed range of the fitted large-scale illumination trend, as a fraction
        of the image contrast (even exposure).
    min_size_px : float
        Smallest allowed shorter side of the cropped image (quality: resolution). SliceGAN
        samples 64 px training slices, so far smaller images cannot be trained at all.
    edge_width_max : float
        Largest allowed blur of phase boundaries, as the Gaussian sigma in px (quality,
        n-phase images), see :func:`edge_width`.
    blur_max : float
        Largest allowed no-reference blur score (quality, grayscale and colour images,
        where there are no phase boundaries to measure), see :func:`blur_score`.
    contrast_min : float
        Smallest allowed robust grey-level range p99 - p1 (quality: contrast).
    noise_max : float
        Largest allowed noise standard deviation as a fraction of the contrast.
    jpeg_max : float
        Largest allowed JPEG blockiness (ratio of grey steps across 8x8 block edges to
        steps elsewhere; 1 = no block artefacts).
    dup_distance_max : float
        Largest fingerprint distance at which two entries of the same material count as
        near-duplicates (uniqueness).
    dup_meta_min : float
        Smallest metadata similarity at which two entries count as the same material.
    """

    iso_max: float = 1.8
    repr_min: float = 5.0
    exposure_max: float = 0.25
    min_size_px: float = 200.0
    edge_width_max: float = 2.0
    blur_max: float = 0.75
    contrast_min: float = 30.0
    noise_max: float = 0.25
    jpeg_max: float = 2.0
    dup_distance_max: float = 0.06
    dup_meta_min: float = 0.5

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def updated(self, overrides: dict[str, Any] | None) -> FilterThresholds:
        """A copy with the non-None entries of ``overrides`` applied."""
        if not overrides:
            return self
        known = set(self.names())
        clean = {k: float(v) for k, v in overrides.items() if v is not None and k in known}
        return replace(self, **clean)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class TypeParams:
    """Parameters of the data-type decision (:func:`decide_data_type`).

    Attributes
    ----------
    chroma_min : float
        Smallest colour residual (grey levels RMS, see :func:`chroma_score`) for an RGB
        image to count as genuinely colour.
    sep2_min : float
        Smallest two-class Otsu separability (between-class / total variance) for an
        image to be thresholded at all; below it the image is kept as grayscale.
    sep_gain_min : float
        Smallest factor by which one more class must shrink the within-class variance
        for the extra phase to be accepted (three-phase over two-phase).
    min_phase_fraction : float
        Every phase must cover at least this fraction of the image.
    max_phases : int
        Most phases considered (2..4; 4 is labelled ``nphase``).
    refine : bool
        Move Otsu thresholds to the midpoints between the phases' modal grey levels
        (:func:`refine_thresholds`), which removes Otsu's bias with unequal fractions.
    flat_field : bool
        Decide the type after removing within-phase illumination drift
        (:func:`illumination_field`).
    """

    chroma_min: float = 5.0
    sep2_min: float = 0.88
    sep_gain_min: float = 2.5
    min_phase_fraction: float = 0.02
    max_phases: int = 3
    refine: bool = True
    flat_field: bool = True


# --------------------------------------------------------------------------- basics


def to_grey(image: np.ndarray) -> np.ndarray:
    """Luminance of an image as float64 in 0..255 (ITU-R BT.601 weights for RGB).

    Parameters
    ----------
    image : ndarray
        ``(H, W)`` grey or ``(H, W, 3|4)`` colour image (alpha ignored).

    Returns
    -------
    ndarray
        ``(H, W)`` float64.
    """
    arr = np.asarray(image)
    if arr.ndim == 2:
        return arr.astype(np.float64)
    if arr.ndim == 3 and arr.shape[2] >= 3:
        rgb = arr[..., :3].astype(np.float64)
        return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
    raise ValueError(f"expected (H, W) or (H, W, 3) image, got shape {arr.shape}")


def crop_image(image: np.ndarray, box: list[int] | tuple[int, ...]) -> np.ndarray:
    """``image[y0:y1, x0:x1]`` for a box ``[x0, y0, x1, y1]``."""
    x0, y0, x1, y1 = (int(v) for v in box)
    return image[y0:y1, x0:x1]


def clip_box(box: list[int] | tuple[int, ...], shape: tuple[int, ...]) -> list[int] | None:
    """Clip a box to an image of ``shape``; None when nothing is left."""
    h, w = shape[:2]
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    x0, x1 = max(0, min(x0, w)), max(0, min(x1, w))
    y0, y1 = max(0, min(y0, h)), max(0, min(y1, h))
    if x1 <= x0 or y1 <= y0:
        return None
    return [x0, y0, x1, y1]


def _masked_values(grey: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    if mask is None:
        return grey.ravel()
    return grey[~mask]


# --------------------------------------------------------------------------- crop


def _row_flatness(rows: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    med = np.median(rows, axis=1)
    frac = (np.abs(rows - med[:, None]) <= tol).mean(axis=1)
    return med, frac


def _edge_trim(
    rows: np.ndarray,
    *,
    tol: float,
    line_frac: float,
    band_bg_frac: float,
    band_contrast: float,
    max_band_frac: float,
    margin: int,
) -> tuple[int, int]:
    """Rows to remove from the start of ``rows`` (index 0 = image edge).

    Returns ``(n_removed, band_rows)`` where ``band_rows`` is the height of an info band
    (0 when only constant lines were stripped).
    """
    n = rows.shape[0]
    limit = max(1, int(max_band_frac * n))
    # a line's pixels sit within 3 tol of its median (JPEG ringing next to the data moves
    # a few by more than tol); a data row of a segmented image with a dominant phase
    # fails this through its few pixels of the other phase, which are far off
    med, flat = _row_flatness(rows[: min(n, 3 * limit + 2)], 3 * tol)
    is_flat = flat >= line_frac

    max_lines = max(4, int(round(0.03 * n)))

    def strip_lines(start: int) -> int:
        # constant lines (frames, borders, separators) from `start` inwards; a row next to
        # a stripped line that mostly keeps the line's value is the line's JPEG fringe.
        # Frames are thin: a longer flat run is a uniform region of the data (a grain
        # spanning the picture) and stays.
        i = start
        while i < limit:
            if i - start >= max_lines:
                return start
            if is_flat[i]:
                i += 1
                continue
            if i > start and (np.abs(rows[i] - med[i - 1]) <= 3 * tol).mean() >= 0.9:
                i += 1
                continue
            break
        return i

    k = strip_lines(0)
    band = 0
    # an info band: a region from the edge whose rows are mostly one background value
    # (text covers a minority of each row), ending in `margin` constant rows on the data
    # side, and clearly flatter than the data rows just inside it. The last condition
    # keeps a micrograph with a dominant flat phase from being read as one big band.
    candidates = [
        b for b in range(k + margin + 1, limit + 1) if b < n and is_flat[b - margin : b].all()
    ]
    cache: dict[int, np.ndarray] = {}
    sub = rows[: min(n, 3 * limit + 2)]
    for b in sorted(candidates, reverse=True):
        v = float(med[b - 1])
        key = int(round(v))
        if key not in cache:
            cache[key] = (np.abs(sub - v) <= tol).mean(axis=1)
        bg = cache[key]
        inside = bg[:b]
        if not np.all((inside >= band_bg_frac) | is_flat[:b]):
            continue
        # a printed band is noise-free: its margin rows, and a good part of all its rows,
        # are background to within tol (a noisy uniform grain is not)
        if not (bg[b - margin : b] >= 0.98).all() or (inside >= 0.98).mean() < 0.25:
            continue
        data = bg[b : min(len(bg), 2 * b)]
        if len(data) == 0:
            continue
        if float(inside.mean()) - float(data.mean()) < band_contrast:
            continue
        band = b
        break
    removed = max(k, band)
    if band:
        removed = strip_lines(band)  # separator lines of another colour, and their fringe
    return removed, band


def detect_crop(
    image: np.ndarray,
    *,
    tol: float = 8.0,
    line_frac: float = 0.995,
    band_bg_frac: float = 0.5,
    band_contrast: float = 0.3,
    max_band_frac: float = 0.35,
    margin: int = 2,
) -> dict[str, Any]:
    """Find the data region of a raw micrograph.

    Strips, on every side, constant lines (frames, borders: rows or columns where at
    least ``line_frac`` of the pixels lie within ``tol`` grey levels of the median) and an
    info band (a flat background region holding text such as the scale bar and
    magnification, separated from the data by at least ``margin`` constant rows).

    Parameters
    ----------
    image : ndarray
        Raw ``(H, W)`` or ``(H, W, 3)`` image.
    tol : float
        Grey-level tolerance of "constant" (absorbs JPEG noise).
    line_frac : float
        Fraction of a row that must be constant for a line to be stripped.
    band_bg_frac : float
        Fraction of every band row that must be background (the rest is text).
    band_contrast : float
        How much flatter (in background fraction) the band must be than the data rows
        next to it.
    max_band_frac : float
        Largest part of the image height/width a band or border may take.
    margin : int
        Constant rows required between band content and data.

    Returns
    -------
    dict
        ``box`` [x0, y0, x1, y1], ``removed`` {top, bottom, left, right} in px and
        ``info_band`` {side, size_px} or None.
    """
    grey = to_grey(image)
    h, w = grey.shape
    views = {
        "top": grey,
        "bottom": grey[::-1],
        "left": grey.T,
        "right": grey.T[::-1],
    }
    removed: dict[str, int] = {}
    bands: dict[str, int] = {}
    for side, rows in views.items():
        removed[side], bands[side] = _edge_trim(
            rows,
            tol=tol,
            line_frac=line_frac,
            band_bg_frac=band_bg_frac,
            band_contrast=band_contrast,
            max_band_frac=max_band_frac,
            margin=margin,
        )
    x0, x1 = removed["left"], w - removed["right"]
    y0, y1 = removed["top"], h - removed["bottom"]
    if x1 - x0 < 8 or y1 - y0 < 8:  # degenerate (e.g. a blank image): keep everything
        x0, y0, x1, y1 = 0, 0, w, h
        removed = {k: 0 for k in removed}
        bands = {k: 0 for k in bands}
    band_side = max(bands, key=lambda s: bands[s])
    info_band = (
        {"side": band_side, "size_px": int(removed[band_side])} if bands[band_side] else None
    )
    return {
        "box": [int(x0), int(y0), int(x1), int(y1)],
        "removed": {k: int(v) for k, v in removed.items()},
        "info_band": info_band,
    }


# --------------------------------------------------------------------------- scale bar


def _components(mask: np.ndarray) -> tuple[np.ndarray, list[tuple[slice, slice]]]:
    lab, _ = ndimage.label(mask)
    return lab, ndimage.find_objects(lab)


def _bar_candidates(
    grey: np.ndarray,
    level_mask: np.ndarray,
    *,
    min_len: int,
    max_len: int,
    min_height: int,
    max_height: int,
    min_aspect: float,
    min_fill: float,
) -> list[dict]:
    h, w = grey.shape
    # a horizontal opening keeps long straight runs (bars) and drops text and most blobs
    opened = ndimage.binary_opening(level_mask, structure=np.ones((1, max(3, min_len // 2)), bool))
    lab, objs = _components(opened)
    found = []
    for i, sl in enumerate(objs, start=1):
        if sl is None:
            continue
        ys, xs = sl
        bh, bw = ys.stop - ys.start, xs.stop - xs.start
        if (
            bw < min_len
            or bw > max_len
            or bh < min_height
            or bh > max_height
            or bw / bh < min_aspect
        ):
            continue
        # a bar is drawn inside the picture; runs cut by the border are data
        if ys.start == 0 or xs.start == 0 or ys.stop == h or xs.stop == w:
            continue
        comp = lab[sl] == i
        fill = float(comp.mean())
        if fill < min_fill:
            continue
        # straight sides: nearly every row spans the whole width, nearly every column
        # the whole height; organic blobs taper
        row_full = float((comp.mean(axis=1) >= 0.9).mean())
        col_full = float((comp.mean(axis=0) >= 0.9).mean())
        if row_full < 0.8 or col_full < 0.9:
            continue
        inner = (
            grey[sl][ndimage.binary_erosion(comp, iterations=1)]
            if min(bh, bw) > 2
            else grey[sl][comp]
        )
        if inner.size == 0:
            inner = grey[sl][comp]
        colour = float(np.median(inner))
        spread = float(np.percentile(np.abs(inner - colour), 90))
        if spread > 20:  # a bar is one solid colour
            continue
        # it stands out: most of a 3-px ring around it is not bar-coloured (a straight
        # run inside a same-coloured phase is not a bar)
        y0, y1 = max(0, ys.start - 3), min(h, ys.stop + 3)
        x0, x1 = max(0, xs.start - 3), min(w, xs.stop + 3)
        ring = np.ones((y1 - y0, x1 - x0), bool)
        ring[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0] = False
        around = grey[y0:y1, x0:x1][ring]
        same = float((np.abs(around - colour) <= 20).mean()) if around.size else 1.0
        if same > 0.5:
            continue
        contrast = abs(colour - float(np.median(around)))
        if contrast < 40:
            continue
        found.append(
            {
                "bar_box": [int(xs.start), int(ys.start), int(xs.stop), int(ys.stop)],
                "colour": colour,
                "fill": fill,
                "contrast": contrast,
            }
        )
    return found


def _label_box(grey: np.ndarray, bar_box: list[int], colour: float, tol: float) -> list[int] | None:
    """Bounding box of text of the bar's colour next to the bar (above or below)."""
    h, w = grey.shape
    x0, y0, x1, y1 = bar_box
    bw, bh = x1 - x0, y1 - y0
    reach = int(max(3 * bh, 36))
    wx0, wx1 = max(0, x0 - bw // 2), min(w, x1 + bw // 2)
    wy0, wy1 = max(0, y0 - reach), min(h, y1 + reach)
    win = np.abs(grey[wy0:wy1, wx0:wx1] - colour) <= tol
    # the bar itself is not label
    win[y0 - wy0 : y1 - wy0, x0 - wx0 : x1 - wx0] = False
    lab, objs = _components(win)
    boxes = []
    for i, sl in enumerate(objs, start=1):
        if sl is None:
            continue
        ys, xs = sl
        gh, gw = ys.stop - ys.start, xs.stop - xs.start
        size = int((lab[sl] == i).sum())
        # glyph-sized pieces that do not run off the search window (data features do)
        touches = (
            ys.start == 0 or xs.start == 0 or ys.stop == win.shape[0] or xs.stop == win.shape[1]
        )
        if size < 3 or gh > reach or gw > bw or touches:
            continue
        boxes.append((xs.start + wx0, ys.start + wy0, xs.stop + wx0, ys.stop + wy0, size))
    if not boxes:
        return None
    # glyphs of one label sit on a common line: keep those overlapping (vertically) the
    # largest cluster, closest to the bar
    boxes.sort(key=lambda b: -b[4])
    ref = boxes[0]
    line = [b for b in boxes if b[1] < ref[3] and b[3] > ref[1]]
    if sum(b[4] for b in line) < 12:
        return None
    return [
        int(min(b[0] for b in line)),
        int(min(b[1] for b in line)),
        int(max(b[2] for b in line)),
        int(max(b[3] for b in line)),
    ]


def _outside(box: list[int], crop_box: list[int]) -> bool:
    """True when ``box`` has no pixel inside ``crop_box`` (both [x0, y0, x1, y1])."""
    return (
        box[2] <= crop_box[0]
        or box[0] >= crop_box[2]
        or box[3] <= crop_box[1]
        or box[1] >= crop_box[3]
    )


def detect_scale_bar(
    image: np.ndarray,
    *,
    min_len_frac: float = 0.05,
    max_len_frac: float = 0.6,
    min_height: int = 3,
    max_height_frac: float = 0.06,
    min_aspect: float = 3.0,
    min_fill: float = 0.9,
    unlabelled_len_frac: float = 0.1,
    pad: int = 2,
) -> dict[str, Any] | None:
    """Detect a scale bar (solid bar plus text label) in an image.

    Candidates are straight-sided, elongated, single-coloured rectangles (bright or
    dark), not cut by the image border, that stand out from what surrounds them; they
    are searched at a few grey levels from the extremes inwards. The label is the
    glyph-sized pieces of the bar's colour above or below the bar. A bar without a
    label is accepted only when it is long (``unlabelled_len_frac``) and at least 4 px
    thick, which keeps straight features of segmented images out.

    Parameters
    ----------
    image : ndarray
        ``(H, W)`` or ``(H, W, 3)``, normally the cropped micrograph.
    min_len_frac, max_len_frac : float
        Bar length limits as fractions of the image width.
    min_height : int
        Thinnest bar (px).
    max_height_frac : float
        Thickest bar as a fraction of the image height.
    min_aspect : float
        Smallest length / thickness ratio.
    min_fill : float
        Smallest fraction of the bar's bounding box it fills (rectangularity).
    unlabelled_len_frac : float
        Shortest bar (fraction of the width) accepted without a label.
    pad : int
        Margin added around bar and label.

    Returns
    -------
    dict or None
        ``box`` (bar + label, padded), ``bar_box``, ``label_box`` (or None), ``colour``,
        ``tolerance``, ``polarity`` and ``length_px``, all in the coordinates of
        ``image``; None when no bar was found.
    """
    grey = to_grey(image)
    h, w = grey.shape
    min_len = max(12, int(min_len_frac * w))
    max_len = max(min_len + 1, int(max_len_frac * w))
    max_height = max(min_height + 1, int(max_height_frac * h))
    best = None
    for polarity, levels in (("bright", (250, 235, 215)), ("dark", (5, 20, 40))):
        for level in levels:
            level_mask = grey >= level if polarity == "bright" else grey <= level
            if not level_mask.any():
                continue
            cands = _bar_candidates(
                grey,
                level_mask,
                min_len=min_len,
                max_len=max_len,
                min_height=min_height,
                max_height=max_height,
                min_aspect=min_aspect,
                min_fill=min_fill,
            )
            hit = False
            for c in cands:
                bx0, by0, bx1, by1 = c["bar_box"]
                tol = _bar_tolerance(grey, c["bar_box"], c["colour"], polarity)
                label = _label_box(grey, c["bar_box"], c["colour"], tol)
                if label is None and not (
                    (bx1 - bx0) >= unlabelled_len_frac * w and (by1 - by0) >= 4
                ):
                    continue
                c.update(
                    polarity=polarity,
                    tolerance=tol,
                    label_box=label,
                    score=(bx1 - bx0) * (by1 - by0) * c["fill"] * (2.0 if label else 1.0),
                )
                hit = True
                if best is None or c["score"] > best["score"]:
                    best = c
            if hit:
                break  # the outermost level that shows a bar wins for this polarity
    if best is None:
        return None
    bx0, by0, bx1, by1 = best["bar_box"]
    label = best["label_box"]
    parts = [best["bar_box"]] + ([label] if label else [])
    box = [
        min(p[0] for p in parts) - pad,
        min(p[1] for p in parts) - pad,
        max(p[2] for p in parts) + pad,
        max(p[3] for p in parts) + pad,
    ]
    return {
        "box": clip_box(box, grey.shape),
        "bar_box": best["bar_box"],
        "label_box": label,
        "colour": round(best["colour"], 2),
        "tolerance": round(best["tolerance"], 2),
        "polarity": best["polarity"],
        "length_px": int(bx1 - bx0),
    }


def _bar_tolerance(grey: np.ndarray, bar_box: list[int], colour: float, polarity: str) -> float:
    """Halfway between the bar colour and the data's extreme grey level.

    Antialiased glyph pixels more than half covered are kept; data pixels stay out
    unless the data reach the bar colour itself.
    """
    bx0, by0, bx1, by1 = bar_box
    outside = np.ones_like(grey, bool)
    outside[max(0, by0 - 40) : by1 + 40, max(0, bx0 - 40) : bx1 + 40] = False
    data = grey[outside] if outside.any() else grey.ravel()
    extreme = np.percentile(data, 99.9) if polarity == "bright" else np.percentile(data, 0.1)
    return float(np.clip(abs(colour - extreme) * 0.8, 8.0, 100.0))


def scale_bar_mask(
    image: np.ndarray,
    box: list[int] | None,
    colour: float | None,
    tolerance: float,
    dilation: int = 1,
    label_box: list[int] | None = None,
) -> np.ndarray:
    """Pixels to in-paint: those inside ``box`` within ``tolerance`` of the bar colour.

    As MicroLib, the thresholded pixels are dilated by ``dilation`` px (a 3x3 square per
    pixel of dilation) because pixelisation leaves bar and glyph edges out of tolerance;
    unlike MicroLib's ``np.roll`` the dilation never wraps across the image border.

    Thin antialiased text is the exception: a glyph edge that half covers a contrasting
    background has a grey level no tolerance can tell from data, and JPEG smears thin
    strokes further (on the demo library the colour rule alone kept 97-99 % of the label
    pixels). The text label's box (``label_box``, grown by 1 px) is therefore masked
    whole, as MicroLib did for bars without a colour; the cost is the background between
    the glyphs, a few hundred pixels.

    Parameters
    ----------
    image : ndarray
        ``(H, W)`` or ``(H, W, 3)``; the grey (luminance) level is compared.
    box : list of int or None
        ``[x0, y0, x1, y1]`` in the coordinates of ``image``; None gives an empty mask.
    colour : float or None
        Bar grey level; None masks the whole box (MicroLib's ``barcol: null``).
    tolerance : float
        Largest absolute grey difference to the bar colour (inclusive).
    dilation : int
        Dilation radius in px.
    label_box : list of int, optional
        The text label's box (same coordinates), masked whole.

    Returns
    -------
    ndarray of bool
    """
    grey = to_grey(image)
    mask = np.zeros(grey.shape, bool)
    if box is None:
        return mask
    clipped = clip_box(box, grey.shape)
    if clipped is None:
        return mask
    x0, y0, x1, y1 = clipped
    if colour is None:
        mask[y0:y1, x0:x1] = True
    else:
        mask[y0:y1, x0:x1] = np.abs(grey[y0:y1, x0:x1] - float(colour)) <= float(tolerance)
        lb = (
            clip_box(
                [label_box[0] - 1, label_box[1] - 1, label_box[2] + 1, label_box[3] + 1], grey.shape
            )
            if label_box is not None
            else None
        )
        if lb is not None:
            lx0, ly0, lx1, ly1 = lb
            mask[ly0:ly1, lx0:lx1] = True
    if dilation > 0 and mask.any():
        mask = ndimage.binary_dilation(
            mask, structure=np.ones((3, 3), bool), iterations=int(dilation)
        )
    return mask


# --------------------------------------------------------------------------- data type


def chroma_score(image: np.ndarray, mask: np.ndarray | None = None, bins: int = 256) -> float:
    """Colour that a grey level cannot explain, as an RMS in grey levels.

    The chroma (``R - G``, ``B - G``) is compared with its mean at the same luminance:
    a grey image, a tinted grey image and a false-colour rendering (such as a viridis
    map, where colour is a function of the grey value) all score about 0; a stained
    micrograph whose phases differ in hue at equal brightness scores high.

    Parameters
    ----------
    image : ndarray
        ``(H, W)`` (scores 0) or ``(H, W, 3)``.
    mask : ndarray of bool, optional
        Pixels to ignore (scale bar).
    bins : int
        Luminance bins.

    Returns
    -------
    float
    """
    arr = np.asarray(image)
    if arr.ndim == 2:
        return 0.0
    rgb = arr[..., :3].astype(np.float64)
    keep = np.ones(rgb.shape[:2], bool) if mask is None else ~mask
    rgb = rgb[keep]
    if rgb.shape[0] < 16:
        return 0.0
    lum = rgb @ np.array([0.299, 0.587, 0.114])
    c = np.stack([rgb[:, 0] - rgb[:, 1], rgb[:, 2] - rgb[:, 1]], axis=1)
    idx = np.clip((lum / 256.0 * bins).astype(int), 0, bins - 1)
    counts = np.bincount(idx, minlength=bins).astype(np.float64)
    resid2 = 0.0
    for j in range(2):
        sums = np.bincount(idx, weights=c[:, j], minlength=bins)
        means = np.divide(sums, counts, out=np.zeros(bins), where=counts > 0)
        resid2 += float(np.mean((c[:, j] - means[idx]) ** 2))
    return float(math.sqrt(resid2))


def _hist(values: np.ndarray) -> np.ndarray:
    v = np.clip(np.round(values), 0, 255).astype(np.int64)
    return np.bincount(v, minlength=256).astype(np.float64)


def _class_stats(
    hist: np.ndarray, thresholds: list[float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights, means and variances of the classes a histogram splits into.

    A grey level ``g`` belongs to class ``np.digitize(g, thresholds)`` (values equal to a
    threshold go up), the rule the segment stage applies.
    """
    levels = np.arange(256, dtype=np.float64)
    cls = np.digitize(levels, np.asarray(thresholds, dtype=np.float64))
    k = len(thresholds) + 1
    total = hist.sum()
    w = np.array([hist[cls == i].sum() for i in range(k)]) / max(total, 1.0)
    mu = np.zeros(k)
    var = np.zeros(k)
    for i in range(k):
        hi = hist[cls == i]
        li = levels[cls == i]
        s = hi.sum()
        if s > 0:
            mu[i] = (hi * li).sum() / s
            var[i] = (hi * (li - mu[i]) ** 2).sum() / s
    return w, mu, var


def separability(hist: np.ndarray, thresholds: list[float]) -> float:
    """Between-class over total variance of a 256-bin histogram split at ``thresholds``.

    1 means the classes are single grey levels; a single Gaussian split in two scores
    2/pi = 0.64, a uniform histogram 0.75.
    """
    levels = np.arange(256, dtype=np.float64)
    total = hist.sum()
    if total <= 0:
        return 0.0
    mean = (hist * levels).sum() / total
    var_t = (hist * (levels - mean) ** 2).sum() / total
    if var_t <= 0:
        return 0.0
    w, mu, _ = _class_stats(hist, thresholds)
    var_b = float((w * (mu - mean) ** 2).sum())
    return float(min(1.0, var_b / var_t))


def _otsu_thresholds(hist: np.ndarray, classes: int) -> list[float]:
    from skimage.filters import threshold_multiotsu

    levels = np.arange(256, dtype=np.float64)
    nz = np.nonzero(hist)[0]
    if len(nz) < classes:
        # fewer distinct levels than classes: cut between the levels present
        if len(nz) < 2:
            return []
        return [float((nz[i] + nz[i + 1]) / 2.0 + 0.5) for i in range(len(nz) - 1)][: classes - 1]
    # skimage's multi-Otsu works on (values, counts); thresholds are the last level of a class
    th = threshold_multiotsu(
        hist=(hist[nz[0] : nz[-1] + 1], levels[nz[0] : nz[-1] + 1]), classes=classes
    )
    # as a digitize edge: values > th belong to the upper class
    return [float(t) + 0.5 for t in np.atleast_1d(th)]


def refine_thresholds(
    hist: np.ndarray, thresholds: list[float], iterations: int = 10, smooth: float = 2.0
) -> list[float]:
    """Move thresholds to the midpoints between the phases' modal grey levels.

    Optical blur spreads every phase boundary symmetrically between the two grey
    levels, so the boundary's true position is where the grey value crosses the
    midpoint between the phases' levels (which is also MicroLib's rule: thresholds are
    midpoints between the clicked phase grey levels). The modes of the (slightly
    smoothed) histogram within each class estimate those levels without the bias that
    boundary pixels give a class mean; plain Otsu drifts towards the smaller phase when
    fractions differ. Iterated from the Otsu start until stable.
    """
    th = sorted(float(t) for t in thresholds)
    if not th:
        return th
    for _ in range(iterations):
        modes = class_modes(hist, th, smooth)
        if modes is None:
            break
        new = [(modes[i] + modes[i + 1]) / 2.0 + 0.5 for i in range(len(th))]
        if any(b <= a for a, b in zip(new[:-1], new[1:], strict=True)):
            break
        if all(abs(a - b) < 0.25 for a, b in zip(new, th, strict=True)):
            th = new
            break
        th = new
    return [round(v, 3) for v in th]


def class_modes(
    hist: np.ndarray, thresholds: list[float], smooth: float = 2.0
) -> list[float] | None:
    """Modal grey level of each class of a 256-bin histogram split at ``thresholds``.

    Each class's part of the histogram is smoothed on its own (no leakage of a large
    neighbouring peak across the threshold). None when a class is empty.
    """
    levels = np.arange(256, dtype=np.float64)
    cls = np.digitize(levels, np.asarray(thresholds, dtype=np.float64))
    modes = []
    for i in range(len(thresholds) + 1):
        sel = cls == i
        part = np.asarray(hist, dtype=np.float64)[sel]
        if part.size == 0 or part.max() <= 0:
            return None
        if smooth:
            part = ndimage.gaussian_filter1d(part, smooth, mode="constant")
        modes.append(float(levels[sel][int(np.argmax(part))]))
    return modes


def illumination_field(
    grey: np.ndarray,
    thresholds: list[float],
    mask: np.ndarray | None = None,
    degree: int = 2,
    grid: int = 32,
    min_phase_fraction: float = 0.05,
) -> np.ndarray:
    """Estimate a slowly varying illumination offset from within-phase brightness drift.

    For every phase (pixels between the thresholds) a polynomial surface is fitted to
    its block-mean grey level; the area-weighted mean of the surfaces (each minus its
    own mean) is the illumination offset. Real microstructure (phase clustering) does
    not enter, only the drift of each phase's own brightness.

    Returns
    -------
    ndarray
        Offset in grey levels, same shape as ``grey`` (zeros when it cannot be fitted).
    """
    g = np.asarray(grey, dtype=np.float64)
    h, w = g.shape
    valid = np.ones_like(g, bool) if mask is None else ~mask
    labels = np.digitize(g, np.asarray(thresholds, dtype=np.float64))
    acc, wsum = None, 0.0
    for i in range(len(thresholds) + 1):
        sel = valid & (labels == i)
        frac = float(sel.mean())
        if frac < min_phase_fraction:
            continue
        surf = _trend_surface(g, sel, degree, grid)
        if surf is None:
            continue
        part = (surf - surf.mean()) * frac
        acc = part if acc is None else acc + part
        wsum += frac
    if acc is None or wsum <= 0:
        return np.zeros_like(g)
    surf = acc / wsum
    ys = np.clip(((np.arange(h) + 0.5) / h * surf.shape[0]).astype(int), 0, surf.shape[0] - 1)
    xs = np.clip(((np.arange(w) + 0.5) / w * surf.shape[1]).astype(int), 0, surf.shape[1] - 1)
    # block-resolution surface, smoothed so no block steps reach the corrected image
    return ndimage.gaussian_filter(surf[ys][:, xs], max(1.0, min(h, w) / (2.0 * surf.shape[0])))


def interior_pixels(
    grey: np.ndarray, mask: np.ndarray | None = None, keep: float = 0.5
) -> np.ndarray:
    """The flattest ``keep`` fraction of the pixels (smallest smoothed gradient).

    Phase boundaries, whose blurred grey levels fill the histogram between the phases,
    are left out, so the separability of a blurred n-phase image approaches 1 while a
    continuous texture, whose flat regions still span every grey level, stays low.
    """
    g = ndimage.gaussian_filter(np.asarray(grey, dtype=np.float64), 1.0)
    gm = np.hypot(ndimage.sobel(g, 0), ndimage.sobel(g, 1))
    valid = np.ones(g.shape, bool) if mask is None else ~ndimage.binary_dilation(mask, iterations=2)
    if valid.sum() < 16:
        valid = np.ones(g.shape, bool)
    cut = np.percentile(gm[valid], 100.0 * keep)
    return valid & (gm <= cut)


def _split_scores(
    hist: np.ndarray, max_phases: int
) -> tuple[dict[int, list[float]], dict[str, float]]:
    seps: dict[str, float] = {}
    splits: dict[int, list[float]] = {}
    for k in range(2, max(2, min(4, int(max_phases))) + 1):
        th = _otsu_thresholds(hist, k)
        if len(th) != k - 1:
            break
        splits[k] = th
        seps[str(k)] = round(separability(hist, th), 5)
    return splits, seps


def decide_data_type(
    image: np.ndarray, mask: np.ndarray | None = None, params: TypeParams | None = None
) -> dict[str, Any]:
    """Decide colour / n-phase / grayscale and, for n-phase, the thresholds.

    Colour when an RGB image has genuine chroma (:func:`chroma_score`); otherwise the
    luminance histogram of the image's flat half (:func:`interior_pixels`, so blurred
    phase boundaries do not count), after flat-field correction
    (:func:`illumination_field`), is split by multi-Otsu into k = 2..``max_phases``
    classes and the separability (between-class over total variance) of each split
    decides. A split is
    acceptable when its separability reaches ``1 - (1 - sep2_min) / (k - 1)^2`` (the
    same within-class variance per class) and every phase covers
    ``min_phase_fraction``; the smallest acceptable k wins unless a larger acceptable k
    shrinks the within-class variance by ``sep_gain_min``. No acceptable split: the image
    is kept as grayscale (a continuous texture a scientist would not threshold).
    This replaces MicroLib's ``len(np.unique(img)) == 2`` rule, which turns colour and
    three-phase images into grayscale silently.

    Parameters
    ----------
    image : ndarray
        Cropped ``(H, W)`` or ``(H, W, 3)`` image.
    mask : ndarray of bool, optional
        Pixels to ignore (scale bar).
    params : TypeParams, optional

    Returns
    -------
    dict
        ``data_type``, ``n_phases``, ``thresholds`` (digitize edges, ascending; empty for
        grayscale/colour), ``grey_values`` and ``fractions`` per phase, and ``scores``
        (``chroma``, ``separability`` per class count, ``gain``).
    """
    p = params or TypeParams()
    chroma = chroma_score(image, mask)
    grey = to_grey(image)
    values = _masked_values(grey, mask)
    hist = _hist(values)
    splits, seps = _split_scores(hist, p.max_phases)
    inner = interior_pixels(grey, mask)
    in_hist = _hist(grey[inner])
    # an illumination gradient smears every phase's grey level and would turn a
    # two-phase image into "grayscale"; the decision is made after removing drift
    # *within* phases (segmented or evenly lit images are unchanged). Even exposure is
    # judged separately, by its own filter.
    illum = None
    if p.flat_field and 2 in splits:
        illum = illumination_field(grey, _otsu_thresholds(in_hist, 2) or splits[2], mask)
    flat = grey if illum is None else grey - illum
    valid = np.ones(grey.shape, bool) if mask is None else ~mask
    # two views of the histogram: every pixel (exact for segmented images) and the flat
    # half (blurred boundaries left out); per class count the better split decides
    views = [_hist(flat[valid]), _hist(flat[inner])]
    dec_splits: dict[int, list[float]] = {}
    dec_seps: dict[str, float] = {}
    dec_hists: dict[int, np.ndarray] = {}
    for hv in views:
        sp, se = _split_scores(hv, p.max_phases)
        for k, th_k in sp.items():
            if se[str(k)] > dec_seps.get(str(k), -1.0):
                dec_splits[k], dec_seps[str(k)], dec_hists[k] = th_k, se[str(k)], hv
    dec_seps = dict(sorted(dec_seps.items()))
    scores: dict[str, Any] = {
        "chroma": round(chroma, 3),
        "separability": dec_seps,
        "separability_all_pixels": seps,
        "gain": {},
    }
    if illum is not None:
        scores["illumination_range"] = round(float(np.ptp(illum)), 3)
    out: dict[str, Any] = {"scores": scores}
    is_colour = np.asarray(image).ndim == 3 and chroma >= p.chroma_min
    n = 1
    if not is_colour:
        for k in sorted(dec_splits):
            w, _, _ = _class_stats(dec_hists[k], dec_splits[k])
            # k classes always fit better than k-1: the bar rises with k so that the
            # within-class variance allowed per class stays the same
            need = 1.0 - (1.0 - p.sep2_min) / (k - 1) ** 2
            scores.setdefault("required", {})[str(k)] = round(need, 5)
            if dec_seps[str(k)] < need or w.min() < p.min_phase_fraction:
                continue
            if n == 1:
                n = k
                continue
            e_n, e_k = 1.0 - dec_seps[str(n)], 1.0 - dec_seps[str(k)]
            gain = 1.0 if e_n <= 1e-9 else (1e6 if e_k <= 1e-12 else e_n / e_k)
            scores["gain"][f"{n}->{k}"] = round(min(gain, 1e6), 4)
            if gain >= p.sep_gain_min:
                n = k
    if is_colour:
        out.update(data_type="colour", n_phases=3, thresholds=[], grey_values=None, fractions=None)
        return out
    if n == 1:
        out.update(
            data_type="grayscale", n_phases=1, thresholds=[], grey_values=None, fractions=None
        )
        return out
    # thresholds on the raw grey levels: the segment stage thresholds the raw image
    th = _otsu_thresholds(dec_hists[n], n) or splits.get(n) or dec_splits[n]
    if p.refine:
        th = refine_thresholds(hist, th)
    stats = phase_stats(grey, th, mask)
    dtype = {2: "twophase", 3: "threephase"}.get(n, "nphase")
    out.update(data_type=dtype, n_phases=n, thresholds=[round(float(t), 3) for t in th], **stats)
    return out


def phase_stats(
    grey: np.ndarray, thresholds: list[float], mask: np.ndarray | None = None
) -> dict[str, list]:
    """Grey mean and area fraction of each phase for given thresholds (mask excluded)."""
    values = _masked_values(np.asarray(grey, dtype=np.float64), mask)
    labels = np.digitize(values, np.asarray(thresholds, dtype=np.float64))
    k = len(thresholds) + 1
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    sums = np.bincount(labels, weights=values, minlength=k)
    means = np.divide(sums, counts, out=np.zeros(k), where=counts > 0)
    return {
        "grey_values": [round(float(m), 2) for m in means],
        "fractions": [round(float(c / max(counts.sum(), 1)), 5) for c in counts],
    }


# --------------------------------------------------------------------------- autocorrelation


def autocorrelation(
    image: np.ndarray, mask: np.ndarray | None = None, max_lag: int | None = None
) -> np.ndarray:
    """Normalised autocovariance of a 2D field, computed by FFT without wrap-around.

    Masked pixels are left out properly: every lag is normalised by the number of
    valid pixel pairs at that lag (zero padding, no periodic wrap).

    Parameters
    ----------
    image : ndarray
        ``(H, W)`` field.
    mask : ndarray of bool, optional
        Pixels to ignore.
    max_lag : int, optional
        Largest lag kept (default: half the shorter side).

    Returns
    -------
    ndarray
        ``(2L+1, 2L+1)`` autocovariance divided by the variance, lag 0 at the centre;
        lags with fewer than a quarter of the pixels as pairs are NaN.
    """
    f = np.asarray(image, dtype=np.float64)
    h, w = f.shape
    valid = np.ones_like(f, bool) if mask is None else ~np.asarray(mask, bool)
    lag = int(max_lag if max_lag is not None else min(h, w) // 2)
    lag = max(1, min(lag, h - 1, w - 1))
    m = valid.astype(np.float64)
    n_valid = m.sum()
    if n_valid < 4:
        return np.full((2 * lag + 1, 2 * lag + 1), np.nan)
    mean = (f * m).sum() / n_valid
    g = (f - mean) * m
    shape = (h + lag, w + lag)
    fft_g = np.fft.rfft2(g, s=shape)
    fft_m = np.fft.rfft2(m, s=shape)
    num = np.fft.irfft2(fft_g * np.conj(fft_g), s=shape)
    den = np.fft.irfft2(fft_m * np.conj(fft_m), s=shape)
    num = np.fft.fftshift(num)
    den = np.fft.fftshift(den)
    cy, cx = shape[0] // 2, shape[1] // 2
    num = num[cy - lag : cy + lag + 1, cx - lag : cx + lag + 1]
    den = den[cy - lag : cy + lag + 1, cx - lag : cx + lag + 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        acov = num / den
    acov[den < 0.25 * n_valid] = np.nan
    var = acov[lag, lag]
    if not np.isfinite(var) or var <= 1e-12:
        return np.full_like(acov, np.nan)
    return acov / var


def correlation_lengths(
    acf: np.ndarray, *, noise_correct: bool = False, n_directions: int = 8, level: float = _INV_E
) -> dict[str, float]:
    """Correlation lengths of a normalised autocovariance along several directions.

    The length along a direction is the lag where the autocovariance first falls below
    ``level`` (1/e), linearly interpolated. The lengths along ``n_directions`` directions
    over 180 degrees are fitted with an ellipse (``1/L(t)^2 = u(t)^T Q u(t)``), whose axes
    give the major and minor correlation lengths whatever the features' orientation.

    Parameters
    ----------
    acf : ndarray
        Output of :func:`autocorrelation`.
    noise_correct : bool
        Renormalise by the noise-free variance extrapolated from lags 1 and 2, so white
        pixel noise (which only adds to lag 0) does not shorten the lengths.
    n_directions : int
    level : float

    Returns
    -------
    dict
        ``x``, ``y`` (lengths along columns and rows), ``major``, ``minor``,
        ``longest`` (the longest measured direction),
        ``angle_deg`` (direction of the major axis, 0 = along x) and ``censored`` (True
        when some direction never fell below ``level`` inside the lag window).
    """
    lag = acf.shape[0] // 2
    c = np.array(acf, dtype=np.float64)
    if noise_correct:
        c1 = np.nanmean([c[lag, lag + 1], c[lag, lag - 1], c[lag + 1, lag], c[lag - 1, lag]])
        c2 = (
            np.nanmean([c[lag, lag + 2], c[lag, lag - 2], c[lag + 2, lag], c[lag - 2, lag]])
            if lag >= 2
            else c1
        )
        c0 = 2 * c1 - c2
        if np.isfinite(c0) and 0 < c0 < 1:
            c = c / c0
            c[lag, lag] = 1.0
    angles = np.arange(n_directions) * math.pi / n_directions
    radii = np.arange(0, lag + 1e-9, 0.5)
    lengths = []
    censored = False
    for t in angles:
        rows = lag - radii * math.sin(t)  # y axis points down; angle measured from +x
        cols = lag + radii * math.cos(t)
        prof = ndimage.map_coordinates(
            np.nan_to_num(c, nan=-2.0), [rows, cols], order=1, mode="nearest"
        )
        below = np.nonzero(prof < level)[0]
        if below.size == 0:
            lengths.append(float(radii[-1]))
            censored = True
            continue
        j = int(below[0])
        if j == 0:
            lengths.append(0.5)
            continue
        p0, p1 = prof[j - 1], prof[j]
        frac = (p0 - level) / (p0 - p1) if p0 != p1 else 0.0
        lengths.append(float(radii[j - 1] + frac * (radii[j] - radii[j - 1])))
    L = np.maximum(np.asarray(lengths), 0.25)
    # least-squares ellipse in the quadratic form 1/L^2 = a cos^2 + 2b sin cos + c sin^2
    design = np.stack(
        [np.cos(angles) ** 2, 2 * np.sin(angles) * np.cos(angles), np.sin(angles) ** 2], axis=1
    )
    coef, *_ = np.linalg.lstsq(design, 1.0 / L**2, rcond=None)
    q = np.array([[coef[0], coef[1]], [coef[1], coef[2]]])
    evals, evecs = np.linalg.eigh(q)
    if evals[0] > 0:
        major, minor = 1.0 / math.sqrt(evals[0]), 1.0 / math.sqrt(evals[1])
        v = evecs[:, 0]
        angle = math.degrees(math.atan2(v[1], v[0])) % 180.0
    else:  # degenerate fit (very noisy estimate): fall back to the measured extremes
        major, minor = float(L.max()), float(L.min())
        angle = math.degrees(float(angles[int(np.argmax(L))]))
    # the ellipse cannot be more extreme than the measurements it was fitted to
    major = float(min(major, L.max()))
    minor = float(max(minor, L.min()))
    return {
        "x": round(float(L[0]), 3),
        "y": round(float(L[n_directions // 2]), 3),
        "major": round(major, 3),
        "minor": round(minor, 3),
        "longest": round(float(L.max()), 3),
        "angle_deg": round(angle, 1),
        "censored": bool(censored),
    }


def radial_profile(acf: np.ndarray, radii: tuple[int, ...] = FINGERPRINT_RADII) -> list[float]:
    """Mean autocovariance on rings of the given radii (NaN-free, clipped to the window)."""
    lag = acf.shape[0] // 2
    yy, xx = np.mgrid[-lag : lag + 1, -lag : lag + 1]
    rr = np.hypot(yy, xx)
    out = []
    for r in radii:
        ring = (np.abs(rr - r) < 0.5) & np.isfinite(acf)
        out.append(round(float(acf[ring].mean()), 4) if ring.any() else 0.0)
    return out


# --------------------------------------------------------------------------- filter scores


def _poly_design(yv: np.ndarray, xv: np.ndarray, degree: int) -> np.ndarray:
    cols = [xv**a * yv**b for a in range(degree + 1) for b in range(degree + 1 - a)]
    return np.stack(cols, axis=1)


def _trend_surface(
    g: np.ndarray, valid: np.ndarray, degree: int, grid: int, min_count: int = 4
) -> np.ndarray | None:
    """Weighted polynomial fit to block means of the valid pixels; surface on a grid."""
    h, w = g.shape
    ny, nx = min(grid, h), min(grid, w)
    ey = np.linspace(0, h, ny + 1).astype(int)
    ex = np.linspace(0, w, nx + 1).astype(int)
    # block sums through cumulative sums (no Python loop over pixels)
    gv = np.where(valid, g, 0.0)
    s_sum = np.add.reduceat(np.add.reduceat(gv, ey[:-1], axis=0), ex[:-1], axis=1)
    s_cnt = np.add.reduceat(
        np.add.reduceat(valid.astype(np.float64), ey[:-1], axis=0), ex[:-1], axis=1
    )
    cy = ((ey[:-1] + ey[1:]) / 2.0 / h - 0.5)[:, None] * np.ones((1, nx))
    cx = np.ones((ny, 1)) * ((ex[:-1] + ex[1:]) / 2.0 / w - 0.5)[None, :]
    ok = s_cnt >= min_count
    n_terms = (degree + 1) * (degree + 2) // 2
    if ok.sum() < max(10, 2 * n_terms):
        return None
    vals = s_sum[ok] / s_cnt[ok]
    sw = np.sqrt(s_cnt[ok])
    coef, *_ = np.linalg.lstsq(
        _poly_design(cy[ok], cx[ok], degree) * sw[:, None], vals * sw, rcond=None
    )
    return (_poly_design(cy.ravel(), cx.ravel(), degree) @ coef).reshape(ny, nx)


def trend_score(
    grey: np.ndarray,
    mask: np.ndarray | None = None,
    thresholds: list[float] | None = None,
    degree: int = 2,
    grid: int = 32,
    min_phase_fraction: float = 0.05,
) -> dict[str, float]:
    """Large-scale illumination trend relative to the image contrast (even exposure).

    A polynomial surface of ``degree`` is fitted (least squares, mask excluded) to block
    means on a ``grid`` x ``grid`` lattice; the trend is its p95 - p5 range over the image.

    - n-phase (``thresholds`` given): the fit is made *within each phase*, so the score
      measures how much a phase's brightness drifts across the image, relative to the
      grey distance between the darkest and brightest phase. A clustered or graded
      phase distribution (real microstructure) does not count, only illumination.
    - grayscale/colour: the luminance itself, relative to the contrast p98 - p2 of the
      detrended image; microstructure averages out in the blocks, gradients and
      vignetting do not.

    Returns
    -------
    dict
        ``score``, ``trend_range`` and ``contrast`` (grey levels).
    """
    g = np.asarray(grey, dtype=np.float64)
    valid = np.ones_like(g, bool) if mask is None else ~mask
    nan = {"score": float("nan"), "trend_range": float("nan"), "contrast": float("nan")}
    if thresholds:
        labels = np.digitize(g, np.asarray(thresholds, dtype=np.float64))
        n = len(thresholds) + 1
        means, drifts = [], []
        for i in range(n):
            sel = valid & (labels == i)
            if sel.mean() < min_phase_fraction:
                continue
            surf = _trend_surface(g, sel, degree, grid)
            if surf is None:
                continue
            drifts.append(float(np.percentile(surf, 95) - np.percentile(surf, 5)))
            means.append(float(g[sel].mean()))
        if len(means) < 2:
            # one dominant phase: fall back to the luminance trend below
            return trend_score(g, mask, None, degree, grid)
        contrast = max(means) - min(means)
        rng = max(drifts)
    else:
        surf = _trend_surface(g, valid, degree, grid)
        if surf is None:
            return nan
        rng = float(np.percentile(surf, 95) - np.percentile(surf, 5))
        h, w = g.shape
        ys = np.clip(((np.arange(h) + 0.5) / h * surf.shape[0]).astype(int), 0, surf.shape[0] - 1)
        xs = np.clip(((np.arange(w) + 0.5) / w * surf.shape[1]).astype(int), 0, surf.shape[1] - 1)
        resid = (g - surf[ys][:, xs])[valid]
        contrast = float(np.percentile(resid, 98) - np.percentile(resid, 2)) if resid.size else 0.0
    score = rng / contrast if contrast > 1e-6 else float("inf")
    return {"score": round(score, 4), "trend_range": round(rng, 3), "contrast": round(contrast, 3)}


def blur_score(grey: np.ndarray, mask: np.ndarray | None = None) -> float:
    """No-reference blur score in [0, 1] (Crete et al. 2007, via scikit-image).

    0 = sharp, 1 = fully blurred: how little the image's neighbour differences drop when
    it is blurred once more.
    """
    from skimage.measure import blur_effect

    g = np.asarray(grey, dtype=np.float64)
    if min(g.shape) < 16:
        return 1.0
    return float(blur_effect(g, h_size=11))


def noise_sigma(grey: np.ndarray, thresholds: list[float] | None = None) -> float:
    """Gaussian pixel-noise standard deviation, robust to phase boundaries.

    Immerkaer's (1996) Laplacian-difference kernel responds to white noise with a
    standard deviation of ``6 sigma`` and to smooth shading not at all. Boundaries between
    phases respond strongly too, so for an n-phase image (``thresholds`` given) only
    pixels whose 3x3 neighbourhood lies in one phase are used, and elsewhere the median
    absolute response (robust while edges cover under half the pixels) is used; an
    already segmented image scores 0 rather than its edge density.
    """
    g = np.asarray(grey, dtype=np.float64)
    if min(g.shape) < 3:
        return 0.0
    kern = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float64)
    resp = np.abs(ndimage.convolve(g, kern, mode="reflect")[1:-1, 1:-1])
    if thresholds:
        lab = np.digitize(g, np.asarray(thresholds, dtype=np.float64))
        same = (ndimage.maximum_filter(lab, size=3) == ndimage.minimum_filter(lab, size=3))[
            1:-1, 1:-1
        ]
        if same.sum() >= 100:
            return float(math.sqrt(math.pi / 2.0) * resp[same].mean() / 6.0)
    return float(np.median(resp) / (0.6745 * 6.0))


def jpeg_blockiness(grey: np.ndarray) -> float:
    """Ratio of grey steps across 8x8 JPEG block edges to steps inside blocks.

    About 1 for images without block artefacts; heavily compressed JPEGs score well above
    1. Must be computed in the raw image's coordinates (JPEG blocks are aligned to the
    encoded image, not to a crop).
    """
    g = np.asarray(grey, dtype=np.float64)
    h, w = g.shape
    if h < 32 or w < 32:
        return 1.0
    dx = np.abs(np.diff(g, axis=1))
    dy = np.abs(np.diff(g, axis=0))
    bx = np.zeros(dx.shape[1], bool)
    bx[7::8] = True
    by = np.zeros(dy.shape[0], bool)
    by[7::8] = True
    edge = dx[:, bx].mean() + dy[by, :].mean()
    inner = dx[:, ~bx].mean() + dy[~by, :].mean()
    if inner <= 1e-9:
        return 1.0
    return float(edge / inner)


def edge_width(grey: np.ndarray, thresholds: list[float], mask: np.ndarray | None = None) -> float:
    """Blur of the phase boundaries, as the sigma (px) of a Gaussian edge spread.

    Pixels whose grey level lies in the middle half between two adjacent phases' modal
    levels are transition pixels; a Gaussian-blurred step puts ``1.349 sigma`` of them
    per unit of boundary length. Boundary length is counted from 4-neighbour label
    changes with the Cauchy-Crofton factor pi/4. A 3x3 median first removes pixel noise
    (which would add false transition pixels) without widening long edges.

    Returns
    -------
    float
        Estimated sigma in px (0 for an already segmented image); NaN without boundaries.
    """
    g = ndimage.median_filter(np.asarray(grey, dtype=np.float64), size=3)
    valid = np.ones_like(g, bool) if mask is None else ~ndimage.binary_dilation(mask, iterations=2)
    th = np.asarray(sorted(thresholds), dtype=np.float64)
    lab = np.digitize(g, th)
    modes = class_modes(_hist(g[valid]), list(th))
    if modes is None:
        return float("nan")
    trans, length = 0.0, 0.0
    for i in range(len(th)):
        lo, hi = modes[i], modes[i + 1]
        d = hi - lo
        if d <= 2:
            continue
        trans += float((valid & (g > lo + 0.25 * d) & (g < hi - 0.25 * d)).sum())
        a, b = lab == i, lab == i + 1
        ph = ((a[:, :-1] & b[:, 1:]) | (b[:, :-1] & a[:, 1:])) & valid[:, :-1] & valid[:, 1:]
        pv = ((a[:-1, :] & b[1:, :]) | (b[:-1, :] & a[1:, :])) & valid[:-1, :] & valid[1:, :]
        length += float(ph.sum() + pv.sum()) * math.pi / 4.0
    if length <= 0:
        return float("nan")
    return trans / length / 1.349


def analysis_image(
    image: np.ndarray, typed: dict[str, Any], mask: np.ndarray | None = None
) -> np.ndarray:
    """The field whose statistics the filters measure.

    n-phase: the phase labels mapped to their grey values (the field SliceGAN will be
    trained on, free of grey-level noise); grayscale/colour: the luminance.
    """
    grey = to_grey(image)
    if typed.get("thresholds"):
        lab = np.digitize(grey, np.asarray(typed["thresholds"]))
        vals = np.asarray(typed["grey_values"], dtype=np.float64)
        return vals[lab]
    return grey


def filter_scores(
    image: np.ndarray,
    typed: dict[str, Any],
    mask: np.ndarray | None = None,
    raw_grey: np.ndarray | None = None,
) -> dict[str, Any]:
    """Scores of the per-image exclusion filters (no thresholds applied).

    Parameters
    ----------
    image : ndarray
        Cropped image.
    typed : dict
        Output of :func:`decide_data_type` (or the curated equivalent).
    mask : ndarray of bool, optional
        Scale-bar pixels to ignore.
    raw_grey : ndarray, optional
        Uncropped luminance (JPEG blockiness is measured on the raw block grid).

    Returns
    -------
    dict
        ``isotropy``, ``representativity``, ``exposure`` (scores) with ``detail`` dicts,
        ``quality`` components, plus ``acf`` (the autocorrelation, for the fingerprint).
    """
    grey = to_grey(image)
    h, w = grey.shape
    field = analysis_image(image, typed, mask)
    max_lag = int(min(h, w) // 2)
    acf = autocorrelation(field, mask, max_lag=max_lag)
    noisy = not typed.get("thresholds")
    if np.isfinite(acf[acf.shape[0] // 2, acf.shape[1] // 2]):
        cl = correlation_lengths(acf, noise_correct=noisy)
        iso = cl["major"] / max(cl["minor"], 1e-6)
        # the longest directional length: conservative for elongated features
        rep = min(h, w) / max(cl["longest"], 1e-6)
    else:  # a constant image has no correlation structure at all
        cl = {
            "x": None,
            "y": None,
            "major": None,
            "minor": None,
            "longest": None,
            "angle_deg": None,
            "censored": True,
        }
        iso, rep = float("nan"), 0.0
    trend = trend_score(grey, mask, typed.get("thresholds") or None)
    values = _masked_values(grey, mask)
    p1, p99 = np.percentile(values, [1, 99]) if values.size else (0.0, 0.0)
    contrast = float(p99 - p1)
    sigma = noise_sigma(grey, typed.get("thresholds") or None)
    phased = bool(typed.get("thresholds"))
    # sharpness: for phases, the measured width of the phase boundaries; without phases,
    # a no-reference blur score (content-dependent: smooth textures score higher)
    # (after flat-field correction: an illumination drift moves the phases' grey levels
    # and would read as wide transitions)
    ew = (
        edge_width(
            grey - illumination_field(grey, typed["thresholds"], mask), typed["thresholds"], mask
        )
        if phased
        else None
    )
    quality = {
        "resolution": float(min(h, w)),
        "edge_width": (round(ew, 4) if ew is not None and math.isfinite(ew) else float("nan"))
        if phased
        else None,
        "blur": None if phased else round(blur_score(grey), 4),
        "contrast": round(contrast, 3),
        "noise": round(sigma / contrast, 4) if contrast > 1e-6 else float("inf"),
        "jpeg": round(jpeg_blockiness(raw_grey if raw_grey is not None else grey), 4),
    }
    ratio_xy = (cl["x"] / cl["y"]) if cl.get("x") and cl.get("y") else None
    return {
        "isotropy": {
            "score": round(iso, 4) if np.isfinite(iso) else float("nan"),
            "detail": {
                "corr_len_px": cl,
                "ratio_x_over_y": round(ratio_xy, 4) if ratio_xy else None,
            },
        },
        "representativity": {
            "score": round(rep, 3),
            "detail": {"longest_corr_len_px": cl.get("longest"), "short_side_px": int(min(h, w))},
        },
        "exposure": {
            "score": trend["score"],
            "detail": {"trend_range": trend["trend_range"], "contrast": trend["contrast"]},
        },
        "quality": {"components": quality, "detail": {"noise_sigma": round(sigma, 3)}},
        "acf": acf,
    }


# thresholds: filter -> (attribute, comparison, phrase used in reasons)
_FILTER_RULES = {
    "isotropy": ("iso_max", "<=", "correlation-length ratio"),
    "representativity": ("repr_min", ">=", "field of view in correlation lengths"),
    "exposure": ("exposure_max", "<=", "illumination trend as a fraction of contrast"),
}
_QUALITY_RULES = {
    "resolution": ("min_size_px", ">=", "shorter side (px)"),
    "edge_width": ("edge_width_max", "<=", "phase-boundary blur (Gaussian sigma, px)"),
    "blur": ("blur_max", "<=", "blur score"),
    "contrast": ("contrast_min", ">=", "contrast p99-p1 (grey levels)"),
    "noise": ("noise_max", "<=", "noise sigma as a fraction of contrast"),
    "jpeg": ("jpeg_max", "<=", "JPEG blockiness"),
}
_REASON_PHRASES = {
    "isotropy": "correlation-length ratio {s:.2f} {op} {t:.2f}",
    "representativity": "field of view {s:.1f} correlation lengths {op} {t:.1f}",
    "exposure": "illumination trend {s:.2f} of contrast {op} {t:.2f}",
    "resolution": "shorter side {s:.0f} px {op} {t:.0f} px",
    "edge_width": "phase boundaries blurred over sigma {s:.1f} px {op} {t:.1f} px",
    "blur": "blur score {s:.2f} {op} {t:.2f}",
    "contrast": "contrast {s:.0f} grey levels {op} {t:.0f}",
    "noise": "noise {s:.2f} of contrast {op} {t:.2f}",
    "jpeg": "JPEG blockiness {s:.2f} {op} {t:.2f}",
}


def _finite(x: Any) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(float(x))


def _passes(score: Any, comparison: str, threshold: float) -> bool | None:
    if not _finite(score):
        return False
    return float(score) <= threshold if comparison == "<=" else float(score) >= threshold


def _fail_phrase(name: str, score: Any, comparison: str, threshold: float) -> str:
    if not _finite(score):
        return "could not be measured" if name in _FILTER_RULES else f"{name} could not be measured"
    op = ">" if comparison == "<=" else "<"
    return _REASON_PHRASES[name].format(s=float(score), op=op, t=float(threshold))


def _json_number(x: Any) -> float | None:
    return round(float(x), 6) if _finite(x) else None


def evaluate_filters(
    scores: dict[str, Any], thresholds: FilterThresholds
) -> tuple[dict[str, Any], list[str]]:
    """Apply thresholds to filter scores.

    Parameters
    ----------
    scores : dict
        ``{filter: {"score": ..., "detail": ...}}`` and ``quality: {"components": ...}``
        as produced by :func:`filter_scores` (or read back from an annotation).
    thresholds : FilterThresholds

    Returns
    -------
    filters : dict
        Per filter: ``score``, ``threshold``, ``comparison``, ``passed``, ``detail``;
        quality also has ``components`` (each with its own score/threshold/passed) and
        its ``score`` is the worst component relative to its limit (passes at <= 1).
    reasons : list of str
        One human-readable line per failed filter, e.g.
        ``"exposure: illumination trend 0.41 of contrast > 0.25"``.
    """
    filters: dict[str, Any] = {}
    reasons: list[str] = []
    rep_score = (scores.get("representativity") or {}).get("score")
    rep_ok = _passes(rep_score, ">=", float(thresholds.repr_min))
    for name, (attr, comp, _) in _FILTER_RULES.items():
        entry = scores.get(name, {})
        s = entry.get("score")
        t = float(getattr(thresholds, attr))
        ok = _passes(s, comp, t)
        filters[name] = {
            "score": _json_number(s),
            "threshold": t,
            "comparison": comp,
            "passed": bool(ok),
            "assessed": True,
            "detail": entry.get("detail", {}),
        }
        if name == "isotropy" and not rep_ok:
            # with only a few correlation lengths in view the lengths' ratio is noise:
            # isotropy cannot be judged (representativity already excludes the image)
            filters[name].update(passed=None, assessed=False)
            continue
        if not ok:
            reasons.append(f"{name}: {_fail_phrase(name, s, comp, t)}")
    comps = (scores.get("quality") or {}).get("components", {})
    qcomp: dict[str, Any] = {}
    worst = 0.0
    failed = []
    for name, (attr, comp, _) in _QUALITY_RULES.items():
        s = comps.get(name)
        if isinstance(s, dict):  # read back from an annotation
            s = s.get("score")
        t = float(getattr(thresholds, attr))
        if s is None:  # not applicable to this data type
            qcomp[name] = {
                "score": None,
                "threshold": t,
                "comparison": comp,
                "passed": None,
                "applicable": False,
            }
            continue
        ok = _passes(s, comp, t)
        if _finite(s):
            v = float(s)
            bad = (v / t if comp == "<=" else (t / v if v > 0 else 1e6)) if t > 0 else 0.0
        else:
            bad = 1e6
        worst = max(worst, bad)
        qcomp[name] = {
            "score": _json_number(s),
            "threshold": t,
            "comparison": comp,
            "passed": bool(ok),
            "applicable": True,
        }
        if not ok:
            failed.append(_fail_phrase(name, s, comp, t))
    filters["quality"] = {
        "score": round(min(worst, 1e6), 4),
        "threshold": 1.0,
        "comparison": "<=",
        "passed": not failed,
        "assessed": True,
        "components": qcomp,
        "detail": (scores.get("quality") or {}).get("detail", {}),
    }
    if failed:
        reasons.append("quality: " + "; ".join(failed))
    return filters, reasons


def scores_from_filters(filters: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`evaluate_filters`: the raw scores stored in an annotation.

    A stored ``null`` score is NaN (could not be measured, fails) unless the component
    is marked not applicable (None, skipped).
    """
    out: dict[str, Any] = {}
    for name in _FILTER_RULES:
        f = filters.get(name) or {}
        s = f.get("score")
        out[name] = {"score": float("nan") if s is None else s, "detail": f.get("detail", {})}
    comps = (filters.get("quality") or {}).get("components", {})
    qc: dict[str, Any] = {}
    for k, v in comps.items():
        v = v or {}
        if v.get("applicable") is False:
            qc[k] = None
        else:
            qc[k] = float("nan") if v.get("score") is None else v["score"]
    out["quality"] = {"components": qc, "detail": (filters.get("quality") or {}).get("detail", {})}
    return out


def thresholds_from_filters(
    filters: dict[str, Any], base: FilterThresholds | None = None
) -> FilterThresholds:
    """The thresholds an annotation was evaluated with (``base`` fills the gaps)."""
    values: dict[str, Any] = {}
    for name, (attr, _, _) in _FILTER_RULES.items():
        t = (filters.get(name) or {}).get("threshold")
        if t is not None:
            values[attr] = t
    comps = (filters.get("quality") or {}).get("components", {})
    for name, (attr, _, _) in _QUALITY_RULES.items():
        t = (comps.get(name) or {}).get("threshold")
        if t is not None:
            values[attr] = t
    return (base or FilterThresholds()).updated(values)


# --------------------------------------------------------------------------- fingerprint, metadata


def fingerprint(
    image: np.ndarray, typed: dict[str, Any], acf: np.ndarray, mask: np.ndarray | None = None
) -> dict[str, Any]:
    """Statistical descriptor of a micrograph for the uniqueness check.

    A normalised grey histogram (``FINGERPRINT_BINS`` bins over 0..255), the radial
    autocovariance at ``FINGERPRINT_RADII`` px (feature size and shape) and the phase
    fractions.
    """
    grey = to_grey(image)
    values = _masked_values(grey, mask)
    hist, _ = np.histogram(values, bins=FINGERPRINT_BINS, range=(0.0, 256.0))
    hist = hist.astype(np.float64) / max(hist.sum(), 1)
    centre = np.isfinite(acf[acf.shape[0] // 2, acf.shape[1] // 2])
    return {
        "histogram": [round(float(x), 5) for x in hist],
        "radial_acf": radial_profile(acf) if centre else [0.0] * len(FINGERPRINT_RADII),
        "radii_px": list(FINGERPRINT_RADII),
        "fractions": typed.get("fractions"),
    }


def fingerprint_distance(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Distance between two fingerprints in [0, 1] (0 = statistically identical).

    The largest of: the earth mover's distance between the grey histograms (as a
    fraction of the grey range), the largest difference of the radial autocovariances
    (feature size/shape), and the largest phase-fraction difference. Two regions of one
    sample differ by a few hundredths in each; a different material or magnification
    differs by a tenth or more in at least one. n-phase and grayscale/colour images, or
    different phase counts, are never duplicates (distance 1).
    """
    ha, hb = np.asarray(a["histogram"], float), np.asarray(b["histogram"], float)
    if ha.shape != hb.shape or ha.size == 0:
        d_hist = 1.0
    else:
        d_hist = float(np.abs(np.cumsum(ha) - np.cumsum(hb)).sum() / ha.size)
    ra, rb = np.asarray(a["radial_acf"], float), np.asarray(b["radial_acf"], float)
    d_acf = float(np.abs(ra - rb).max()) if ra.shape == rb.shape and ra.size else 1.0
    fa, fb = a.get("fractions"), b.get("fractions")
    if fa and fb and len(fa) == len(fb):
        d_vf = float(np.abs(np.asarray(fa) - np.asarray(fb)).max())
    elif fa or fb:
        d_vf = 1.0
    else:
        d_vf = 0.0
    return round(min(1.0, max(d_hist, d_acf, d_vf)), 5)


_META_ALIASES = {
    "brief_description": ("brief_description", "brief_descr", "brief", "title", "description"),
    "keywords": ("keywords", "keyword"),
    "categories": ("categories", "category"),
    "composition": ("composition", "element", "elements"),
    "technique": ("technique",),
    "further_information": ("further_information", "long_description", "long_desc", "further_info"),
    "contributor": ("contributor",),
    "organisation": ("organisation", "organization"),
}


def _norm_key(k: str) -> str:
    return re.sub(r"[\s\-]+", "_", str(k).strip().lower())


def _as_text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, (list, tuple)):
        return ", ".join(_as_text(x) for x in v if _as_text(x))
    if isinstance(v, dict):
        return _as_text(v.get("text") or v.get("value") or "")
    return " ".join(str(v).split())


def metadata_summary(meta: dict[str, Any] | None) -> dict[str, str]:
    """The record fields used by uniqueness and hints, from a scraped record dict.

    Tolerant of key spelling (``Brief description``, ``brief_description``,
    ``brief_descr``; ``element`` for composition, ...) and of nesting under
    ``record``/``metadata``/``fields``.
    """
    flat: dict[str, Any] = {}
    stack = [meta or {}]
    while stack:
        d = stack.pop()
        if not isinstance(d, dict):
            continue
        for k, v in d.items():
            nk = _norm_key(k)
            if nk in ("record", "metadata", "fields", "meta") and isinstance(v, dict):
                stack.append(v)
            elif nk not in flat:
                flat[nk] = v
    out = {}
    for field, aliases in _META_ALIASES.items():
        for a in aliases:
            if a in flat and _as_text(flat[a]):
                out[field] = _as_text(flat[a])
                break
        else:
            out[field] = ""
    return out


_STOP = {
    "a",
    "an",
    "the",
    "of",
    "in",
    "and",
    "with",
    "at",
    "on",
    "for",
    "to",
    "by",
    "from",
    "wt",
    "at%",
}


def _tokens(text: str) -> set[str]:
    return {t for t in re.findall(r"[^\W_]+(?:\.\d+)?", text.lower()) if t not in _STOP}


def metadata_similarity(a: dict[str, str], b: dict[str, str]) -> float:
    """Jaccard similarity of material-describing words (description, keywords, composition).

    Contributor and organisation are left out: one lab contributes many materials.
    Returns 0 when either record has no material text.
    """
    ta = _tokens(" ".join(a.get(k, "") for k in ("brief_description", "keywords", "composition")))
    tb = _tokens(" ".join(b.get(k, "") for k in ("brief_description", "keywords", "composition")))
    if not ta or not tb:
        return 0.0
    return round(len(ta & tb) / len(ta | tb), 4)


# words in a record that hint at a failed criterion (hints only: never a verdict)
_HINT_WORDS = {
    "isotropy": (
        "rolled",
        "drawn",
        "extruded",
        "directional",
        "directionally",
        "columnar",
        "aligned",
        "unidirectional",
        "fibre",
        "fiber",
        "fibres",
        "fibers",
        "lamellar",
        "textured",
        "elongated",
        "longitudinal",
        "transverse",
        "banded",
        "banding",
        "weld",
    ),
    "representativity": (
        "single crystal",
        "single grain",
        "bicrystal",
        "one grain",
        "macrograph",
        "fracture surface",
        "whole sample",
        "cross-section of a",
    ),
    "exposure": ("vignetting", "uneven", "shadow"),
    "quality": ("low resolution", "out of focus", "blurred", "scanned", "photocopy"),
}


def metadata_hints(summary: dict[str, str]) -> list[dict[str, str]]:
    """Criteria the record's own words hint at, for a curator's attention."""
    text = " ".join(
        summary.get(k, "")
        for k in ("brief_description", "keywords", "further_information", "technique")
    ).lower()
    hints = []
    for crit, words in _HINT_WORDS.items():
        for wd in words:
            if re.search(r"\b" + re.escape(wd) + r"\b", text):
                hints.append({"criterion": crit, "hint": f"record mentions '{wd}'"})
                break
    return hints


# --------------------------------------------------------------------------- one entry


def _merge_source(manual: list[str], auto_fields: int) -> str:
    if not manual:
        return "auto"
    return "manual" if auto_fields == 0 else "mixed"


def annotate_image(
    image: np.ndarray,
    meta: dict[str, Any] | None = None,
    curation: dict[str, Any] | None = None,
    thresholds: FilterThresholds | None = None,
    type_params: TypeParams | None = None,
    entry: str | None = None,
) -> dict[str, Any]:
    """Annotate one raw micrograph (everything MicroLib's GUI and judgement did by hand).

    Parameters
    ----------
    image : ndarray
        Raw ``(H, W)`` or ``(H, W, 3)`` uint8 image as served.
    meta : dict, optional
        The scraped record (for hints and the uniqueness check).
    curation : dict, optional
        Hand overrides for this entry (see ``workflow/schemas/curation.schema.yaml``):
        ``crop``, ``scale_bar`` ("none" or {box, colour, tolerance}), ``scale_bar_um``,
        ``data_type``, ``phases`` (grey levels) or ``thresholds``, ``voxel_size_um``,
        ``include`` + ``reason``. Curated values replace the automatic ones.
    thresholds : FilterThresholds, optional
    type_params : TypeParams, optional
    entry : str, optional
        Entry id, only used in error messages.

    Returns
    -------
    dict
        The annotation (``workflow/schemas/annotation.schema.yaml``) without ``id``/
        ``name``/``image`` file facts, which the caller adds.

    Raises
    ------
    MicrolibError
        When the curation is inconsistent with the image (e.g. a crop outside it).
    """
    from microlib.errors import MicrolibError

    th = thresholds or FilterThresholds()
    tp = type_params or TypeParams()
    cur = dict(curation or {})
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[..., :3]
    if arr.dtype != np.uint8:
        raise MicrolibError(f"expected a uint8 image, got {arr.dtype}", entry=entry)
    if arr.ndim not in (2, 3) or min(arr.shape[:2]) < 8:
        raise MicrolibError(f"image too small or not 2D: shape {arr.shape}", entry=entry)
    h, w = arr.shape[:2]
    manual: list[str] = []
    n_auto = 0

    # crop
    if cur.get("crop") is not None:
        box = clip_box(cur["crop"], arr.shape)
        if box is None:
            raise MicrolibError(
                f"curated crop {cur['crop']} lies outside the {w}x{h} image", entry=entry
            )
        crop = {
            "box": box,
            "removed": {"top": box[1], "bottom": h - box[3], "left": box[0], "right": w - box[2]},
            "info_band": None,
            "source": "manual",
        }
        manual.append("crop")
    else:
        crop = detect_crop(arr)
        crop["source"] = "auto"
        n_auto += 1
    cx0, cy0, _, _ = crop["box"]
    cropped = crop_image(arr, crop["box"])
    ch, cw = cropped.shape[:2]

    # scale bar (annotation boxes in raw coordinates)
    sb_cur = cur.get("scale_bar")
    if isinstance(sb_cur, str) and sb_cur.strip().lower() == "none":
        bar = {
            "present": False,
            "box": None,
            "bar_box": None,
            "label_box": None,
            "colour": None,
            "tolerance": None,
            "length_px": None,
            "source": "manual",
        }
        manual.append("scale_bar")
    elif isinstance(sb_cur, dict):
        box = clip_box(sb_cur["box"], arr.shape)
        if box is None:
            raise MicrolibError(
                f"curated scale-bar box {sb_cur['box']} lies outside the image", entry=entry
            )
        colour = sb_cur.get("colour")
        bar = {
            "present": True,
            "box": box,
            "bar_box": sb_cur.get("bar_box"),
            "label_box": None,
            "colour": None if colour is None else float(colour),
            "tolerance": float(sb_cur.get("tolerance", 40.0)),
            "length_px": sb_cur.get("length_px") or (box[2] - box[0]),
            "source": "manual",
        }
        manual.append("scale_bar")
    else:
        found = detect_scale_bar(cropped)
        n_auto += 1
        if found is None:
            bar = {
                "present": False,
                "box": None,
                "bar_box": None,
                "label_box": None,
                "colour": None,
                "tolerance": None,
                "length_px": None,
                "source": "auto",
            }
            # a bar in a band the crop removed needs no in-painting, but its length still
            # turns a curated scale_bar_um into a voxel size
            if crop["box"] != [0, 0, w, h]:
                outside = detect_scale_bar(arr)
                if outside is not None and _outside(outside["bar_box"], list(crop["box"])):
                    bar["outside_crop"] = {
                        "bar_box": outside["bar_box"],
                        "length_px": outside["length_px"],
                    }
                    bar["length_px"] = outside["length_px"]
        else:

            def shift(b: list[int] | None) -> list[int] | None:
                return None if b is None else [b[0] + cx0, b[1] + cy0, b[2] + cx0, b[3] + cy0]

            bar = {
                "present": True,
                "box": shift(found["box"]),
                "bar_box": shift(found["bar_box"]),
                "label_box": shift(found["label_box"]),
                "colour": found["colour"],
                "tolerance": found["tolerance"],
                "length_px": found["length_px"],
                "polarity": found["polarity"],
                "source": "auto",
            }
    bar["dilation_px"] = 1
    if bar["present"]:
        mask = scale_bar_mask(cropped, **bar_mask_args(bar, crop["box"]))
    else:
        mask = np.zeros((ch, cw), bool)
    bar["mask_fraction"] = round(float(mask.mean()), 6)
    mask_or_none = mask if mask.any() else None

    # data type and phases
    typed = decide_data_type(cropped, mask_or_none, tp)
    grey_c = to_grey(cropped)
    if (
        cur.get("data_type") is not None
        or cur.get("phases") is not None
        or cur.get("thresholds") is not None
    ):
        dtype = cur.get("data_type")
        thr = None
        if cur.get("thresholds") is not None:
            thr = sorted(float(t) for t in cur["thresholds"])
        elif cur.get("phases"):
            ph = sorted(float(p) for p in cur["phases"])
            # MicroLib: thresholds are the midpoints between clicked phase grey levels
            thr = [(a + b) / 2.0 for a, b in zip(ph[:-1], ph[1:], strict=True)]
        if dtype is None:
            dtype = (
                {1: "twophase", 2: "threephase"}.get(len(thr or []), "nphase")
                if thr
                else typed["data_type"]
            )
        if dtype in ("twophase", "threephase", "nphase"):
            if thr is None:
                thr = typed["thresholds"] if typed["thresholds"] else None
            if not thr:
                raise MicrolibError(
                    f"curated data_type {dtype} needs phases or thresholds "
                    "(the image does not split automatically)",
                    entry=entry,
                )
            if any(b <= a for a, b in zip(thr[:-1], thr[1:], strict=True)):
                raise MicrolibError(
                    f"curated phases/thresholds give thresholds {thr} that are not "
                    "strictly ascending (two phases with one grey level?)",
                    entry=entry,
                )
            n = len(thr) + 1
            want = {"twophase": 2, "threephase": 3}.get(dtype)
            if want is not None and n != want:
                raise MicrolibError(
                    f"curated data_type {dtype} but {n} phases from the curated phases/thresholds",
                    entry=entry,
                )
            stats = phase_stats(grey_c, thr, mask_or_none)
            typed.update(
                data_type=dtype, n_phases=n, thresholds=[round(t, 3) for t in thr], **stats
            )
        elif dtype in ("grayscale", "colour"):
            if dtype == "colour" and arr.ndim != 3:
                raise MicrolibError(
                    "curated data_type colour but the image is single-channel", entry=entry
                )
            typed.update(
                data_type=dtype,
                n_phases=3 if dtype == "colour" else 1,
                thresholds=[],
                grey_values=None,
                fractions=None,
            )
        else:
            raise MicrolibError(f"unknown curated data_type {dtype!r}", entry=entry)
        manual.append("data_type")
    else:
        n_auto += 1
    if typed["thresholds"]:
        # fractions and grey values as the segment stage will produce them (default
        # denoising and halo removal), so the annotation predicts the segmented image
        from microlib.segment import label_phases, phase_statistics

        labels = label_phases(grey_c, typed["thresholds"])
        typed.update(phase_statistics(grey_c, labels, int(typed["n_phases"]), mask_or_none))

    # voxel size: curated value, or a curated scale-bar length (the label's number) over
    # the measured bar length; never guessed
    voxel = None
    if cur.get("voxel_size_um") is not None:
        voxel = float(cur["voxel_size_um"])
        manual.append("voxel_size_um")
    elif cur.get("scale_bar_um") is not None:
        if not bar.get("length_px"):
            raise MicrolibError(
                "curated scale_bar_um but no scale bar length is known", entry=entry
            )
        voxel = float(cur["scale_bar_um"]) / float(bar["length_px"])
        manual.append("voxel_size_um")

    # filters
    raw_grey = to_grey(arr)
    sc = filter_scores(cropped, typed, mask_or_none, raw_grey=raw_grey)
    acf = sc.pop("acf")
    filters, reasons = evaluate_filters(sc, th)
    summary = metadata_summary(meta)
    forced = None
    if cur.get("include") is not None:
        forced = {"include": bool(cur["include"]), "reason": str(cur.get("reason") or "curated")}
        manual.append("include")
    included = not reasons
    if forced is not None:
        included = forced["include"]
    ann = {
        "schema_version": SCHEMA_VERSION,
        "readable": True,
        "error": None,
        "source": _merge_source(manual, n_auto),
        "manual_fields": manual,
        "image": {"shape": [int(h), int(w)], "channels": int(arr.shape[2]) if arr.ndim == 3 else 1},
        "crop": crop,
        "scale_bar": bar,
        "data_type": typed["data_type"],
        "n_phases": int(typed["n_phases"]),
        "phases": (
            None
            if not typed["thresholds"]
            else {
                "thresholds": typed["thresholds"],
                "grey_values": typed["grey_values"],
                "fractions": typed["fractions"],
            }
        ),
        "type_scores": typed["scores"],
        "voxel_size_um": voxel,
        "filters": filters,
        "thresholds": th.as_dict(),
        "fingerprint": fingerprint(cropped, typed, acf, mask_or_none),
        "metadata": summary,
        "hints": metadata_hints(summary),
        "forced": forced,
        "included": bool(included),
        "reasons": reasons if forced is None or not forced["include"] else [],
    }
    if forced is not None and not forced["include"]:
        ann["reasons"] = [f"curation: {forced['reason']}"] + reasons
    if forced is not None and forced["include"] and reasons:
        ann["overridden_reasons"] = reasons
    return ann


def bar_mask_args(bar: dict[str, Any], crop_box: list[int]) -> dict[str, Any]:
    """Keyword arguments of :func:`scale_bar_mask` for an annotation's scale bar, in the
    coordinates of the cropped image."""
    x0, y0 = crop_box[0], crop_box[1]

    def shift(b: list[int] | None) -> list[int] | None:
        return None if b is None else [b[0] - x0, b[1] - y0, b[2] - x0, b[3] - y0]

    return {
        "box": shift(bar.get("box")),
        "colour": bar.get("colour"),
        "tolerance": float(bar.get("tolerance") or 0.0),
        "label_box": shift(bar.get("label_box")),
        "dilation": int(bar.get("dilation_px", 1)),
    }


def unreadable_annotation(reason: str) -> dict[str, Any]:
    """The annotation of an image that could not be decoded: excluded, with the reason."""
    return {
        "schema_version": SCHEMA_VERSION,
        "readable": False,
        "error": reason,
        "source": "auto",
        "manual_fields": [],
        "image": None,
        "crop": None,
        "scale_bar": None,
        "data_type": None,
        "n_phases": None,
        "phases": None,
        "type_scores": None,
        "voxel_size_um": None,
        "filters": {},
        "thresholds": FilterThresholds().as_dict(),
        "fingerprint": None,
        "metadata": {},
        "hints": [],
        "forced": None,
        "included": False,
        "reasons": [f"unreadable: {reason}"],
    }


# --------------------------------------------------------------------------- selection


def reevaluate(
    annotation: dict[str, Any], overrides: dict[str, Any] | None = None
) -> tuple[bool, list[str], list[str]]:
    """Re-decide one annotation's per-image verdict, optionally with other thresholds.

    Thresholds not overridden stay those the annotation was made with, so a bare
    ``select`` reproduces ``annotate``'s verdicts; curated include/exclude always wins.

    Returns
    -------
    included : bool
    reasons : list of str
    criteria : list of str
        The failed criteria (``isotropy``, ..., ``unreadable``, ``curation``).
    """
    if not annotation.get("readable", True):
        return False, list(annotation.get("reasons") or ["unreadable image"]), ["unreadable"]
    base = thresholds_from_filters(
        annotation.get("filters") or {}, FilterThresholds().updated(annotation.get("thresholds"))
    )
    th = base.updated(overrides)
    filters, reasons = evaluate_filters(scores_from_filters(annotation.get("filters") or {}), th)
    criteria = [name for name in FILTERS if filters[name]["passed"] is False]
    forced = annotation.get("forced")
    if forced is not None:
        if forced.get("include"):
            return True, [], []
        return (
            False,
            [f"curation: {forced.get('reason') or 'excluded by hand'}"] + reasons,
            ["curation"] + criteria,
        )
    return not reasons, reasons, criteria


def select_entries(
    annotations: dict[str, dict[str, Any]], overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Decide the dataset: per-image verdicts, then uniqueness across entries.

    Two entries are near-duplicates when their metadata describe the same material
    (:func:`metadata_similarity` >= ``dup_meta_min``) and their fingerprints are close
    (:func:`fingerprint_distance` <= ``dup_distance_max``). Groups are formed
    transitively; per group one entry is kept, chosen by (1) passing the per-image
    filters, (2) the larger field of view (more pixels of microstructure to train on),
    (3) the lower id. The others are excluded, naming the entry they duplicate. As in
    MicroLib, different magnifications of one material are not duplicates: their
    autocorrelations differ, so their fingerprints do.

    Parameters
    ----------
    annotations : dict
        ``{id: annotation}`` (6-digit ids).
    overrides : dict, optional
        :class:`FilterThresholds` field values replacing those stored in the annotations.

    Returns
    -------
    dict
        ``included`` (sorted ids), ``excluded`` ``{id: {name, reasons, criteria}}``,
        ``duplicates`` (groups with the kept id and pairwise evidence) and ``thresholds``.
    """
    from microlib.io import entry_name

    th = FilterThresholds().updated(overrides)
    verdicts: dict[str, tuple[bool, list[str], list[str]]] = {}
    for ident, ann in sorted(annotations.items()):
        verdicts[ident] = reevaluate(ann, overrides)

    ids = sorted(
        i for i, a in annotations.items() if a.get("readable", True) and a.get("fingerprint")
    )
    parent = {i: i for i in ids}

    def find(i: str) -> str:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    pairs = []
    for a_i, a in enumerate(ids):
        for b in ids[a_i + 1 :]:
            ma = annotations[a].get("metadata") or {}
            mb = annotations[b].get("metadata") or {}
            sim = metadata_similarity(ma, mb)
            if sim < th.dup_meta_min:
                continue
            dist = fingerprint_distance(
                annotations[a]["fingerprint"], annotations[b]["fingerprint"]
            )
            if dist <= th.dup_distance_max:
                pairs.append(
                    {"a": a, "b": b, "fingerprint_distance": dist, "metadata_similarity": sim}
                )
                parent[find(b)] = find(a)

    groups: dict[str, list[str]] = {}
    for i in ids:
        groups.setdefault(find(i), []).append(i)

    def area(i: str) -> int:
        box = (annotations[i].get("crop") or {}).get("box") or [0, 0, 0, 0]
        return (box[2] - box[0]) * (box[3] - box[1])

    duplicates = []
    dup_reason: dict[str, tuple[str, float]] = {}
    for members in groups.values():
        if len(members) < 2:
            continue
        kept = sorted(members, key=lambda i: (not verdicts[i][0], -area(i), i))[0]
        group_pairs = [p for p in pairs if p["a"] in members and p["b"] in members]
        for m in members:
            if m == kept:
                continue
            ds = [p["fingerprint_distance"] for p in group_pairs if {p["a"], p["b"]} == {m, kept}]
            dist = (
                ds[0]
                if ds
                else min(p["fingerprint_distance"] for p in group_pairs if m in (p["a"], p["b"]))
            )
            dup_reason[m] = (kept, dist)
        duplicates.append({"kept": kept, "members": sorted(members), "pairs": group_pairs})

    included: list[str] = []
    excluded: dict[str, Any] = {}
    for ident in sorted(annotations):
        ok, reasons, criteria = verdicts[ident]
        forced = annotations[ident].get("forced")
        forced_in = bool(forced and forced.get("include"))
        if ident in dup_reason and not forced_in:
            kept, dist = dup_reason[ident]
            reasons = reasons + [
                f"uniqueness: near-duplicate of {kept} ({entry_name(kept)}), same material, "
                f"fingerprint distance {dist:.3f} <= {th.dup_distance_max:.3f}"
            ]
            criteria = criteria + ["uniqueness"]
            ok = False
        if ok:
            included.append(ident)
        else:
            excluded[ident] = {"name": entry_name(ident), "reasons": reasons, "criteria": criteria}
    return {
        "schema_version": SCHEMA_VERSION,
        "thresholds": th.as_dict(),
        "included": included,
        "excluded": excluded,
        "duplicates": duplicates,
    }


# --------------------------------------------------------------------------- MicroLib import


def curation_from_prelabelled(prelabelled: dict[str, Any]) -> dict[str, Any]:
    """Convert MicroLib's ``prelabelled_anns.json`` into this pipeline's curation format.

    MicroLib fields: ``barbox`` ``[[x0, y0], [x1, y1]]`` (col, row; used as
    ``mask[y0:y1, x0:x1]``, so half-open like our boxes), ``barcol`` ``[colour,
    threshold]`` or null (null masked the whole box), ``phases`` (red-channel grey
    levels per phase; thresholds are their midpoints), ``vox_size`` (um/px) and
    ``data_type``. MicroLib's consumer masked ``abs(red - colour/255) < threshold/2550``
    in 0..1 units, i.e. a tolerance of ``threshold / 10`` grey levels.

    Returns
    -------
    dict
        ``{"entries": {id: record}}`` with 6-digit ids taken from ``data_path``.
    """
    from microlib.io import entry_id

    entries: dict[str, Any] = {}
    for key, ann in prelabelled.items():
        path = str(ann.get("data_path", ""))
        m = re.search(r"(\d+)\.\w+$", path)
        ident = entry_id(m.group(1)) if m else entry_id(key)
        rec: dict[str, Any] = {}
        bb = ann.get("barbox")
        if bb:
            (x0, y0), (x1, y1) = bb
            box = [int(min(x0, x1)), int(min(y0, y1)), int(max(x0, x1)), int(max(y0, y1))]
            bc = ann.get("barcol")
            if bc:
                rec["scale_bar"] = {
                    "box": box,
                    "colour": float(bc[0]),
                    "tolerance": float(bc[1]) / 10.0,
                }
            else:
                rec["scale_bar"] = {"box": box, "colour": None, "tolerance": 0.0}
        phases = ann.get("phases") or []
        if phases:
            rec["phases"] = [float(p) for p in phases]
            rec["data_type"] = {2: "twophase", 3: "threephase"}.get(len(phases), "nphase")
        elif ann.get("data_type"):
            rec["data_type"] = str(ann["data_type"])
        if ann.get("vox_size"):
            rec["voxel_size_um"] = float(ann["vox_size"])
        rec["note"] = f"imported from MicroLib prelabelled_anns.json key {key}"
        entries[ident] = rec
    return {"entries": dict(sorted(entries.items()))}
