"""Training knobs around the WGAN-GP step: speed switches, the learning-rate schedule,
the generator weight EMA and the optimiser-state helpers used for exact resume.

All of them default to off / constant so the ``microlib`` preset trains as MicroLib did.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn

from microlib.errors import MicrolibError
from microlib.slicegan.presets import LR_SCHEDULES, RUN_CONTROL_FIELDS, Preset


@dataclass
class Optimisations:
    """Speed switches; :meth:`baseline` turns every one of them off.

    Attributes
    ----------
    device_sampling : bool
        Sample real crops on the device by index arithmetic (else a host-side numpy loop,
        one crop at a time, copied to the device every step).
    lazy_sync : bool
        Keep losses on the device and synchronise only when the log is read (else
        ``.item()`` on every loss of every step, as the original did).
    autocast_bf16 : bool
        bf16 autocast for the forward passes (CUDA only).
    tf32 : bool
        TF32 matmul/convolution (CUDA only).
    cudnn_benchmark : bool
        Let cuDNN pick the fastest algorithms for the fixed shapes (CUDA only).
    fused_adam : bool
        Fused Adam kernels (CUDA only).
    channels_last : bool or None
        channels-last memory format for generator and critics. ``None`` (default): on for
        CPU, where it measured 9-11 % faster per iteration (tiny and demo presets, one
        thread, interleaved repeats); off for CUDA until measured there
        (``microlib bench train`` reports it as a variant).
    compile : bool
        ``torch.compile`` the generator (the critics need double backward for the
        gradient penalty, which torch.compile does not support).
    """

    device_sampling: bool = True
    lazy_sync: bool = True
    autocast_bf16: bool = True
    tf32: bool = True
    cudnn_benchmark: bool = True
    fused_adam: bool = True
    channels_last: bool | None = None
    compile: bool = False

    @classmethod
    def baseline(cls) -> Optimisations:
        return cls(
            device_sampling=False,
            lazy_sync=False,
            autocast_bf16=False,
            tf32=False,
            cudnn_benchmark=False,
            fused_adam=False,
            channels_last=False,
            compile=False,
        )

    def effective(self, device: torch.device) -> dict[str, bool]:
        """The switches that actually apply on ``device`` (CUDA-only ones off on CPU)."""
        d = asdict(self)
        if d["channels_last"] is None:
            d["channels_last"] = device.type == "cpu"
        if device.type != "cuda":
            for k in ("autocast_bf16", "tf32", "cudnn_benchmark", "fused_adam"):
                d[k] = False
        return d


# --------------------------------------------------------------------------- lr schedule


def lr_factor(schedule: str, iteration: int, total: int, min_frac: float = 0.0) -> float:
    """Learning-rate multiplier for generator iteration ``iteration`` (0-based) of ``total``.

    ``constant``: 1. ``cosine``: ``min_frac + (1 - min_frac) (1 + cos(pi t)) / 2``;
    ``linear``: ``1 - (1 - min_frac) t``, with ``t = iteration / total`` clipped to [0, 1].
    A pure function of the iteration, so a resumed run follows the same schedule.
    """
    if schedule not in LR_SCHEDULES:
        raise MicrolibError(
            f"unknown lr_schedule {schedule!r} (choose from {', '.join(LR_SCHEDULES)})"
        )
    if schedule == "constant":
        return 1.0
    t = min(max(iteration / max(int(total), 1), 0.0), 1.0)
    lo = float(min_frac)
    if schedule == "cosine":
        return lo + (1.0 - lo) * 0.5 * (1.0 + math.cos(math.pi * t))
    return 1.0 - (1.0 - lo) * t


# --------------------------------------------------------------------------- weight EMA


class GeneratorEMA:
    """Exponential moving average of a generator's weights.

    After every generator update ``ema = decay * ema + (1 - decay) * weights``. BatchNorm
    running statistics are not averaged: the live generator's statistics belong to its own
    weights, not to the averaged ones, so :meth:`calibrated` re-estimates them for the
    averaged weights from ``batches`` fresh latents (a fixed seed, so the result is a pure
    function of the averaged weights and resume stays exact).

    Parameters
    ----------
    net : nn.Module
        The live generator (copied; not modified).
    decay : float
        In ``(0, 1)``.
    """

    def __init__(self, net: nn.Module, decay: float):
        if not 0.0 < float(decay) < 1.0:
            raise MicrolibError(f"ema_decay must be in (0, 1) or 0 (off), not {decay}")
        self.decay = float(decay)
        self.net = copy.deepcopy(net).requires_grad_(False)

    @torch.no_grad()
    def update(self, net: nn.Module) -> None:
        ema = list(self.net.parameters())
        live = [p.detach() for p in net.parameters()]
        torch._foreach_lerp_(ema, live, 1.0 - self.decay)

    @torch.no_grad()
    def calibrated(self, noise_shape: tuple[int, ...], batches: int = 4, seed: int = 0):
        """The averaged generator in eval mode, BatchNorm statistics re-estimated."""
        net = self.net
        dev = next(net.parameters()).device
        bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        saved = [m.momentum for m in bns]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batches
        gen = torch.Generator().manual_seed(int(seed))
        net.train()
        try:
            for _ in range(max(1, int(batches))):
                net(torch.randn(*noise_shape, generator=gen).to(dev))
        finally:
            for m, mom in zip(bns, saved, strict=True):
                m.momentum = mom
            net.eval()
        return net

    def state_dict(self) -> dict:
        """The averaged parameters only: the BatchNorm statistics are derived from them."""
        return {k: snapshot(v) for k, v in self.net.named_parameters()}

    @torch.no_grad()
    def load_state_dict(self, sd: dict) -> None:
        own = dict(self.net.named_parameters())
        if set(own) != set(sd):
            raise MicrolibError("the saved weight average does not match the generator")
        for k, p in own.items():
            p.copy_(sd[k])


def apply_lr_schedule(
    preset: Preset,
    iteration: int,
    opt_g: torch.optim.Optimizer,
    opt_ds: Sequence[torch.optim.Optimizer],
) -> None:
    """Set the generator's and critics' learning rates for step ``iteration``.

    A constant schedule leaves the optimisers untouched, exactly as the original code had
    them.
    """
    p = preset
    if p.lr_schedule == "constant":
        return
    f = lr_factor(p.lr_schedule, iteration, p.iterations, p.lr_min_frac)
    for group in opt_g.param_groups:
        group["lr"] = float(p.lr_g) * f
    for opt in opt_ds:
        for group in opt.param_groups:
            group["lr"] = float(p.lr_d) * f


# --------------------------------------------------------------------------- state helpers


def run_defining_preset(preset: Preset) -> dict:
    """The preset fields a resumed run must match: all but the run-control ones, and
    ``iterations`` too when the learning-rate schedule is stretched over it."""
    return {
        k: v
        for k, v in preset.to_dict().items()
        if k not in RUN_CONTROL_FIELDS or (k == "iterations" and preset.lr_schedule != "constant")
    }


def snapshot(t: torch.Tensor) -> torch.Tensor:
    """A contiguous CPU copy of ``t``: on a CPU run ``.cpu()`` alone would return the live
    tensor, and a state kept in memory would then move on with the next step."""
    return t.detach().to("cpu", copy=True).contiguous()


def module_state_cpu(sd: dict) -> dict:
    """A module's state dict as contiguous CPU copies (``weights_only``-loadable)."""
    return {k: (snapshot(v) if torch.is_tensor(v) else v) for k, v in sd.items()}


def restore_rng(rng: torch.Generator, state: dict, seed: int, device: torch.device) -> list[str]:
    """Restore a trainer's random generator from its saved state; returns warnings.

    Generator states are device-specific: a state saved on another device type continues
    with a seed derived from ``seed`` and the saved iteration (not bit-identical).
    """
    if state.get("rng_device") == device.type:
        rng.set_state(state["rng_state"])
        return []
    rng.manual_seed(seed * 1_000_003 + int(state["iteration"]))
    return [
        f"state saved on {state.get('rng_device')}, resumed on "
        f"{device.type}: random stream re-seeded (not bit-identical)"
    ]


def keep_impl_flags(saved: dict, opt: torch.optim.Optimizer) -> dict:
    """Saved optimiser state with this run's implementation switches (fused/foreach):
    a state saved on CUDA with fused Adam must resume on a CPU node too."""
    groups = []
    for g_saved, g_now in zip(saved["param_groups"], opt.param_groups, strict=True):
        g = dict(g_saved)
        for k in ("fused", "foreach", "capturable", "differentiable"):
            if k in g_now:
                g[k] = g_now[k]
        groups.append(g)
    return {"state": saved["state"], "param_groups": groups}


def opt_state_cpu(sd: dict) -> dict:
    state = {
        k: {n: (snapshot(t) if torch.is_tensor(t) else t) for n, t in v.items()}
        for k, v in sd["state"].items()
    }
    return {"state": state, "param_groups": sd["param_groups"]}


def diff_keys(a: dict, b: dict, prefix: str = "") -> set[str]:
    out = set()
    for k in set(a) | set(b):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out |= diff_keys(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.add(f"{prefix}{k}")
    return out


def count_step_flops(step) -> float:
    """FLOPs of one call of ``step()``, counted with the formulas of
    ``torch.utils.flop_counter.FlopCounterMode``.

    ``FlopCounterMode`` itself cannot run a training step: its module tracker refuses the
    ``autograd.grad`` of the gradient penalty, so its per-operator registry is applied
    from a plain dispatch mode.
    """
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import FlopCounterMode

    registry = FlopCounterMode(display=False).flop_registry

    class _Count(TorchDispatchMode):
        total = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            fn = registry.get(func._overloadpacket)
            if fn is not None:
                _Count.total += fn(*args, **kwargs, out_val=out)
            return out

    with _Count():
        step()
    return float(_Count.total)
