"""The built-in demo library: a small DoITPoMS-shaped site with known ground truth.

Procedural micrographs (Gaussian random fields, Voronoi grains, stain models) are imaged
with realistic defects (slight blur, grey-level noise, phase grey levels away from 0/255,
JPEG compression) and get a rendered scale bar (a solid bar plus a text label) in one of
several placements. Record pages follow the DoITPoMS layout the scraper parses. Every
entry is made-up and credited to a fictional "MicroLib demo" contributor.

The library covers what the pipeline must get right: five entries to include (two
two-phase morphologies, a three-phase, a grayscale and a colour micrograph) and one
entry failing each exclusion criterion (uneven exposure, anisotropy, a near-duplicate,
poor quality, non-representative), plus a record page without a record and id gaps.

Everything here is pure: :func:`build_site` returns the site's files as bytes and the
ground truth as a dict; ``microlib.commands.demo_site`` writes them.
"""

from __future__ import annotations

import html
import io
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import numpy as np
from scipy import ndimage

LICENCE_CC = (
    '<p class="licence">This micrograph is licensed under a <a rel="license" '
    'href="http://creativecommons.org/licenses/by-nc-sa/2.0/uk/">Creative Commons '
    "Attribution-Noncommercial-Share Alike 2.0 UK: England &amp; Wales License</a>.</p>"
)
LICENCE_TERMS = (
    '<p class="licence">This micrograph is covered by the <a href="../miclib/terms.php">'
    "DoITPoMS standard terms of use</a>.</p>"
)
CONTRIBUTOR = "MicroLib demo (fictional contributor)"
ORGANISATION = "MicroLib demo library, Synthetic Microstructures & Imaging Group (fictional)"


# --------------------------------------------------------------------------- structures


def gaussian_random_field(
    shape: tuple[int, int], corr_len: float, rng: np.random.Generator, aspect: float = 1.0
) -> np.ndarray:
    """Zero-mean, unit-variance Gaussian random field with a Gaussian covariance.

    Parameters
    ----------
    shape : (int, int)
    corr_len : float
        Correlation length along y (rows), px.
    rng : numpy.random.Generator
    aspect : float
        Correlation length along x divided by that along y (> 1: features elongated
        along x).

    Returns
    -------
    ndarray of float64
    """
    noise = rng.standard_normal(shape)
    ky = np.fft.fftfreq(shape[0])[:, None]
    kx = np.fft.rfftfreq(shape[1])[None, :]
    ly, lx = float(corr_len), float(corr_len) * float(aspect)
    filt = np.exp(-2.0 * np.pi**2 * ((kx * lx) ** 2 + (ky * ly) ** 2))
    f = np.fft.irfft2(np.fft.rfft2(noise) * filt, s=shape)
    return (f - f.mean()) / (f.std() + 1e-12)


def threshold_field(f: np.ndarray, fraction: float) -> np.ndarray:
    """Boolean image that is True on the ``fraction`` of pixels with the lowest values."""
    return f <= np.quantile(f, fraction)


def voronoi_grains(shape: tuple[int, int], n_grains: int, rng: np.random.Generator) -> np.ndarray:
    """Label image of a Voronoi tessellation with ``n_grains`` random seeds (grain ids)."""
    from scipy.spatial import cKDTree

    h, w = shape
    seeds = rng.uniform([0, 0], [h, w], size=(n_grains, 2))
    yy, xx = np.mgrid[0:h, 0:w]
    _, idx = cKDTree(seeds).query(np.stack([yy.ravel(), xx.ravel()], axis=1))
    return idx.reshape(h, w)


def image_phases(
    labels: np.ndarray,
    grey_levels: list[float],
    rng: np.random.Generator,
    *,
    blur: float = 0.8,
    noise: float = 6.0,
    grain_ids: np.ndarray | None = None,
    grain_jitter: float = 0.0,
) -> np.ndarray:
    """Image a phase-label map: grey level per phase, optional per-grain etch contrast,
    optical blur, Gaussian grey-level noise (float64, unclipped)."""
    img = np.asarray(grey_levels, dtype=np.float64)[labels]
    if grain_ids is not None and grain_jitter > 0:
        offs = rng.normal(0.0, grain_jitter, size=int(grain_ids.max()) + 1)
        img = img + offs[grain_ids]
    if blur > 0:
        img = ndimage.gaussian_filter(img, blur)
    return img + rng.normal(0.0, noise, size=img.shape)


def to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- scale bars


@dataclass
class BarSpec:
    """A scale bar to render: ``placement`` is ``overlay`` (drawn on the data, bottom
    right or bottom left), ``band`` (in an info band added below the data) or ``none``."""

    placement: str = "overlay"
    corner: str = "right"
    colour: int = 255
    um: float = 20.0
    voxel_size_um: float = 0.25
    thickness: int = 6
    band_height: int = 46
    band_colour: int = 0
    separator: int | None = None
    extra_text: str | None = None
    font_size: int = 16


def _font(size: int) -> tuple[Any, bool]:
    """A scalable font and whether it has non-ASCII glyphs (µ, ×, ü).

    DejaVu Sans (present on most Linux systems and in matplotlib) covers them; Pillow's
    built-in font, the fallback, does not, so labels then fall back to ASCII ("um").
    """
    from PIL import ImageFont

    for name in ("DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"):
        try:
            return ImageFont.truetype(name, size), True
        except OSError:
            continue
    try:
        import matplotlib

        path = f"{matplotlib.get_data_path()}/fonts/ttf/DejaVuSans.ttf"
        return ImageFont.truetype(path, size), True
    except (ImportError, OSError):
        pass
    return ImageFont.load_default(size=size), False


def _ascii(text: str) -> str:
    return text.replace("µ", "u").replace("×", "x").replace("ü", "ue").replace("°", " deg")


def render_scale_bar(
    img: np.ndarray, spec: BarSpec
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Draw a scale bar and its label on a uint8 image.

    Returns
    -------
    image : ndarray
        uint8 image (taller by ``band_height`` for a band placement).
    overlay : ndarray of bool
        Every pixel the bar or label touched (antialiasing included): the ground-truth
        mask the in-painter must cover.
    info : dict
        ``bar_box``, ``label_box``, ``box`` (union), ``length_px``, ``label``.
    """
    from PIL import Image, ImageDraw

    h, w = img.shape[:2]
    colour_img = img.ndim == 3
    if spec.placement == "none":
        return img, np.zeros((h, w), bool), {"placement": "none"}
    length = int(round(spec.um / spec.voxel_size_um))
    font, unicode_ok = _font(spec.font_size)
    label = f"{spec.um:g} µm" if unicode_ok else f"{spec.um:g} um"
    if spec.placement == "band":
        band = np.full((spec.band_height, w) + img.shape[2:], spec.band_colour, np.uint8)
        parts = [img]
        if spec.separator is not None:
            parts.append(np.full((2, w) + img.shape[2:], spec.separator, np.uint8))
        parts.append(band)
        canvas = np.concatenate(parts, axis=0)
        top = canvas.shape[0] - spec.band_height
        y_bar = top + spec.band_height - 10 - spec.thickness
        x_bar = w - 16 - length
    else:
        canvas = img.copy()
        top = None
        y_bar = h - 14 - spec.thickness
        x_bar = w - 18 - length if spec.corner == "right" else 18
    ch, cw = canvas.shape[:2]
    # draw on a separate coverage layer, then composite: the layer is the ground truth
    layer = Image.new("L", (cw, ch), 0)
    draw = ImageDraw.Draw(layer)
    draw.rectangle([x_bar, y_bar, x_bar + length - 1, y_bar + spec.thickness - 1], fill=255)
    tb = draw.textbbox((0, 0), label, font=font)
    tw, th = tb[2] - tb[0], tb[3] - tb[1]
    tx = x_bar + (length - tw) // 2 - tb[0]
    ty = y_bar - 4 - th - tb[1]
    draw.text((tx, ty), label, font=font, fill=255)
    if spec.extra_text and top is not None:
        small, small_ok = _font(spec.font_size - 2)
        draw.text(
            (12, top + 8),
            spec.extra_text if small_ok else _ascii(spec.extra_text),
            font=small,
            fill=255,
        )
    alpha = np.asarray(layer, dtype=np.float64) / 255.0
    if colour_img:
        alpha3 = alpha[..., None]
        out = canvas.astype(np.float64) * (1 - alpha3) + spec.colour * alpha3
    else:
        out = canvas.astype(np.float64) * (1 - alpha) + spec.colour * alpha
    overlay = alpha > 0
    ys, xs = np.nonzero(overlay)
    lab_ys, lab_xs = np.nonzero(overlay[:y_bar, :]) if y_bar > 0 else (ys, xs)
    info = {
        "placement": spec.placement,
        "colour": spec.colour,
        "um": spec.um,
        "label": label,
        "length_px": length,
        "bar_box": [int(x_bar), int(y_bar), int(x_bar + length), int(y_bar + spec.thickness)],
        "label_box": (
            [int(lab_xs.min()), int(lab_ys.min()), int(lab_xs.max() + 1), int(y_bar)]
            if lab_xs.size
            else None
        ),
        "box": [int(xs.min()), int(ys.min()), int(xs.max() + 1), int(ys.max() + 1)],
    }
    return to_uint8(out), overlay, info


def add_frame(img: np.ndarray, width: int, value: int) -> np.ndarray:
    """Surround an image with a constant frame ``width`` px wide."""
    pad = ((width, width), (width, width)) + (((0, 0),) if img.ndim == 3 else ())
    return np.pad(img, pad, mode="constant", constant_values=value)


def encode_jpeg(img: np.ndarray, quality: int = 88) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=int(quality), optimize=False)
    return buf.getvalue()


# --------------------------------------------------------------------------- records


@dataclass
class Record:
    """One DoITPoMS-style record; empty strings / lists omit the field."""

    brief: str
    keywords: list[str] = field(default_factory=list)
    categories: str = ""
    composition: str = ""
    technique: str = ""
    further: list[str] = field(default_factory=list)  # paragraphs, joined by <br>
    contributor: str = CONTRIBUTOR
    organisation: str = ORGANISATION
    licence: str = "cc"


def record_fields(rec: Record) -> dict[str, Any]:
    """The record as plain fields (label -> text; keywords as a list): what a scraper
    should extract from the page. Omitted fields are absent."""
    out: dict[str, Any] = {"Brief description": rec.brief}
    if rec.keywords:
        out["Keywords"] = list(rec.keywords)
    for label, value in (
        ("Categories", rec.categories),
        ("Composition", rec.composition),
        ("Technique", rec.technique),
    ):
        if value:
            out[label] = value
    if rec.further:
        out["Further information"] = "\n".join(rec.further)
    if rec.contributor:
        out["Contributor"] = rec.contributor
    if rec.organisation:
        out["Organisation"] = rec.organisation
    out["licence"] = (
        "CC BY-NC-SA 2.0 UK" if rec.licence != "terms" else "DoITPoMS standard terms of use"
    )
    return out


def record_html(number: int, rec: Record | None) -> str:
    """A record page in the DoITPoMS layout (every inserted text HTML-escaped)."""
    esc = html.escape
    head = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>DoITPoMS - '
        f"Micrograph Library - Micrograph {number}</title></head>\n"
        '<body><div class="container"><div class="row">\n'
    )
    if rec is None:
        return head + ' <div class="col-md-8"></div></div></div></body></html>\n'
    img = f"micrographs/large/{number:06d}.jpg"
    rows = [("Brief description", esc(rec.brief))]
    if rec.keywords:
        links = ", ".join(
            f'<a href="{esc("browse.php?keyword=" + quote(k, safe=""))}">{esc(k)}</a>'
            for k in rec.keywords
        )
        rows.append(("Keywords", links))
    if rec.categories:
        rows.append(("Categories", esc(rec.categories)))
    if rec.composition:
        rows.append(("Composition", esc(rec.composition)))
    if rec.technique:
        rows.append(("Technique", esc(rec.technique)))
    if rec.further:
        rows.append(("Further information", "<br>".join(esc(p) for p in rec.further)))
    if rec.contributor:
        rows.append(("Contributor", esc(rec.contributor)))
    if rec.organisation:
        rows.append(("Organisation", esc(rec.organisation)))
    dl = "\n".join(f"   <dt>{k}</dt><dd>{v}</dd>" for k, v in rows)
    licence = LICENCE_TERMS if rec.licence == "terms" else LICENCE_CC
    return (
        head
        + f' <div class="col-md-4"><a href="{img}"><img src="{img}" alt="Micrograph {number}"></a></div>\n'
        + ' <div class="col-md-8">\n'
        + f"  <h2>Micrograph {number}</h2>\n"
        + '  <dl class="dl-horizontal">\n'
        + dl
        + "\n"
        + "  </dl>\n"
        + f"  {licence}\n"
        + " </div></div></div></body></html>\n"
    )


# --------------------------------------------------------------------------- entries


def _sub(rng: np.random.Generator, name: str) -> np.random.Generator:
    # an independent stream per entry, so adding an entry never changes the others
    return np.random.default_rng([int(rng.integers(0, 2**31 - 1)), sum(name.encode())])


def _phase_fractions(labels: np.ndarray, n: int, exclude: np.ndarray | None = None) -> list[float]:
    lab = labels if exclude is None else labels[~exclude]
    counts = np.bincount(lab.ravel(), minlength=n).astype(np.float64)
    return [round(float(c / counts.sum()), 5) for c in counts]


def _entry_particles(rng: np.random.Generator) -> dict[str, Any]:
    """Dark particles in a bright matrix (thresholded random field) on a canvas that
    also yields the near-duplicate: two regions of one sample."""
    canvas = threshold_field(gaussian_random_field((420, 820), 4.5, rng), 0.32).astype(np.int64)
    # label 0 = darkest phase: the particles
    labels = np.where(canvas == 1, 0, 1)
    img = image_phases(labels, [72.0, 182.0], rng, blur=0.8, noise=6.0)
    return {"labels": labels, "img": img}


def build_entries(seed: int = 0) -> list[dict[str, Any]]:
    """Specifications and rendered arrays of every demo entry (deterministic in ``seed``)."""
    root = np.random.default_rng(seed)
    streams = {
        name: _sub(root, name)
        for name in (
            "particles",
            "duplex",
            "threephase",
            "grayscale",
            "colour",
            "exposure",
            "anisotropic",
            "blurred",
            "coarse",
        )
    }
    entries: list[dict[str, Any]] = []

    # 3 and 24: one sample, two regions (24 is the near-duplicate of 3)
    part = _entry_particles(streams["particles"])
    rec_particles = Record(
        brief="Spheroidised carbides in an annealed tool steel",
        keywords=["carbide", "steel", "spheroidisation", "annealing"],
        categories="Metal or alloy",
        composition="Fe 1.0 wt% C, 1.5 wt% Cr",
        technique="Light microscopy",
        further=[
            "Annealed at 720 °C for 20 h and furnace cooled.",
            "Etched in 2% nital; carbides appear dark. Scale bar in µm.",
        ],
        licence="cc",
    )
    entries.append(
        dict(
            number=3,
            kind="particles",
            data_type="twophase",
            included=True,
            criterion=None,
            labels=part["labels"][10:410, 10:410],
            img=part["img"][10:410, 10:410],
            grey_levels=[72.0, 182.0],
            bar=BarSpec(placement="overlay", corner="right", colour=255, um=20, voxel_size_um=0.25),
            record=rec_particles,
        )
    )
    entries.append(
        dict(
            number=24,
            kind="particles (second region of entry 3)",
            data_type="twophase",
            included=False,
            criterion="uniqueness",
            duplicate_of=3,
            labels=part["labels"][40:400, 450:810],
            img=part["img"][40:400, 450:810],
            grey_levels=[72.0, 182.0],
            bar=BarSpec(placement="overlay", corner="right", colour=255, um=10, voxel_size_um=0.25),
            record=rec_particles,
        )
    )

    # 5: duplex grains (alpha/beta brass-like), info band at the bottom, saved as RGB
    rng = streams["duplex"]
    grains = voronoi_grains((360, 440), 150, rng)
    phase_of = (rng.random(int(grains.max()) + 1) < 0.45).astype(np.int64)
    lab5 = np.where(phase_of[grains] == 1, 0, 1)
    img5 = image_phases(
        lab5, [88.0, 176.0], rng, blur=0.9, noise=6.0, grain_ids=grains, grain_jitter=5.0
    )
    entries.append(
        dict(
            number=5,
            kind="duplex grains",
            data_type="twophase",
            included=True,
            criterion=None,
            labels=lab5,
            img=img5,
            grey_levels=[88.0, 176.0],
            rgb=True,
            bar=BarSpec(
                placement="band",
                colour=255,
                band_colour=0,
                um=50,
                voxel_size_um=0.5,
                thickness=5,
                extra_text="×200  Müller etch",
            ),
            record=Record(
                brief="Duplex α/β brass, hot worked and annealed",
                keywords=["brass", "duplex", "α/β"],
                categories="Metal or alloy",
                composition="Cu 60 wt%, Zn 40 wt%",
                technique="Light microscopy",
                further=[
                    "Annealed at 600 °C; the β phase etches dark with Müller's reagent (fictional recipe)."
                ],
                licence="cc",
            ),
        )
    )

    # 8: three phases (porous cermet: pores / metal / ceramic), black bar on the data
    rng = streams["threephase"]
    f1 = gaussian_random_field((380, 420), 5.0, rng)
    f2 = gaussian_random_field((380, 420), 6.0, rng)
    lab8 = np.where(threshold_field(f1, 0.25), 0, np.where(threshold_field(f2, 0.45), 1, 2))
    img8 = image_phases(lab8, [48.0, 128.0, 208.0], rng, blur=0.8, noise=5.0)
    entries.append(
        dict(
            number=8,
            kind="three-phase cermet",
            data_type="threephase",
            included=True,
            criterion=None,
            labels=lab8,
            img=img8,
            grey_levels=[48.0, 128.0, 208.0],
            bar=BarSpec(
                placement="overlay", corner="left", colour=0, um=10, voxel_size_um=0.1, thickness=6
            ),
            record=Record(
                brief="Porous Ni–YSZ cermet anode",
                keywords=["cermet", "porosity", "fuel cell"],
                categories="Ceramic",
                composition="Ni 40 vol%, ZrO2 (8 mol% Y2O3)",
                technique="Scanning electron microscopy (backscattered electrons)",
                further=["Sintered at 1350 °C. Pores dark, nickel grey, zirconia bright."],
                licence="terms",
            ),
        )
    )

    # 11: grayscale: a smooth continuous texture nobody would threshold
    rng = streams["grayscale"]
    tex = 0.55 * gaussian_random_field((400, 460), 3.0, rng) + 0.85 * gaussian_random_field(
        (400, 460), 9.0, rng
    )
    tex = tex / tex.std()
    img11 = ndimage.gaussian_filter(128.0 + 30.0 * tex, 0.7) + rng.normal(0.0, 4.0, tex.shape)
    entries.append(
        dict(
            number=11,
            kind="grayscale texture",
            data_type="grayscale",
            included=True,
            criterion=None,
            labels=None,
            img=img11,
            grey_levels=None,
            bar=BarSpec(placement="overlay", corner="right", colour=255, um=5, voxel_size_um=0.05),
            record=Record(
                brief="Fracture-free polished surface of a nanocrystalline alloy, topography contrast",
                keywords=["nanocrystalline", "topography"],
                categories="Metal or alloy",
                composition="Ni 80 wt%, Fe 20 wt%",
                technique="Atomic force microscopy (height channel rendered in grey)",
                further=[],
                licence="cc",
            ),
        )
    )

    # 14: colour: two stains with independent uptake (Beer-Lambert), no scale bar
    rng = streams["colour"]
    shape = (380, 400)
    phase = ndimage.gaussian_filter(
        threshold_field(gaussian_random_field(shape, 5.0, rng), 0.4).astype(float), 1.0
    )
    c1 = 0.25 + 1.1 * phase + 0.15 * gaussian_random_field(shape, 10.0, rng)
    c2 = 0.55 + 0.35 * gaussian_random_field(shape, 8.0, rng)
    od1 = np.array([0.65, 0.70, 0.29])  # haematoxylin-like stain
    od2 = np.array([0.07, 0.99, 0.11])  # eosin-like stain
    rgb = 255.0 * np.exp(
        -(np.clip(c1, 0, None)[..., None] * od1 + np.clip(c2, 0, None)[..., None] * od2)
    )
    rgb = rgb + rng.normal(0.0, 3.0, rgb.shape)
    entries.append(
        dict(
            number=14,
            kind="stained colour micrograph",
            data_type="colour",
            included=True,
            criterion=None,
            labels=None,
            img=rgb,
            grey_levels=None,
            bar=BarSpec(placement="none"),
            record=Record(
                brief="Stained section of a polymer blend",
                keywords=["polymer", "blend", "staining"],
                categories="Polymer",
                composition="PS/PMMA 60/40",
                technique="Light microscopy, transmitted, two-stain",
                further=["Stained at 25 °C; the PMMA-rich phase takes up the blue stain."],
                licence="cc",
            ),
        )
    )

    # 17: uneven exposure: a valid two-phase structure under a strong illumination
    # gradient; white info band with black bar, grey separator line
    rng = streams["exposure"]
    f = gaussian_random_field((360, 420), 5.0, rng)
    lab17 = np.where(threshold_field(f, 0.4), 0, 1)
    base = image_phases(lab17, [80.0, 180.0], rng, blur=0.8, noise=5.0)
    yy, xx = np.mgrid[0:360, 0:420]
    illum = 1.0 + 0.42 * ((xx / 419.0) - 0.5) + 0.12 * ((yy / 359.0) - 0.5)
    entries.append(
        dict(
            number=17,
            kind="uneven exposure",
            data_type="twophase",
            included=False,
            criterion="exposure",
            labels=lab17,
            img=base * illum,
            grey_levels=[80.0, 180.0],
            bar=BarSpec(
                placement="band",
                colour=0,
                band_colour=255,
                separator=120,
                um=20,
                voxel_size_um=0.2,
                thickness=5,
            ),
            record=Record(
                brief="Ferrite and martensite in a dual-phase steel (oblique illumination)",
                keywords=["dual-phase steel", "martensite"],
                categories="Metal or alloy",
                composition="Fe 0.1 wt% C, 1.5 wt% Mn",
                technique="Light microscopy",
                further=["Intercritically annealed at 780 °C and water quenched."],
                licence="cc",
            ),
        )
    )

    # 21: strongly anisotropic (features elongated along x), black 2-px frame
    rng = streams["anisotropic"]
    f = gaussian_random_field((372, 440), 3.5, rng, aspect=4.5)
    lab21 = np.where(threshold_field(f, 0.45), 0, 1)
    entries.append(
        dict(
            number=21,
            kind="anisotropic",
            data_type="twophase",
            included=False,
            criterion="isotropy",
            labels=lab21,
            img=image_phases(lab21, [70.0, 175.0], rng, blur=0.8, noise=6.0),
            grey_levels=[70.0, 175.0],
            bar=BarSpec(placement="overlay", corner="right", colour=255, um=20, voxel_size_um=0.2),
            frame=(2, 0),
            record=Record(
                brief="Cold-rolled and recovered aluminium alloy, longitudinal section",
                keywords=["aluminium", "cold rolling"],
                categories="Metal or alloy",
                composition="",
                technique="Light microscopy (polarised)",
                further=["Rolling direction horizontal."],
                licence="cc",
            ),
        )
    )

    # 29: poor quality: heavily out of focus
    rng = streams["blurred"]
    f = gaussian_random_field((360, 380), 9.0, rng)
    lab29 = np.where(threshold_field(f, 0.45), 0, 1)
    entries.append(
        dict(
            number=29,
            kind="out of focus",
            data_type="twophase",
            included=False,
            criterion="quality",
            labels=lab29,
            img=image_phases(lab29, [70.0, 185.0], rng, blur=3.2, noise=5.0),
            grey_levels=[70.0, 185.0],
            bar=BarSpec(placement="overlay", corner="right", colour=255, um=20, voxel_size_um=0.25),
            record=Record(
                brief="Graphite flakes in grey cast iron",
                keywords=[],
                categories="Metal or alloy",
                composition="Fe 3.4 wt% C, 2.2 wt% Si",
                technique="Light microscopy",
                further=["Unetched."],
                licence="cc",
            ),
        )
    )

    # 33: non-representative: a handful of huge grains fill the field of view
    rng = streams["coarse"]
    grains = voronoi_grains((360, 380), 7, rng)
    lab33 = (grains % 2).astype(np.int64)
    entries.append(
        dict(
            number=33,
            kind="few huge grains",
            data_type="twophase",
            included=False,
            criterion="representativity",
            labels=lab33,
            img=image_phases(
                lab33, [85.0, 170.0], rng, blur=0.8, noise=6.0, grain_ids=grains, grain_jitter=3.0
            ),
            grey_levels=[85.0, 170.0],
            bar=BarSpec(placement="overlay", corner="right", colour=255, um=200, voxel_size_um=2.0),
            record=Record(
                brief="Coarse-grained two-phase region of a directionally solidified casting",
                keywords=["casting", "coarse grains"],
                categories="Metal or alloy",
                composition="Ni 30 wt% Cu",
                technique="Light microscopy",
                further=["Macro-etched."],
                licence="cc",
            ),
        )
    )
    return entries


EMPTY_RECORDS = (12,)


def render_entry(spec: dict[str, Any]) -> tuple[bytes, dict[str, Any], dict[str, np.ndarray]]:
    """Image an entry: scale bar, frame, JPEG; return (jpeg bytes, truth, truth arrays)."""
    img = to_uint8(spec["img"])
    if spec.get("rgb") and img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    h, w = img.shape[:2]
    out, overlay, bar = render_scale_bar(img, spec["bar"])
    frame_w = 0
    if spec.get("frame"):
        frame_w, value = spec["frame"]
        out = add_frame(out, frame_w, value)
        overlay = np.pad(overlay, frame_w)
        for k in ("bar_box", "label_box", "box"):
            if bar.get(k):
                bar[k] = [v + frame_w for v in bar[k]]
    crop = [frame_w, frame_w, frame_w + w, frame_w + h]
    jpeg = encode_jpeg(out, quality=88 if spec["number"] % 2 else 85)
    labels = spec.get("labels")
    in_crop = overlay[crop[1] : crop[3], crop[0] : crop[2]]
    voxel = spec["bar"].voxel_size_um if spec["bar"].placement != "none" else None
    truth = {
        "id": f"{spec['number']:06d}",
        "kind": spec["kind"],
        "data_type": spec["data_type"],
        "n_phases": (
            len(spec["grey_levels"])
            if spec.get("grey_levels")
            else (3 if spec["data_type"] == "colour" else 1)
        ),
        "included": bool(spec["included"]),
        "criterion": spec.get("criterion"),
        "duplicate_of": (f"{spec['duplicate_of']:06d}" if spec.get("duplicate_of") else None),
        "image_size": [int(out.shape[0]), int(out.shape[1])],
        "channels": 3 if out.ndim == 3 else 1,
        "crop_box": crop,
        "scale_bar": bar,
        "scale_bar_in_crop": bool(in_crop.any()),
        "voxel_size_um": voxel,
        "phase_grey_levels": spec.get("grey_levels"),
        "phase_fractions": (
            _phase_fractions(labels, len(spec["grey_levels"]), in_crop)
            if labels is not None
            else None
        ),
        "labels": f"truth/{spec['number']:06d}_labels.png" if labels is not None else None,
        "bar_mask": f"truth/{spec['number']:06d}_barmask.png",
        "record": record_fields(spec["record"]),
    }
    arrays = {"barmask": (overlay * 255).astype(np.uint8)}
    if labels is not None:
        arrays["labels"] = labels.astype(np.uint8)
    return jpeg, truth, arrays


def build_site(seed: int = 0) -> tuple[dict[str, bytes], dict[str, Any]]:
    """Every file of the demo site, and its ground truth.

    Parameters
    ----------
    seed : int
        Seeds every random choice; the same seed gives byte-identical files.

    Returns
    -------
    files : dict
        Relative path -> bytes (``robots.txt``, ``miclib/full_record/{N}.html``,
        ``miclib/micrographs/large/{N:06d}.jpg``, ``truth/*.png``, ``ground_truth.json``).
    truth : dict
        The ground truth written to ``ground_truth.json``.
    """
    from PIL import Image

    files: dict[str, bytes] = {"robots.txt": b"User-agent: *\nAllow: /\n"}
    entries: dict[str, Any] = {}
    for spec in build_entries(seed):
        n = spec["number"]
        jpeg, truth, arrays = render_entry(spec)
        files[f"miclib/micrographs/large/{n:06d}.jpg"] = jpeg
        files[f"miclib/full_record/{n}.html"] = record_html(n, spec["record"]).encode("utf-8")
        for key, arr in arrays.items():
            buf = io.BytesIO()
            Image.fromarray(arr).save(buf, format="PNG")
            name = "labels" if key == "labels" else "barmask"
            files[f"truth/{n:06d}_{name}.png"] = buf.getvalue()
        entries[truth["id"]] = truth
    for n in EMPTY_RECORDS:
        files[f"miclib/full_record/{n}.html"] = record_html(n, None).encode("utf-8")
    present = sorted(int(k) for k in entries)
    truth_doc = {
        "seed": int(seed),
        "id_range": [1, 40],
        "present": [f"{n:06d}" for n in present],
        "missing": [f"{n:06d}" for n in EMPTY_RECORDS],
        "included": sorted(k for k, v in entries.items() if v["included"]),
        "excluded": {k: v["criterion"] for k, v in sorted(entries.items()) if not v["included"]},
        "conventions": {
            "boxes": "[x0, y0, x1, y1] half-open, raw image pixels (x = column)",
            "labels": "truth/{id}_labels.png: phase labels 0..n-1 (ascending grey) of the cropped data "
            "region, the structure before imaging (blur, noise, scale bar, JPEG)",
            "bar_mask": "truth/{id}_barmask.png: raw image size, 255 where the scale bar or its label "
            "touched a pixel (antialiasing included)",
        },
        "entries": dict(sorted(entries.items())),
    }
    files["ground_truth.json"] = (
        json.dumps(truth_doc, indent=2, ensure_ascii=False) + "\n"
    ).encode("utf-8")
    return files, truth_doc
