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

Hidden stages: ``transpose`` (SliceGAN's transposed convolutions) or ``blur``, where each
hidden transposed convolution is padded one less and followed by a ``[1, 2, 1]`` blur
along each axis, valid, so its listed ``(k, s, p)`` still gives its output size. A stride-2
transposed convolution applies different taps to odd and even voxels and can paint a
fixed pattern on them; after the later layers' x2 upsampling, the second-to-last layer's
pattern has a period of 4 output voxels and the one before it 8: the lattice that
:mod:`microlib.validate.lattice` measures. The blur's response at the Nyquist frequency is
zero, so no layer can pass on such a pattern. A grey slice shows a lattice at once; an
n-phase one mostly hides it under the argmax, and there the per-parity taps are also what
paints features of 1-3 pixels, which a blurred generator (measured with and without output
noise) did not reproduce: the ``demo`` preset blurs grey and colour generators only
(:attr:`microlib.slicegan.presets.Preset.grey`).

Output noise: blurred hidden layers and a smooth upsampling leave little detail at the
output resolution, which a structure with 1-3 pixel features needs. With
``output_noise``, one standard normal field per volume on the resize stage's upsampled
grid is added to every channel, with a learned weight each, before its convolution.
Generation cuts the field from one global, block-seeded grid
(:func:`microlib.slicegan.plan.noise_field`), so tiles and periodic volumes stay exact.

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
HIDDEN_STAGES = ("transpose", "blur")
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


def check_hidden_stage(
    stage: str,
    gk: Sequence[int],
    gs: Sequence[int],
    gp: Sequence[int],
    entry: str | None = None,
) -> None:
    """Check a hidden-layer stage name against the hidden ``(k, s, p)`` entries.

    Raises
    ------
    MicrolibError
        For an unknown stage, or a ``blur`` layer whose padding cannot hold the blur:
        its transposed convolution pads ``p - 1`` and the blur trims one voxel per side,
        which is a transposed convolution of kernel ``k + 2`` padded ``p + 1``, exact in
        tiles only when ``p >= k - s + 1``.
    """
    if stage not in HIDDEN_STAGES:
        raise MicrolibError(
            f"unknown generator hidden stage {stage!r} (use {' or '.join(HIDDEN_STAGES)})",
            entry=entry,
        )
    if stage == "transpose":
        return
    for i, (k, s, p) in enumerate(zip(gk[:-1], gs[:-1], gp[:-1], strict=True)):
        if p < k - s + 1:
            raise MicrolibError(
                f"generator layer {i}: a blurred hidden layer needs p >= k - s + 1 "
                f"(k={k}, s={s}, p={p}); e.g. (k=4, s=2, p=3)",
                entry=entry,
            )


def check_output_noise(output_noise: bool, output_stage: str, entry: str | None = None) -> None:
    """Refuse output noise without a resize output stage (it is added on its upsampled grid)."""
    if output_noise and not is_resize_stage(output_stage):
        raise MicrolibError(
            f"output noise needs a resize output stage, not {output_stage!r}", entry=entry
        )


def hidden_padding(p: int, blurred: bool) -> int:
    """Padding of a hidden transposed convolution whose layer entry pads ``p``: one less
    when blurred, the blur then trimming that voxel per side (same output size)."""
    return p - 1 if blurred else p


def blur_valid(x: torch.Tensor) -> torch.Tensor:
    """Separable ``[1, 2, 1] / 4`` blur along the three spatial axes, valid: ``n -> n - 2``.

    The binomial kernel's response at the Nyquist frequency is zero: a pattern that
    alternates voxel by voxel, the parity pattern a stride-2 transposed convolution can
    paint, is removed exactly, at any channel count.
    Its weights sum to one, so it commutes with a per-channel affine map (BatchNorm folds
    through it).
    """
    for d in (2, 3, 4):
        n = x.shape[d] - 2
        # slices and in-place sums keep the memory layout (channels-last stays so) and
        # beat a depthwise convolution or two average pools on a CPU
        x = (x.narrow(d, 0, n) + x.narrow(d, 2, n)).add_(x.narrow(d, 1, n), alpha=2).mul_(0.25)
    return x


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


def resize_forward(
    x: torch.Tensor,
    conv: nn.Conv3d,
    mode: str = "trilinear",
    noise_weight: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """Upsample x2 (``mode``), convolve (valid), crop one voxel per side: ``n -> 2 n - 4``.

    With ``noise_weight`` (one weight per input channel), one field of standard normal noise
    per volume, on the upsampled grid, is added to every channel with its weight before the
    convolution: ``noise`` ``(B, 1, 2n, 2n, 2n)`` when given (generation passes the cut of
    one global field, so tiles agree), else drawn here.
    """
    if mode == "trilinear":
        x = F.interpolate(x, scale_factor=2, mode="trilinear", align_corners=False)
    else:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
    if noise_weight is not None:
        if noise is None:
            noise = torch.randn((x.shape[0], 1, *x.shape[2:]), device=x.device, dtype=x.dtype)
        elif tuple(noise.shape[2:]) != tuple(x.shape[2:]):
            raise MicrolibError(
                f"noise field {tuple(noise.shape[2:])} does not cover the upsampled grid "
                f"{tuple(x.shape[2:])}"
            )
        x = x + noise.to(x.dtype) * noise_weight.view(1, -1, 1, 1, 1).to(x.dtype)
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
