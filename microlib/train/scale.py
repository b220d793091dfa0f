"""Training resolution: coarse micrographs train on a downscaled image.

The critic judges crops of ``l`` pixels (the demo's 32). When the finest phase's features
are about as large as a crop, no crop holds a whole feature with its neighbours, and the
generator learns boundaries without the shapes they bound: on the demo's 005 (two-phase
grains with straight edges, finest-phase mean chord 50 px) every 128^3 cube came out with
ragged, bumpy boundaries and small islands, surface area 20 % over its image's (35 % once
the phase offsets moved the boundaries into the logits' noisy bulk), 5-9 points of
volume fraction off. Trained on the image downscaled by 2 (25 px chords) and generated
at half resolution with the logits upsampled trilinearly (:mod:`microlib.generate`), the
same budget gave clean grains of the right size: surface area 1 % over on average over
eight 128^3 cubes (7 % on the demo's validation cube), anisotropy 1.07.

The measure is the mean chord of the finest phase, ``2 vf_k / s_k`` for phase ``k``'s
volume fraction ``vf_k`` and its share ``s_k`` of neighbour pairs that cross its boundary
(about the mean length of a run of phase ``k`` along an axis, twice it for a structure
whose boundaries all lie along one axis). It is the finest phase's size, not the spacing
between boundaries, so sparse small particles (the real 017: 6 px particles 55 px apart)
stay at full resolution.

``auto`` halves the resolution only when that chord is longer than the crop. Below it the
trade is mixed: on the four real two-phase micrographs with the longest chords under the
crop (``bench fidelity``: 238, 737, 545, 860, chords 17-24 px, seed 0, 600 iterations),
training at half resolution took the mean volume-fraction error from 1.97 to 0.98 points,
the S2 curve error from 0.104 to 0.061 and the lattice score from 1.61 to 1.06 times the
images', but put the surface area 9.3 % off instead of 2.9 % (860: 0.1 -> 14.4 %): the
upsampled boundaries are smoother than the images' pixel steps.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from microlib.errors import MicrolibError
from microlib.train.data import TrainingSet
from microlib.validate import finest_chord

#: ``auto`` downscales by 2 when the finest phase's mean chord exceeds this share of the
#: training crop
AUTO_CHORD_FRACTION = 1.0
#: the downscaled image must still hold this many training crops per side
MIN_CROPS_PER_SIDE = 2


def auto_scale(labels: np.ndarray, n_phases: int, crop: int) -> int:
    """Training scale ``auto`` picks for one 2D n-phase image and crop edge ``crop``: 2 when
    the finest phase's mean chord exceeds ``AUTO_CHORD_FRACTION x crop`` and the halved
    image still holds ``MIN_CROPS_PER_SIDE`` crops per side, else 1."""
    if min(labels.shape[:2]) // 2 < MIN_CROPS_PER_SIDE * crop:
        return 1
    return 2 if finest_chord(labels, n_phases) > AUTO_CHORD_FRACTION * crop else 1


def resolve_scale(
    setting: int | str,
    sources: list[np.ndarray],
    image_type: str,
    n_phases: int,
    crop: int,
    is_volume: bool,
    entry: str | None = None,
) -> int:
    """The training scale for a preset's ``train_scale`` and the training data.

    ``auto`` applies :func:`auto_scale` to one isotropic 2D n-phase image and keeps every
    other input (grey, colour, three images, a volume) at full resolution; an explicit
    factor is refused for a volume and for images it would shrink below the crop.
    """
    if setting == "auto":
        if image_type != "nphase" or is_volume or len(sources) != 1:
            return 1
        return auto_scale(sources[0], n_phases, crop)
    if isinstance(setting, bool) or not isinstance(setting, int | np.integer) or setting < 1:
        raise MicrolibError(f"train_scale must be 'auto' or a positive integer, not {setting!r}")
    f = int(setting)
    if f > 1 and is_volume:
        raise MicrolibError(
            "a 3D training volume is not downscaled: give train_scale 1", entry=entry
        )
    for a in sources:
        if f > 1 and min(a.shape[:2]) // f < crop:
            raise MicrolibError(
                f"downscaled by {f}, the {a.shape[0]}x{a.shape[1]} px image is smaller than "
                f"the {crop} px training crop",
                entry=entry,
            )
    return f


def downscale(a: np.ndarray, factor: int, n_phases: int | None = None) -> np.ndarray:
    """Downscale a 2D image by an integer factor (sides trimmed to multiples of it).

    Parameters
    ----------
    a : ndarray of uint8
        Labels ``(H, W)`` (with ``n_phases``), grey ``(H, W)`` or RGB ``(H, W, 3)``.
    factor : int
    n_phases : int, optional
        Labels: each block takes its most frequent label, a tie going to the block's
        top-left pixel (a fixed tie-break towards one label would shift the fractions).
        Otherwise each block takes its mean value, rounded.

    Returns
    -------
    ndarray of uint8
        ``(H // factor, W // factor[, 3])``.
    """
    f = int(factor)
    if f < 1:
        raise MicrolibError(f"scale must be a positive integer, not {factor!r}")
    if f == 1:
        return a
    h, w = (a.shape[0] // f) * f, (a.shape[1] // f) * f
    blocks = a[:h, :w].reshape(h // f, f, w // f, f, *a.shape[2:])
    if n_phases is None:
        return np.round(blocks.astype(np.float64).mean(axis=(1, 3))).astype(np.uint8)
    counts = np.stack([(blocks == k).sum(axis=(1, 3)) for k in range(n_phases)], -1)
    counts = counts.astype(np.float64)
    first = blocks[:, 0, :, 0]
    np.put_along_axis(
        counts,
        first[..., None].astype(np.intp),
        np.take_along_axis(counts, first[..., None], -1) + 0.5,
        -1,
    )
    return counts.argmax(-1).astype(np.uint8)


def scaled_training_set(
    tset: TrainingSet, setting: int | str, crop: int, entry: str | None = None
) -> tuple[TrainingSet, int]:
    """``tset`` at the scale :func:`resolve_scale` picks for ``setting``, and that scale
    (the same set when it is 1)."""
    f = resolve_scale(setting, tset.sources, tset.image_type, tset.nc, crop, tset.is_volume, entry)
    if f == 1:
        return tset, 1
    levels = tset.nc if tset.image_type == "nphase" else None
    return dataclasses.replace(tset, sources=[downscale(a, f, levels) for a in tset.sources]), f


__all__ = [
    "AUTO_CHORD_FRACTION",
    "auto_scale",
    "downscale",
    "resolve_scale",
    "scaled_training_set",
]
