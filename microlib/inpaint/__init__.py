"""Scale-bar in-painting: fill the masked pixels of a segmented image.

- :mod:`microlib.inpaint.encoding`: input checks, image <-> network channels.
- :mod:`microlib.inpaint.masks`: mask-free training patches, regions to fill.
- :mod:`microlib.inpaint.patchgan`: the per-image WGAN-GP patch GAN + latent optimisation.
- :mod:`microlib.inpaint.classical`: OpenCV Telea, the baseline and fallback.
- :mod:`microlib.inpaint.quality`: statistics that judge a fill against the truth.

:func:`inpaint` is the one entry point the command uses. Everything here is pure:
arrays in, arrays and dicts out; file I/O lives in :mod:`microlib.commands.inpaint`.
Devices are chosen by :func:`microlib.device.resolve_device`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from microlib.datatypes import DATA_TYPES, NPHASE_TYPES
from microlib.errors import MicrolibError
from microlib.inpaint.classical import inpaint_telea
from microlib.inpaint.encoding import (
    check_inputs,
    composite,
    decode,
    encode,
    infer_data_type,
    n_channels,
)
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
    "DATA_TYPES",
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
    "inpaint_gan",
    "inpaint_telea",
    "mask_regions",
    "n_channels",
    "optimise_latent",
    "region_statistics",
    "region_window",
    "statistics_error",
    "train_patch_gan",
]


def inpaint(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    data_type: str,
    n_phases: int,
    method: str = "gan",
    seed: int = 0,
    device: str = "cpu",
    progress: Callable[[int], None] | None = None,
    telea_radius: float = 5.0,
    **params: Any,
) -> tuple[np.ndarray, dict]:
    """In-paint ``mask`` in ``image`` with ``method`` (``gan`` or ``telea``).

    The one entry point the command uses; see :func:`inpaint_gan` and
    :func:`inpaint_telea`. An empty mask returns an unchanged copy with
    ``info["method"] == "none"``.
    """
    m = check_inputs(image, mask, data_type, n_phases)
    if not m.any():
        return np.array(image, copy=True), {"method": "none", "masked_pixels": 0}
    if method == "gan":
        return inpaint_gan(
            image,
            m,
            data_type=data_type,
            n_phases=n_phases,
            seed=seed,
            device=device,
            progress=progress,
            **params,
        )
    if method == "telea":
        return inpaint_telea(image, m, data_type=data_type, n_phases=n_phases, radius=telea_radius)
    raise MicrolibError(f"unknown in-painting method {method!r} (expected gan or telea)")
