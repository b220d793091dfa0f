"""The entries of the demo library: what each micrograph shows and why it is there.

Five entries to include (two two-phase morphologies, a three-phase, a grayscale and a
colour micrograph), one entry failing each exclusion criterion (uneven exposure,
anisotropy, a near-duplicate, poor quality, non-representative) and the three members of
one family (:mod:`microlib.demo_site.family`). Each entry draws from
its own random stream, so adding an entry never changes the others.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from microlib.demo_site.family import family_entries
from microlib.demo_site.records import Record
from microlib.demo_site.scale_bar import BarSpec
from microlib.demo_site.structures import (
    gaussian_random_field,
    image_phases,
    threshold_field,
    voronoi_grains,
)


def _sub(rng: np.random.Generator, name: str) -> np.random.Generator:
    # an independent stream per entry, so adding an entry never changes the others
    return np.random.default_rng([int(rng.integers(0, 2**31 - 1)), sum(name.encode())])


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
            "family",
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

    # 36-38: one family (a coarsening series) for the conditional generator
    entries += family_entries(streams["family"])
    return entries
