"""Conditional SliceGAN: one generator for a family of micrographs, steered by a code.

Feature disentanglement in SliceGAN replaces the generator's BatchNorm with adaptive
instance normalisation (AdaIN) after every transposed convolution but the last. A small MLP
maps the code vector ``c = alpha * 1`` (``code_dim`` long) to a per-channel scale and shift
for each of those layers. One generator is trained on several micrographs of one material
class, each with its own ``alpha``; at inference any ``alpha`` in the trained range gives a
structure whose feature (e.g. grain size) lies between the members'.

Generation does not run AdaIN with the statistics of the requested volume: instance
statistics of a large volume depend on every voxel, which would make tiles disagree with a
single pass. :func:`generator_at_code` instead averages each layer's instance statistics
over training-size latents at the requested code and writes them, with the code's scale
and shift, into the BatchNorm slots of a plain :class:`~microlib.slicegan.networks.Generator`
in eval mode. The result is an ordinary SliceGAN generator: exact tiling, BatchNorm folding
and the original file format all apply unchanged.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from microlib.errors import MicrolibError
from microlib.slicegan.networks import (
    FINAL_ACTIVATIONS,
    Critic,
    Generator,
    _layer_lists,
    activate_output,
    check_transpose_conv_rules,
    generator_output_size,
    last_stage,
)
from microlib.slicegan.params import ModelParams, load_model_params, load_weights
from microlib.slicegan.presets import DEFAULT_CODE_DIM, DEFAULT_CODE_HIDDEN
from microlib.slicegan.stages import (
    blur_valid,
    check_hidden_stage,
    check_output_stage,
    hidden_padding,
    resize_conv,
)

CONDITIONAL_KIND = "adain"
ADAIN_EPS = 1e-5  # the eps of F.instance_norm and of BatchNorm3d, so freezing is exact
CALIBRATION_LATENTS = 16
CALIBRATION_SEED = 20220


def code_vector(alpha: torch.Tensor, code_dim: int) -> torch.Tensor:
    """The code ``c = alpha * 1``: ``(B,)`` scale parameters -> ``(B, code_dim)``."""
    a = torch.as_tensor(alpha, dtype=torch.float32).reshape(-1, 1)
    return a.expand(-1, int(code_dim))


class CodeMLP(nn.Module):
    """AdaIN code generator: ``code -> hidden -> hidden`` (ReLU), one head per AdaIN layer.

    Each head returns ``(scale, shift)`` per channel. The heads start at zero so the scale
    starts at 1 and the shift at 0, as a freshly initialised BatchNorm.
    """

    def __init__(self, code_dim: int, hidden: int, channels: Sequence[int]):
        super().__init__()
        self.code_dim = int(code_dim)
        self.body = nn.Sequential(
            nn.Linear(self.code_dim, int(hidden)),
            nn.ReLU(),
            nn.Linear(int(hidden), int(hidden)),
            nn.ReLU(),
        )
        self.heads = nn.ModuleList(nn.Linear(int(hidden), 2 * int(c)) for c in channels)
        for h in self.heads:
            nn.init.zeros_(h.weight)
            nn.init.zeros_(h.bias)

    def forward(self, alpha: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        h = self.body(code_vector(alpha, self.code_dim).to(self.body[0].weight.device))
        out = []
        for head in self.heads:
            scale, shift = head(h).chunk(2, dim=1)
            out.append((1.0 + scale, shift))
        return out


class AdaINGenerator(nn.Module):
    """SliceGAN 3D generator with AdaIN instead of BatchNorm, conditioned on ``alpha``.

    Parameters
    ----------
    gk, gs, gp, gf, final, check_rules, output_stage, hidden_stage
        As :class:`~microlib.slicegan.networks.Generator` (same ``convs.{i}`` names; the
        last layer is a transposed convolution or a resize-convolution without AdaIN).
    code_dim : int
        Length of the code vector ``c = alpha * 1`` (the paper: 128).
    code_hidden : int
        Width of the code MLP.
    """

    def __init__(
        self,
        gk: Sequence[int],
        gs: Sequence[int],
        gp: Sequence[int],
        gf: Sequence[int],
        final: str = "softmax",
        code_dim: int = DEFAULT_CODE_DIM,
        code_hidden: int = DEFAULT_CODE_HIDDEN,
        check_rules: bool = True,
        output_stage: str = "transpose",
        hidden_stage: str = "transpose",
    ):
        super().__init__()
        gk, gs, gp, gf = _layer_lists("generator", gk, gs, gp, gf)
        check_output_stage(output_stage, gk[-1], gs[-1], gp[-1])
        check_hidden_stage(hidden_stage, gk, gs, gp)
        if final not in FINAL_ACTIVATIONS:
            raise MicrolibError(f"unknown output activation {final!r} (use softmax or tanh)")
        if int(code_dim) < 1 or int(code_hidden) < 1:
            raise MicrolibError("code length and code MLP width must be >= 1")
        if check_rules:
            for i, (k, s, p) in enumerate(zip(gk, gs, gp, strict=True)):
                check_transpose_conv_rules(k, s, p, layer=i)
        self.gk, self.gs, self.gp, self.gf, self.final = gk, gs, gp, gf, final
        n = len(gk)
        self.hidden_blur = hidden_stage == "blur"
        pads = [hidden_padding(p, self.hidden_blur) for p in gp[:-1]] + [gp[-1]]
        self.convs = nn.ModuleList(
            nn.ConvTranspose3d(gf[i], gf[i + 1], gk[i], gs[i], pads[i], bias=False)
            for i in range(n)
        )
        self.hidden_stage = hidden_stage
        self.output_stage = output_stage
        if output_stage != "transpose":
            # same module index as the plain generator, so generator_at_code copies it as is
            self.convs[-1] = resize_conv(gf[-2], gf[-1])
        self.mlp = CodeMLP(code_dim, code_hidden, gf[1:-1])

    @property
    def nz(self) -> int:
        return self.gf[0]

    @property
    def nc(self) -> int:
        return self.gf[-1]

    @property
    def code_dim(self) -> int:
        return self.mlp.code_dim

    def output_size(self, lz: int) -> int:
        """Output edge length for a latent of edge ``lz``."""
        return generator_output_size(lz, self.gk, self.gs, self.gp)

    def forward(
        self,
        z: torch.Tensor,
        alpha: torch.Tensor,
        activate: bool = True,
        _stats: list | None = None,
    ) -> torch.Tensor:
        """Volumes ``(B, nc, ...)`` from latents ``(B, nz, ...)`` and codes ``alpha`` ``(B,)``.

        ``_stats``, when a list, receives each AdaIN layer's instance mean and variance
        (used by :func:`generator_at_code`).
        """
        styles = self.mlp(alpha)
        x = z
        blur = self.hidden_blur
        for conv, (scale, shift) in zip(self.convs[:-1], styles, strict=True):
            x = conv(x)
            if blur:
                x = blur_valid(x)
            if _stats is not None:
                dims = tuple(range(2, x.ndim))
                _stats.append(
                    (x.mean(dims).detach(), x.var(dims, unbiased=False).detach()),
                )
            x = F.instance_norm(x, eps=ADAIN_EPS)
            shape = (x.shape[0], x.shape[1]) + (1,) * (x.ndim - 2)
            x = F.relu_(x * scale.reshape(shape) + shift.reshape(shape))
        x = last_stage(x, self.convs[-1], self.output_stage, self.final)
        return activate_output(x, self.final) if activate else x


def conditional_critic(
    dk: Sequence[int], ds: Sequence[int], dp: Sequence[int], df: Sequence[int]
) -> Critic:
    """The engine's critic with one extra input channel holding ``alpha`` everywhere.

    One critic for the whole family (rather than one per code) sees every member, so it
    learns what is common to the class once and what differs from the code channel; it also
    costs the same per iteration as an unconditional run, and a per-code critic would have
    nothing to say about codes between the members anyway.
    """
    df = list(df)
    return Critic(dk, ds, dp, [df[0] + 1, *df[1:]])


def with_code_channel(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` slices + ``(B,)`` codes -> ``(B, C + 1, H, W)`` critic input."""
    a = alpha.to(x.dtype).reshape(-1, 1, 1, 1).expand(-1, 1, *x.shape[2:])
    return torch.cat([x, a], dim=1)


# --------------------------------------------------------------------------- codes


def code_range(params: ModelParams) -> tuple[float, float]:
    """``(low, high)`` of the trained codes of a conditional model."""
    lo, hi = params.conditional["code_range"]
    return float(lo), float(hi)


def check_code(params: ModelParams, code: float, extrapolate: bool = False) -> list[str]:
    """Refuse a code outside the trained range unless ``extrapolate``; return warnings.

    Raises
    ------
    MicrolibError
        The model is not conditional, the code is not finite, or it lies outside the
        trained range without ``extrapolate``.
    """
    if not params.conditional:
        raise MicrolibError(
            "this model was trained on one image; --code needs a family (conditional) model",
            entry=params.name,
        )
    if not math.isfinite(float(code)):
        raise MicrolibError(f"code {code} is not a finite number", entry=params.name)
    lo, hi = code_range(params)
    if lo <= float(code) <= hi:
        return []
    where = f"code {code:g} is outside the trained range [{lo:g}, {hi:g}]"
    if not extrapolate:
        raise MicrolibError(f"{where}; pass --extrapolate to generate anyway", entry=params.name)
    return [f"{where}: extrapolating, the feature need not follow the code"]


# --------------------------------------------------------------------------- export


@torch.no_grad()
def generator_at_code(
    net: AdaINGenerator,
    code: float,
    lz: int,
    latents: int = CALIBRATION_LATENTS,
    seed: int = CALIBRATION_SEED,
) -> Generator:
    """A plain eval-mode :class:`Generator` equal to ``net`` at one code, frozen statistics.

    Each AdaIN layer's instance mean and variance are averaged over ``latents``
    training-size latents (edge ``lz``, fixed ``seed``: the result is a pure function of the
    weights and the code) and written as BatchNorm running statistics; the code's scale and
    shift become the BatchNorm weight and bias.
    """
    dev = next(net.parameters()).device
    g = torch.Generator().manual_seed(int(seed))
    z = torch.randn(int(latents), net.nz, lz, lz, lz, generator=g).to(dev)
    alpha = torch.full((int(latents),), float(code), device=dev)
    stats: list = []
    net.eval()
    net(z, alpha, activate=False, _stats=stats)
    styles = net.mlp(alpha[:1])
    with torch.device("meta"):
        out = Generator(
            net.gk,
            net.gs,
            net.gp,
            net.gf,
            final=net.final,
            check_rules=False,
            output_stage=net.output_stage,
            hidden_stage=net.hidden_stage,
        )
    out = out.to_empty(device=dev)
    for src, dst in zip(net.convs, out.convs, strict=True):
        dst.weight.copy_(src.weight)
    for bn, (mean, var), (scale, shift) in zip(out.bns, stats, styles, strict=True):
        bn.running_mean.copy_(mean.mean(0))
        bn.running_var.copy_(var.mean(0))
        bn.num_batches_tracked.fill_(0)
        bn.weight.copy_(scale[0])
        bn.bias.copy_(shift[0])
        bn.eps = ADAIN_EPS
    return out.eval().requires_grad_(False)


def build_conditional_generator(params: ModelParams, check_rules: bool = True) -> AdaINGenerator:
    """The :class:`AdaINGenerator` a conditional ``params`` describes (random weights)."""
    c = params.conditional or {}
    return AdaINGenerator(
        params.gk,
        params.gs,
        params.gp,
        params.gf,
        final=params.final,
        code_dim=int(c.get("code_dim", DEFAULT_CODE_DIM)),
        code_hidden=int(c.get("code_hidden", DEFAULT_CODE_HIDDEN)),
        check_rules=check_rules,
        output_stage=params.g_output_stage,
        hidden_stage=params.g_hidden_stage,
    )


def load_conditional_generator(
    model_dir: str | os.PathLike, device: str | torch.device = "cpu", name: str | None = None
) -> tuple[AdaINGenerator, ModelParams]:
    """Load a trained family generator (eval mode, no gradients) and its parameters.

    Raises
    ------
    MicrolibError
        The directory holds an unconditional model, or the weights do not match.
    """
    params = load_model_params(model_dir, name=name)
    if not params.conditional:
        raise MicrolibError(
            "not a family (conditional) model: it was trained on one image, generate it "
            "without --code",
            entry=params.name,
        )
    net = build_conditional_generator(params)
    sd = load_weights(Path(model_dir) / f"{params.name}_Gen.pt", entry=params.name)
    own = net.state_dict()
    if set(sd) != set(own) or any(tuple(sd[k].shape) != tuple(v.shape) for k, v in own.items()):
        raise MicrolibError(
            "family generator weights do not match the architecture in the params file",
            entry=params.name,
        )
    net.load_state_dict(sd, strict=True)
    net.to(torch.device(device)).eval().requires_grad_(False)
    return net, params


__all__ = [
    "CONDITIONAL_KIND",
    "DEFAULT_CODE_DIM",
    "DEFAULT_CODE_HIDDEN",
    "AdaINGenerator",
    "CodeMLP",
    "build_conditional_generator",
    "check_code",
    "code_range",
    "code_vector",
    "conditional_critic",
    "generator_at_code",
    "load_conditional_generator",
    "with_code_channel",
]
