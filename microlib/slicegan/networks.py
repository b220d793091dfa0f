"""SliceGAN networks: the 3D transposed-convolution generator and the 2D critic.

The generator's last layer is a transposed convolution (SliceGAN) or a resize-convolution
(:mod:`microlib.slicegan.stages`), chosen by ``output_stage``; the layer lists and hence
every size and tiling rule are the same for both.

Module names follow the original SliceGAN code (``convs.{i}``, ``bns.{i}``) so state dicts
move between this package and the original scripts; see :func:`generator_state_for_original`
and :func:`load_generator_state` for the one difference (the unused last BatchNorm).

Geometry helpers (:func:`generator_output_size`, :func:`generator_geometry`, ...) are pure
integer arithmetic: the generation stage uses them to pick latent sizes and tiles.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from microlib.errors import MicrolibError
from microlib.slicegan.stages import (
    blur_valid,
    check_hidden_stage,
    check_output_noise,
    check_output_stage,
    hidden_padding,
    holds_resize_stage,
    is_resize_stage,
    resize_conv,
    resize_forward,
    upsample_mode,
)

FINAL_ACTIVATIONS = ("softmax", "tanh")


# --------------------------------------------------------------------------- rules


def check_transpose_conv_rules(k: int, s: int, p: int, layer: int | None = None) -> None:
    """Check one transposed convolution against the SliceGAN paper's three rules.

    The rules (Kench & Cooper 2021, section 4) guarantee a uniform information density:
    ``s < k`` (kernels overlap), ``k mod s == 0`` (no checkerboard) and ``p >= k - s``
    (the under-covered border of width ``k - s`` is cropped away).

    Parameters
    ----------
    k, s, p : int
        Kernel size, stride and padding.
    layer : int, optional
        Layer index, used in the error message.

    Raises
    ------
    MicrolibError
        Naming the first violated rule and the offending values.
    """
    where = f"generator layer {layer}" if layer is not None else "transposed convolution"
    vals = f"(k={k}, s={s}, p={p})"
    if min(k, s) < 1 or p < 0:
        raise MicrolibError(f"{where}: kernel and stride must be >= 1 and padding >= 0 {vals}")
    if not s < k:
        raise MicrolibError(f"{where} violates rule 's < k' (kernels must overlap) {vals}")
    if k % s != 0:
        raise MicrolibError(f"{where} violates rule 'k mod s = 0' (checkerboard density) {vals}")
    if not p >= k - s:
        raise MicrolibError(
            f"{where} violates rule 'p >= k - s' (border of width k-s={k - s} left uncropped) {vals}"
        )


# --------------------------------------------------------------------------- geometry


def conv_transpose_size(n: int, k: int, s: int, p: int) -> int:
    """Output length of a transposed convolution: ``(n - 1) s - 2 p + k``."""
    return (n - 1) * s - 2 * p + k


def conv_size(n: int, k: int, s: int, p: int) -> int:
    """Output length of a convolution: ``floor((n + 2 p - k) / s) + 1``."""
    return (n + 2 * p - k) // s + 1


def generator_output_size(lz: int, gk: Sequence[int], gs: Sequence[int], gp: Sequence[int]) -> int:
    """Edge length of the generator output for a latent of edge ``lz`` (0 if it collapses)."""
    n = int(lz)
    for k, s, p in zip(gk, gs, gp, strict=False):
        n = conv_transpose_size(n, k, s, p)
        if n < 1:
            return 0
    return n


def critic_output_size(l: int, dk: Sequence[int], ds: Sequence[int], dp: Sequence[int]) -> int:  # noqa: E741
    """Edge length of the critic output map for an ``l x l`` input (0 if it collapses)."""
    n = int(l)
    for k, s, p in zip(dk, ds, dp, strict=False):
        n = conv_size(n, k, s, p)
        if n < 1:
            return 0
    return n


@dataclass(frozen=True)
class GeneratorGeometry:
    """How latent cells map to output voxels along one axis.

    For a stack of transposed convolutions the output length is linear in the latent
    length for large enough latents: ``size(m) = stride * m - trim``. A latent slab
    ``[a, a + m)`` produces exactly the global output ``[stride * a, stride * a + size(m))``
    when every layer satisfies ``p >= k - s`` (every output of the slab is then covered by
    the full kernel footprint, so no border voxel depends on latent cells outside it).

    Attributes
    ----------
    stride : int
        Product of the layer strides (32 for the five-layer SliceGAN nets).
    trim : int
        Output voxels lost at the borders, ``stride * m - size(m)`` (64 for them).
    halo : int
        ``ceil(trim / stride)``: extra latent cells a slab needs beyond the cells whose
        ``stride`` output voxels it delivers (2 for the standard nets).
    min_latent : int
        Smallest latent length with a non-empty output.
    exact_tiles : bool
        Whether every layer satisfies ``p >= k - s`` (slab outputs equal the global one).
    """

    stride: int
    trim: int
    halo: int
    min_latent: int
    exact_tiles: bool

    def size(self, m: int) -> int:
        """Output length for ``m`` latent cells (``m >= min_latent``)."""
        return self.stride * m - self.trim

    def latent_for(self, n: int) -> int:
        """Latent length used to deliver at least ``n`` voxels: ``ceil(n / stride) + halo``."""
        return max(self.min_latent, -(-int(n) // self.stride) + self.halo)


def generator_geometry(
    gk: Sequence[int], gs: Sequence[int], gp: Sequence[int]
) -> GeneratorGeometry:
    """Compute the :class:`GeneratorGeometry` of a layer stack."""
    stride = math.prod(int(s) for s in gs)
    m0 = 1
    while generator_output_size(m0, gk, gs, gp) < 1:
        m0 += 1
        if m0 > 10_000:
            raise MicrolibError("generator output collapses for every latent size")
    # the size is affine in m once no layer output is clamped; check it on a few sizes
    big = m0 + 16
    trim = stride * big - generator_output_size(big, gk, gs, gp)
    for m in range(big, big + 4):
        if stride * m - generator_output_size(m, gk, gs, gp) != trim:
            raise MicrolibError("generator output size is not affine in the latent size")
    exact = all(p >= k - s for k, s, p in zip(gk, gs, gp, strict=False))
    return GeneratorGeometry(
        stride=stride, trim=trim, halo=max(0, -(-trim // stride)), min_latent=m0, exact_tiles=exact
    )


# --------------------------------------------------------------------------- networks


def _layer_lists(
    kind: str, k: Sequence[int], s: Sequence[int], p: Sequence[int], f: Sequence[int]
) -> tuple[list[int], list[int], list[int], list[int]]:
    """Kernel, stride, padding and channel lists as ints, checked for n, n, n, n+1 entries."""
    k, s, p, f = (list(map(int, v)) for v in (k, s, p, f))
    n = len(k)
    if n < 1 or len(s) != n or len(p) != n or len(f) != n + 1:
        raise MicrolibError(
            f"{kind} layer lists disagree: {len(k)} kernels, {len(s)} strides, "
            f"{len(p)} paddings, {len(f)} channel entries (need n, n, n, n+1)"
        )
    return k, s, p, f


class Generator(nn.Module):
    """SliceGAN 3D generator: transposed convolutions, BatchNorm + ReLU between them.

    Parameters
    ----------
    gk, gs, gp : sequence of int
        Kernel size, stride and padding of each transposed convolution (one per layer).
    gf : sequence of int
        Channels: ``gf[0]`` = latent channels ``nz``, ``gf[-1]`` = output channels ``nc``;
        ``len(gf) == len(gk) + 1``.
    final : {'softmax', 'tanh'}
        Output activation: ``softmax`` over channels (n-phase, one channel per phase) or
        ``0.5 (tanh + 1)`` in (0, 1) (grayscale, colour).
    check_rules : bool
        Enforce the paper's transposed-convolution rules (default). Only turn this off to
        load a historical generator that breaks them.
    output_stage : {'transpose', 'resize', 'resize_trilinear'}
        Last layer: a transposed convolution (SliceGAN), or a resize-convolution that
        makes the same ``2 n - 4`` voxels (:mod:`microlib.slicegan.stages`; the last
        ``gk/gs/gp`` entry must then be such a k4 s2 p3 equivalent).
    hidden_stage : {'transpose', 'blur'}
        Every layer but the last: a transposed convolution (SliceGAN), or one padded
        ``p - 1`` followed by a ``[1, 2, 1]`` blur that trims the extra voxel per side,
        so the layer entry ``(k, s, p)`` keeps its output size. The blur removes the
        voxel-parity pattern a stride-2 transposed convolution can learn, which after the
        later layers' upsampling shows as a lattice of period 4 and 8 voxels in 3D.
    output_noise : bool
        Add per-voxel noise, with a learned weight per channel, to the upsampled features
        of a resize output stage: a source of fine stochastic detail at the output
        resolution, which the smooth upsampling (and blurred hidden layers) cannot paint
        from the coarse latent alone. The weights start at zero.

    Notes
    -----
    The original network also builds a BatchNorm after the last convolution that its
    forward pass never uses; this one does not carry it (it is added back, as identity
    values, when writing an original-format state dict).
    """

    def __init__(
        self,
        gk: Sequence[int],
        gs: Sequence[int],
        gp: Sequence[int],
        gf: Sequence[int],
        final: str = "softmax",
        check_rules: bool = True,
        output_stage: str = "transpose",
        hidden_stage: str = "transpose",
        output_noise: bool = False,
    ):
        super().__init__()
        gk, gs, gp, gf = _layer_lists("generator", gk, gs, gp, gf)
        check_output_stage(output_stage, gk[-1], gs[-1], gp[-1])
        check_hidden_stage(hidden_stage, gk, gs, gp)
        check_output_noise(output_noise, output_stage)
        n = len(gk)
        if final not in FINAL_ACTIVATIONS:
            raise MicrolibError(f"unknown output activation {final!r} (use softmax or tanh)")
        if check_rules:
            for i, (k, s, p) in enumerate(zip(gk, gs, gp, strict=True)):
                check_transpose_conv_rules(k, s, p, layer=i)
        self.gk, self.gs, self.gp, self.gf, self.final = gk, gs, gp, gf, final
        self.output_stage = output_stage
        self.hidden_stage = hidden_stage
        self.hidden_blur = hidden_stage == "blur"
        pads = [hidden_padding(p, self.hidden_blur) for p in gp[:-1]] + [gp[-1]]
        self.convs = nn.ModuleList(
            nn.ConvTranspose3d(gf[i], gf[i + 1], gk[i], gs[i], pads[i], bias=False)
            for i in range(n)
        )
        if is_resize_stage(output_stage):
            # same module index, so state-dict keys stay convs.{i} / bns.{i}
            self.convs[-1] = resize_conv(gf[-2], gf[-1])
        self.bns = nn.ModuleList(nn.BatchNorm3d(gf[i + 1]) for i in range(n - 1))
        self.noise_weight = nn.Parameter(torch.zeros(gf[-2])) if output_noise else None

    @property
    def nz(self) -> int:
        return self.gf[0]

    @property
    def nc(self) -> int:
        return self.gf[-1]

    def output_size(self, lz: int) -> int:
        """Output edge length for a latent of edge ``lz``."""
        return generator_output_size(lz, self.gk, self.gs, self.gp)

    def forward(
        self, z: torch.Tensor, activate: bool = True, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Volumes from latents ``z``; ``noise`` is the output-noise field (drawn if None)."""
        x = z
        blur = self.hidden_blur
        for conv, bn in zip(self.convs[:-1], self.bns, strict=True):
            x = conv(x)
            if blur:
                x = blur_valid(x)
            # in place, as the original: BatchNorm's backward does not need its output
            x = F.relu_(bn(x))
        x = last_stage(x, self.convs[-1], self.output_stage, self.final, self.noise_weight, noise)
        if not activate:
            return x
        return activate_output(x, self.final)


def last_stage(
    x: torch.Tensor,
    conv: nn.Module,
    output_stage: str,
    final: str = "softmax",
    noise_weight: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """Apply the generator's last layer ``conv`` as a transposed or resize stage (whose
    upsampling follows the output activation ``final``), with output noise when
    ``noise_weight`` is given."""
    if is_resize_stage(output_stage):
        mode = upsample_mode(final, output_stage)
        return resize_forward(x, conv, mode, noise_weight, noise)
    return conv(x)


def activate_output(x: torch.Tensor, final: str) -> torch.Tensor:
    """Apply the generator's output activation to raw logits ``x`` (channels on dim 1)."""
    if final == "softmax":
        return torch.softmax(x, dim=1)
    return 0.5 * (torch.tanh(x) + 1.0)


class Critic(nn.Module):
    """SliceGAN 2D critic (WGAN discriminator): strided convolutions with ReLU, raw output.

    Parameters
    ----------
    dk, ds, dp : sequence of int
        Kernel size, stride and padding of each convolution.
    df : sequence of int
        Channels, ``df[0]`` = image channels, ``df[-1]`` = 1.
    """

    def __init__(self, dk: Sequence[int], ds: Sequence[int], dp: Sequence[int], df: Sequence[int]):
        super().__init__()
        dk, ds, dp, df = _layer_lists("critic", dk, ds, dp, df)
        n = len(dk)
        self.dk, self.ds, self.dp, self.df = dk, ds, dp, df
        self.convs = nn.ModuleList(
            nn.Conv2d(df[i], df[i + 1], dk[i], ds[i], dp[i], bias=False) for i in range(n)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs[:-1]:
            x = F.relu_(conv(x))
        return self.convs[-1](x)


class FusedGenerator(nn.Module):
    """Inference copy of a :class:`Generator` with each eval-mode BatchNorm folded into
    the preceding convolution's weights and bias.

    Eval-mode BatchNorm is an affine map per channel, so folding it is exact up to float
    rounding; it saves one full-size activation per layer (memory) and one pass over it
    (time) when generating large volumes. Returns raw logits (no output activation). A
    resize output stage has no BatchNorm after it: its convolution is copied as it is.
    A hidden blur's weights sum to one, so the folded BatchNorm moves through it unchanged.
    """

    def __init__(self, gen: Generator):
        super().__init__()
        self.final = gen.final
        self.output_stage = gen.output_stage
        self.hidden_stage = getattr(gen, "hidden_stage", "transpose")
        self.hidden_blur = bool(getattr(gen, "hidden_blur", False))
        w = getattr(gen, "noise_weight", None)
        self.noise_weight = (
            nn.Parameter(w.detach().clone(), requires_grad=False) if w is not None else None
        )
        self.convs = nn.ModuleList()
        with torch.no_grad():
            for i, conv in enumerate(gen.convs):
                # built on the meta device and given the folded tensors directly: no random
                # initialisation, no extra copy of weights that are replaced at once
                with torch.device("meta"):
                    new = type(conv)(
                        conv.in_channels,
                        conv.out_channels,
                        conv.kernel_size,
                        conv.stride,
                        conv.padding,
                        bias=True,
                        dtype=conv.weight.dtype,
                    )
                w = conv.weight.detach()
                if i < len(gen.bns):
                    bn = gen.bns[i]
                    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                    w = w * scale.view(1, -1, 1, 1, 1)  # a new tensor
                    b = bn.bias - bn.running_mean * scale
                else:
                    w = w.clone()  # never alias the source generator's weights
                    b = torch.zeros(conv.out_channels, device=w.device, dtype=w.dtype)
                new.weight = nn.Parameter(w.contiguous(), requires_grad=False)
                new.bias = nn.Parameter(b.detach().contiguous(), requires_grad=False)
                self.convs.append(new)
        self.eval()

    def forward(self, z: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        x = z
        blur = self.hidden_blur
        for conv in self.convs[:-1]:
            x = conv(x)
            x = F.relu_(blur_valid(x) if blur else x)
        return last_stage(
            x, self.convs[-1], self.output_stage, self.final, self.noise_weight, noise
        )


# --------------------------------------------------------------------------- CUDA flags


@contextlib.contextmanager
def cuda_backend_flags(tf32: bool, benchmark: bool):
    """Set TF32 / cuDNN benchmark for a block and restore the previous values."""
    old = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cudnn.benchmark,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cudnn.benchmark = benchmark
    try:
        yield
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            (
                torch.backends.cuda.matmul.allow_tf32,
                torch.backends.cudnn.allow_tf32,
                torch.backends.cudnn.benchmark,
            ) = old


# --------------------------------------------------------------------------- state dicts


def generator_state_for_original(gen: Generator) -> dict[str, torch.Tensor]:
    """State dict in the original SliceGAN layout, ready for ``torch.save``.

    Adds ``bns.{last}.*`` with identity values (weight 1, bias 0, mean 0, var 1) because
    the original network builds that unused module and loads with ``strict=True``.
    """
    sd = {k: v.detach().cpu().contiguous().clone() for k, v in gen.state_dict().items()}
    last = len(gen.convs) - 1
    nc = gen.nc
    sd[f"bns.{last}.weight"] = torch.ones(nc)
    sd[f"bns.{last}.bias"] = torch.zeros(nc)
    sd[f"bns.{last}.running_mean"] = torch.zeros(nc)
    sd[f"bns.{last}.running_var"] = torch.ones(nc)
    sd[f"bns.{last}.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    return sd


def _strip_prefix(
    sd: Mapping[str, torch.Tensor], prefixes: Sequence[str]
) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in sd.items():
        for pre in prefixes:
            if k.startswith(pre):
                k = k[len(pre) :]
                break
        out[k] = v
    return out


def load_generator_state(
    gen: Generator, sd: Mapping[str, torch.Tensor], entry: str | None = None
) -> None:
    """Load an original-format (or our) generator state dict into ``gen``, strictly.

    Accepts and drops the unused ``bns.{last}.*`` entries and a ``module.`` /
    ``_orig_mod.`` prefix (DataParallel / torch.compile); any other missing or unexpected
    key, or a shape mismatch, raises :class:`MicrolibError`.
    """
    sd = _strip_prefix(sd, ("module.", "_orig_mod."))
    last = len(gen.convs) - 1
    if gen.output_stage == "transpose" and holds_resize_stage(sd, last, gen.gf):
        raise MicrolibError(
            "the weights end in a resize-convolution stage, which the original "
            "_params.data cannot describe; load the model with its _params.json",
            entry=entry,
        )
    sd = {k: v for k, v in sd.items() if not k.startswith(f"bns.{last}.")}
    _load_strict(gen, sd, "generator", entry)


def load_critic_state(
    critic: Critic, sd: Mapping[str, torch.Tensor], entry: str | None = None
) -> None:
    """Load a critic state dict, accepting the ``module.`` prefix of the original's DataParallel."""
    _load_strict(critic, _strip_prefix(sd, ("module.", "_orig_mod.")), "critic", entry)


def _load_strict(
    net: nn.Module, sd: Mapping[str, torch.Tensor], what: str, entry: str | None
) -> None:
    own = net.state_dict()
    missing = sorted(set(own) - set(sd))
    extra = sorted(set(sd) - set(own))
    if missing or extra:
        raise MicrolibError(
            f"{what} weights do not match the architecture in the params file: "
            f"missing {missing[:4]}{'...' if len(missing) > 4 else ''}, "
            f"unexpected {extra[:4]}{'...' if len(extra) > 4 else ''}",
            entry=entry,
        )
    for k, v in own.items():
        if tuple(sd[k].shape) != tuple(v.shape):
            raise MicrolibError(
                f"{what} weight {k} has shape {tuple(sd[k].shape)}, the params file implies "
                f"{tuple(v.shape)}",
                entry=entry,
            )
    net.load_state_dict(dict(sd), strict=True)
