"""Scale-bar in-painting: fill the masked pixels of a segmented image.

- :mod:`microlib.inpaint.encoding`: input checks, image <-> network channels.
- :mod:`microlib.inpaint.masks`: mask-free training patches, regions to fill.
- :mod:`microlib.inpaint.patchgan`: the per-image WGAN-GP patch GAN + latent optimisation.
- :mod:`microlib.inpaint.classical`: diffusion fills: OpenCV Telea (the fallback),
  OpenCV Navier-Stokes, scikit-image biharmonic.
- :mod:`microlib.inpaint.exemplar`: copy the best-matching mask-free window of the image.
- :mod:`microlib.inpaint.quality`: statistics that judge a fill against the truth.

Method per data type (``method='auto'``, the default)
-------------------------------------------------------
``auto`` fills every data type with ``exemplar`` (:data:`AUTO_METHOD`). The rule rests on
``microlib bench inpaint``: real MicroLib micrographs with synthetic scale-bar masks
(bar + label strokes, ~1 % of the image), fills compared with the hidden true pixels,
winner = lowest mean of (error / best method's error) over the type's texture measures
(two-phase: interface density and volume fraction; grayscale: neighbour-difference
RMS and autocovariance, because a per-pixel error rewards blur). Mean errors, one thread:

=================  ===========  ==========  =========  ===========  ============
two-phase (46)      interface    vol. frac.  score      CPU s/img    with GAN (10)
=================  ===========  ==========  =========  ===========  ============
exemplar           0.027        0.046       **1.25**   0.2          1.47 (0.021, 0.042)
biharmonic         0.048        0.030       1.39       0.06         1.43
Navier-Stokes      0.042        0.044       1.52       0.02         1.41
Telea              0.052        0.050       1.79       0.02         1.73
GAN, demo budget   --           --          --         19.5         1.78 (0.020, 0.057)
=================  ===========  ==========  =========  ===========  ============

=================  ===========  ==========  =========  ===========  ============
grayscale (5)       gradient     autocov.    score      CPU s/img    with GAN (4)
=================  ===========  ==========  =========  ===========  ============
exemplar           2.2          0.081       **1.29**   0.07         **1.50**
Navier-Stokes      13.2         0.051       3.51       0.01         4.88
biharmonic         12.7         0.075       3.62       0.03         4.71
Telea              13.9         0.060       3.75       0.01         5.22
GAN, demo budget   --           --          --         20.0         2.15
=================  ===========  ==========  =========  ===========  ============

The diffusion fills win on per-pixel grey error (20.5 vs the copy's 30.0 grey levels)
only because they predict the local mean: their neighbour-difference error is six
times the copy's, i.e. the fill is a blur. On the 10-image two-phase subset run with the GAN, Navier-Stokes edged ahead
(1.41 vs 1.47) and the GAN had the best interface density but the worst volume
fraction; over all 46 images the copy is ahead on both measures of Navier-Stokes and
Telea. Colour has no reference images; it follows grayscale (the same copy, per
channel). ``gan`` remains available (``--method gan``), at ~90 CPU-s per image at the
real run's budget.

:func:`inpaint` is the one entry point the command uses. Everything here is pure:
arrays in, arrays and dicts out; file I/O lives in :mod:`microlib.commands.inpaint`.
Devices are chosen by :func:`microlib.device.resolve_device`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from microlib.datatypes import DATA_TYPES, NPHASE_TYPES, infer_data_type
from microlib.errors import MicrolibError
from microlib.inpaint.classical import inpaint_biharmonic, inpaint_ns, inpaint_telea
from microlib.inpaint.encoding import (
    check_inputs,
    composite,
    decode,
    encode,
    n_channels,
)
from microlib.inpaint.exemplar import EXEMPLAR_DEFAULTS, inpaint_exemplar, match_costs
from microlib.inpaint.masks import eligible_corners, mask_regions, region_window
from microlib.inpaint.patchgan import (
    GAN_DEFAULTS,
    N_UP,
    inpaint_gan,
    optimise_latent,
    train_patch_gan,
)
from microlib.inpaint.quality import region_statistics, statistics_error

__all__ = [
    "AUTO_METHOD",
    "DATA_TYPES",
    "EXEMPLAR_DEFAULTS",
    "GAN_DEFAULTS",
    "NPHASE_TYPES",
    "N_UP",
    "check_inputs",
    "composite",
    "decode",
    "eligible_corners",
    "encode",
    "infer_data_type",
    "inpaint",
    "inpaint_biharmonic",
    "inpaint_exemplar",
    "inpaint_gan",
    "inpaint_ns",
    "inpaint_telea",
    "mask_regions",
    "match_costs",
    "METHODS",
    "n_channels",
    "optimise_latent",
    "region_statistics",
    "region_window",
    "resolve_method",
    "statistics_error",
    "train_patch_gan",
]


#: the method ``auto`` picks per data type (the benchmark figures are in the docstring)
AUTO_METHOD: dict[str, str] = {
    "twophase": "exemplar",
    "threephase": "exemplar",
    "nphase": "exemplar",
    "grayscale": "exemplar",
    "colour": "exemplar",
}

#: every method :func:`inpaint` accepts
METHODS = ("auto", "gan", "exemplar", "telea", "ns", "biharmonic")


def resolve_method(method: str, data_type: str) -> str:
    """The concrete method for ``method`` (``auto`` -> :data:`AUTO_METHOD` of the type)."""
    if method not in METHODS:
        raise MicrolibError(
            f"unknown in-painting method {method!r} (expected one of {', '.join(METHODS)})"
        )
    if data_type not in DATA_TYPES:
        raise MicrolibError(
            f"unknown data_type {data_type!r} (expected one of {', '.join(DATA_TYPES)})"
        )
    return AUTO_METHOD[data_type] if method == "auto" else method


def inpaint(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    data_type: str,
    n_phases: int,
    method: str = "auto",
    seed: int = 0,
    device: str = "cpu",
    progress: Callable[[int], None] | None = None,
    telea_radius: float = 5.0,
    exemplar: dict | None = None,
    **params: Any,
) -> tuple[np.ndarray, dict]:
    """In-paint ``mask`` in ``image`` with ``method`` (one of :data:`METHODS`).

    The one entry point the command uses; ``auto`` resolves through
    :func:`resolve_method`. ``params`` are keys of :data:`GAN_DEFAULTS`, used by
    ``gan`` only; ``exemplar`` holds keys of :data:`EXEMPLAR_DEFAULTS`. ``info``
    always holds ``method`` (the method that ran) and ``requested``. An empty mask
    returns an unchanged copy with ``info["method"] == "none"``.
    """
    concrete = resolve_method(method, data_type)
    m = check_inputs(image, mask, data_type, n_phases)
    if not m.any():
        return np.array(image, copy=True), {
            "method": "none",
            "requested": method,
            "masked_pixels": 0,
        }
    kw = {"data_type": data_type, "n_phases": n_phases}
    if concrete == "gan":
        out, info = inpaint_gan(
            image, m, seed=seed, device=device, progress=progress, **kw, **params
        )
    elif concrete == "exemplar":
        out, info = inpaint_exemplar(image, m, **kw, **(exemplar or {}))
    elif concrete in ("telea", "ns"):
        fn = inpaint_telea if concrete == "telea" else inpaint_ns
        out, info = fn(image, m, radius=telea_radius, **kw)
    else:
        out, info = inpaint_biharmonic(image, m, **kw)
    info["requested"] = method
    return out, info
