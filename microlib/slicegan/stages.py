"""Generator output stages: how the last layer turns hidden features into the output volume.

``transpose``
    SliceGAN's own last layer, a transposed convolution (k4 s2 p3 in the standard nets).
``resize``
    A resize-convolution: x2 upsampling, a k3 s1 p0 convolution without bias, and a crop
    of one voxel per side. The upsampling is trilinear (``align_corners=False``) for
    n-phase (softmax) outputs and nearest-neighbour for grey and colour (tanh) outputs.
    For ``n`` input cells it returns ``2 n - 4`` voxels, as the k4 s2 p3 transposed
    convolution it replaces, so the layer lists (and with them the output-size formula,
    the tiling geometry and the critic) keep the transposed convolution's ``(4, 2, 3)`` as
    the last entry. Every output voxel applies the same kernel to a field interpolated
    with fixed weights, whereas a stride-2 transposed convolution applies a different
    subset of its taps to each voxel parity and can learn a checkerboard that the 2D
    critic, seeing slices, does not penalise enough.
``resize_trilinear``
    The same stage with trilinear upsampling for every output type. For n-phase it is
    ``resize`` itself. For grey and colour, nearest upsampling makes the k3 convolution
    two different 2-tap kernels (taps 0+1 and 2 on even voxels, 0 and 1+2 on odd ones),
    a per-axis parity freedom that a briefly trained generator used along single axes:
    on the demo's colour entry (600 iterations, one seed, 128^3) nearest gave a streaky
    cube (grey-gradient anisotropy 1.60 against the image's 1.09, mean grey 6.4 levels
    off) and trilinear an isotropic one (1.23, 3.3 levels). Kept apart from ``resize``
    because a generator trained with one upsampling is wrong with the other: the stage
    name in ``_params.json`` says which.

Tiling stays exact with both resize stages: the voxels that depend on the clamped border
of the upsampling (one per side) are exactly the ones the convolution's valid window and
the crop remove, and output voxel ``j`` reads input cells ``floor(j / 2)`` to
``floor(j / 2) + 2``, all inside the ``n`` cells a tile hands the stage. Hence a latent slab
still yields exactly the untiled output over the same global voxels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from microlib.errors import MicrolibError

OUTPUT_STAGES = ("transpose", "resize", "resize_trilinear")
RESIZE_STAGES = ("resize", "resize_trilinear")
RESIZE_KERNEL = 3
# the transposed convolution whose output size the resize stage reproduces: 2 n - 4
RESIZE_EQUIVALENT = (4, 2, 3)


def check_output_stage(stage: str, k: int, s: int, p: int, entry: str | None = None) -> None:
    """Check an output stage name against the last ``(k, s, p)`` entry of the layer lists.

    Raises
    ------
    MicrolibError
        For an unknown stage, or a resize stage whose last entry is not the ``2 n - 4``
        transposed convolution it stands in for.
    """
    if stage not in OUTPUT_STAGES:
        raise MicrolibError(
            f"unknown generator output stage {stage!r} (use {' or '.join(OUTPUT_STAGES)})",
            entry=entry,
        )
    if stage in RESIZE_STAGES and (s != 2 or k - 2 * p != -2):
        raise MicrolibError(
            "the resize output stage makes 2n-4 voxels from n cells; the last generator "
            f"layer entry must have stride 2 and k - 2p = -2, e.g. (k=4, s=2, p=3), "
            f"not (k={k}, s={s}, p={p})",
            entry=entry,
        )


def resize_conv(gf_in: int, nc: int) -> nn.Conv3d:
    """The resize stage's convolution (its weight is ``(nc, gf_in, 3, 3, 3)``)."""
    return nn.Conv3d(gf_in, nc, RESIZE_KERNEL, 1, 0, bias=False)


def is_resize_stage(stage: str) -> bool:
    """Whether an output stage is a resize-convolution (``resize``, ``resize_trilinear``)."""
    return stage in RESIZE_STAGES


def upsample_mode(final: str, stage: str = "resize") -> str:
    """The resize stage's upsampling for an output activation: trilinear for ``softmax``
    (phase probabilities) and for every output of ``resize_trilinear``; nearest for
    ``tanh`` (grey levels, colour) in the ``resize`` stage."""
    return "trilinear" if final == "softmax" or stage == "resize_trilinear" else "nearest"


def resize_forward(x: torch.Tensor, conv: nn.Conv3d, mode: str = "trilinear") -> torch.Tensor:
    """Upsample x2 (``mode``), convolve (valid), crop one voxel per side: ``n -> 2 n - 4``."""
    if mode == "trilinear":
        x = F.interpolate(x, scale_factor=2, mode="trilinear", align_corners=False)
    else:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
    return conv(x)[:, :, 1:-1, 1:-1, 1:-1]


def resize_sizes(n: Sequence[int]) -> tuple[list[int], list[int]]:
    """Sizes inside the resize stage for input sizes ``n``: (upsampled, convolved)."""
    up = [2 * int(v) for v in n]
    return up, [v - RESIZE_KERNEL + 1 for v in up]


def holds_resize_stage(sd: Mapping[str, torch.Tensor], last: int, gf: Sequence[int]) -> bool:
    """Whether a generator state dict's last weight is a resize stage's
    ``(nc, gf[-2], 3, 3, 3)`` (a transposed convolution's is ``(gf[-2], nc, k, k, k)``)."""
    w = sd.get(f"convs.{last}.weight")
    shape = (int(gf[-1]), int(gf[-2])) + (RESIZE_KERNEL,) * 3
    return w is not None and tuple(w.shape) == shape
