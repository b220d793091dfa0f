"""``microlib bench adain``: one family generator vs one generator per member.

Three procedural two-phase members (blurred noise thresholded at its median, sigmas 2.0 /
3.3 / 5.3 px, i.e. correlation lengths of about 3 / 5 / 8 px) train one AdaIN-conditioned
generator at codes 0.15 / 0.35 / 0.6. Reported:

* interpolation quality: the correlation length of a volume generated at each training
  code and at codes between them, beside the members' own; whether it is monotone in the
  code; the relative error at the training codes;
* cost: wall time of the family run against the baseline measured in the same process,
  one unconditional SliceGAN run per member with the same preset and iterations (the
  ratio is family / sum of the separate runs). Per iteration the family critic sees as many
  fake slices as real crops, the engine's every slice of its fake volumes, so part of the
  saving is that choice rather than the sharing of one network.

Run: ``PYTHONPATH=. python -m microlib bench adain [--iterations N] [--device cuda]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy import ndimage

from microlib.device import DEVICE_CHOICES, resolve_device
from microlib.slicegan.adain import generator_at_code
from microlib.slicegan.presets import get_preset
from microlib.train import SliceGANTrainer, make_training_set
from microlib.train.family import FamilyTrainer
from microlib.validate import feature_size, is_monotone

HELP = "family (AdaIN) generator: feature size vs code, and cost vs one run per member"

# the reduced network of the slow interpolation test: four transposed convolutions
BENCH_PRESET = get_preset("family")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--iterations", type=int, default=800, help="generator iterations per run")
    p.add_argument("--device", default="auto", choices=list(DEVICE_CHOICES))
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--codes", default="0.15,0.35,0.6", help="member codes")
    p.add_argument("--sigmas", default="2.0,3.3,5.3", help="members' blur sigmas (px)")
    p.add_argument("--steps", type=int, default=3, help="codes between neighbouring members")
    p.add_argument("--volume", type=int, default=96, help="edge of each measured volume")
    p.add_argument("--code-dim", type=int, default=32)
    p.add_argument("--no-baseline", action="store_true", help="skip the separate runs")


def _member(sigma: float, seed: int, size: int = 256) -> np.ndarray:
    f = ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal((size, size)), sigma)
    return (f > np.median(f)).astype(np.uint8)


def _timed_steps(trainer, n: int, device: torch.device) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        trainer.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(max(1, int(args.threads)))
    device = resolve_device(args.device)
    codes = [float(c) for c in args.codes.split(",")]
    sigmas = [float(s) for s in args.sigmas.split(",")]
    preset = BENCH_PRESET.replace(iterations=args.iterations)
    images = [_member(s, i) for i, s in enumerate(sigmas)]
    members = [make_training_set([a], "nphase", preset.l) for a in images]
    want = [feature_size(a)["correlation_length_px"] for a in images]
    print(f"device {device}, threads {torch.get_num_threads()}, {args.iterations} iterations")

    fam = FamilyTrainer(members, codes, preset, args.code_dim, 64, seed=0, device=device)
    t_family = _timed_steps(fam, args.iterations, device)
    net = fam.generator_for_eval()
    lat = -(-args.volume // 16) + 2  # the bench net makes 16 (lf - 2) voxels per axis
    z = torch.randn(1, preset.nz, lat, lat, lat, generator=torch.Generator().manual_seed(1))
    sweep = []
    for lo, hi in zip(codes[:-1], codes[1:], strict=True):
        sweep += [lo + (hi - lo) * k / (args.steps + 1) for k in range(args.steps + 1)]
    sweep.append(codes[-1])
    print(f"{'code':>7} {'corr. length px':>16} {'member px':>10} {'error':>7}")
    sizes = []
    errors = []
    for c in sweep:
        with torch.no_grad():
            vol = generator_at_code(net, c, preset.lz)(z.to(device)).argmax(1)[0]
        cl = feature_size(vol.cpu().numpy().astype(np.uint8))["correlation_length_px"]
        sizes.append(cl)
        member = next((w for cc, w in zip(codes, want, strict=True) if cc == c), None)
        err = "" if member is None or cl is None else f"{(cl - member) / member:+.1%}"
        if member is not None and cl is not None:
            errors.append(abs(cl - member) / member)
        print(
            f"{c:7.4f} {cl if cl is not None else float('nan'):16.2f} "
            f"{member if member is not None else float('nan'):10.2f} {err:>7}"
        )
    mono = None not in sizes and is_monotone(sizes)
    print(
        f"monotone in the code: {'yes' if mono else 'no'}; "
        f"max error at training codes: {max(errors) if errors else float('nan'):.1%}"
    )
    print(f"family run: {t_family:.1f} s ({t_family / args.iterations:.3f} s/iteration)")
    if args.no_baseline:
        return 0
    t_sep = 0.0
    for tset in members:
        single = SliceGANTrainer(tset, preset, seed=0, device=device)
        t_sep += _timed_steps(single, args.iterations, device)
    print(
        f"separate runs ({len(members)} x {args.iterations} iterations): {t_sep:.1f} s; "
        f"family / separate = {t_family / t_sep:.2f}"
    )
    return 0
