"""``microlib bench train``: SliceGAN generator iterations per second, optimised vs baseline.

Both loops run in the same process on the same synthetic three-phase image: the baseline
has every optimisation off (host-side numpy crop sampling copied to the device each step,
``.item()`` on every loss every step, no bf16 autocast / TF32 / cuDNN autotuning / fused
Adam / channels-last / compile); the optimised loop uses the defaults of ``microlib train``.
Variants flip one switch of the optimised loop: ``channels_last`` (default on for CPU, off
for CUDA) and ``compile`` (off by default), measured on CUDA unless ``--variants`` says
otherwise, so the defaults can follow the figures. FLOPs of one iteration come from
``torch.utils.flop_counter.FlopCounterMode``.

Run on a GPU machine without installing: ``PYTHONPATH=. python -m microlib bench train
--device cuda``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from microlib.device import resolve_device
from microlib.slicegan.presets import get_preset
from microlib.train import Optimisations, SliceGANTrainer, make_training_set

HELP = "SliceGAN training speed: optimised loop vs every optimisation off"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--preset",
        default=None,
        choices=["microlib", "table1", "tiny", "demo"],
        help="default: microlib on CUDA, tiny on CPU (microlib needs minutes per "
        "iteration on a CPU)",
    )
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument(
        "--iterations",
        type=int,
        help="timed generator iterations per config (default: 20 CUDA, 4 CPU)",
    )
    p.add_argument("--warmup", type=int, help="untimed iterations first (default: 5 CUDA, 1 CPU)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument(
        "--variants",
        default=None,
        help="extra configs, comma separated: channels_last, compile, summed "
        "(default on CUDA: channels_last,compile; none on CPU)",
    )
    p.add_argument("--rounds", type=int, help="interleaved timing rounds (default 4 CUDA, 2 CPU)")
    p.add_argument("--image-size", type=int, default=256, help="synthetic training image edge")


def _image(size: int):
    import numpy as np
    from scipy import ndimage

    rng = np.random.default_rng(0)
    f = ndimage.gaussian_filter(rng.standard_normal((size, size)), 4)
    return np.digitize(f, np.quantile(f, [0.35, 0.85])).astype(np.uint8)


def _sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_segment(trainer, iterations: int) -> tuple[float, int | None]:
    """(seconds, CUDA peak bytes) of ``iterations`` generator iterations, synchronised."""
    import torch

    dev = trainer.device
    _sync(dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    t0 = time.perf_counter()
    for _ in range(iterations):
        trainer.step()
    trainer.read_log()  # the optimised loop's one synchronisation per log interval
    _sync(dev)
    dt = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else None
    return dt, peak


def run(args: argparse.Namespace) -> int:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    preset = get_preset(args.preset or ("microlib" if cuda else "tiny"))
    iters = args.iterations or (20 if cuda else 4)
    warm = args.warmup if args.warmup is not None else (5 if cuda else 1)
    variants = (
        args.variants if args.variants is not None else ("channels_last,compile" if cuda else "")
    )
    variants = [v.strip() for v in variants.split(",") if v.strip()]
    img = _image(max(args.image_size, preset.l))
    tset = make_training_set([img], "nphase", preset.l)

    where = (
        torch.cuda.get_device_name(device) if cuda else f"cpu, {torch.get_num_threads()} threads"
    )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"bench train: preset {preset.name} on {where}; torch {torch.__version__}; "
        f"{iters} timed (interleaved rounds) + {warm} warm-up generator iterations per "
        f"config; "
        f"load average {load:.2f}"
    )
    print(
        f"  one generator iteration = {preset.critic_iters} critic iterations x 3 axes "
        f"(batch {preset.batch_size} real, {preset.d_batch_size} fake volumes x {preset.l} "
        f"slices) + 1 generator update ({preset.g_batch_size} volumes)"
    )

    configs: list[tuple[str, Optimisations, str]] = [
        ("baseline", Optimisations.baseline(), "per_axis"),
        ("optimised", Optimisations(), "per_axis"),
    ]
    for v in variants:
        if v == "channels_last":
            flip = not Optimisations().effective(device)["channels_last"]
            configs.append(
                (
                    f"{'+' if flip else '-'}channels_last",
                    Optimisations(channels_last=flip),
                    "per_axis",
                )
            )
        elif v == "compile":
            configs.append(("+compile", Optimisations(compile=True), "per_axis"))
        elif v == "summed":
            configs.append(("+summed D update", Optimisations(), "summed"))
        else:
            print(f"  unknown variant {v!r} ignored", file=sys.stderr)

    # build and warm every config, then time them in interleaved rounds so that drift on a
    # shared machine (other jobs, clocks) hits all configs alike; report the median round
    live = []
    for label, opts, d_update in configs:
        try:
            tr = SliceGANTrainer(tset, preset, seed=0, device=device, opts=opts, d_update=d_update)
            for _ in range(warm):
                tr.step()
            tr.read_log()
        except Exception as exc:  # a variant failing (e.g. compile without a compiler)
            print(f"  {label}: failed: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}")
            continue
        live.append(
            {
                "label": label,
                "trainer": tr,
                "compile": opts.compile,
                "times": [],
                "peak_bytes": None,
            }
        )
    rounds = max(1, args.rounds or (4 if cuda else 2))
    per_round = max(1, -(-iters // rounds))
    for _ in range(rounds):
        for r in live:
            dt, peak = time_segment(r["trainer"], per_round)
            r["times"].append(dt / per_round)
            if peak is not None:
                r["peak_bytes"] = max(r["peak_bytes"] or 0, peak)
    rows = []
    for r in live:
        spi = statistics.median(r["times"])
        flops = None if r["compile"] else r["trainer"].flops_per_iteration()
        rows.append(
            {
                "label": r["label"],
                "s_per_it": spi,
                "it_per_s": 1.0 / spi,
                "peak_bytes": r["peak_bytes"],
                "flops": flops,
                "spread": (min(r["times"]), max(r["times"])),
            }
        )
        r["trainer"] = None
    if cuda:
        torch.cuda.empty_cache()

    base = next((r for r in rows if r["label"] == "baseline"), None)
    opt = next((r for r in rows if r["label"] == "optimised"), None)
    flops_ref = opt["flops"] if opt and opt["flops"] else None
    print(
        f"  {'config':<18}{'it/s':>9}{'s/it':>9}{'spread s/it':>14}{'5000 it':>10}"
        f"{'GFLOP/it':>10}{'TFLOP/s':>9}{'peak GB':>9}{'x base':>8}"
    )
    for r in rows:
        fl = r["flops"] or flops_ref
        tflops = fl * r["it_per_s"] / 1e12 if fl else float("nan")
        peak = f"{r['peak_bytes'] / 2**30:9.2f}" if r["peak_bytes"] else f"{'-':>9}"
        ratio = r["it_per_s"] / base["it_per_s"] if base else float("nan")
        spread = f"{r['spread'][0]:.3f}-{r['spread'][1]:.3f}"
        print(
            f"  {r['label']:<18}{r['it_per_s']:9.3f}{r['s_per_it']:9.3f}{spread:>14}"
            f"{_hm(5000 * r['s_per_it']):>10}{(fl or float('nan')) / 1e9:10.1f}"
            f"{tflops:9.3f}{peak}{ratio:8.2f}"
        )
    if base and opt:
        print(
            f"ratio optimised/baseline: {opt['it_per_s'] / base['it_per_s']:.2f}x; "
            f"projected 5000 iterations: {_hm(5000 * opt['s_per_it'])} "
            f"(baseline {_hm(5000 * base['s_per_it'])})"
        )
        if cuda and preset.name in ("microlib", "table1"):
            goal = 12 * 60
            verdict = "meets" if 5000 * opt["s_per_it"] <= goal else "misses"
            print(f"goal 5000 iterations <= 12 min on one H100: {verdict}")
    return 0


def _hm(seconds: float) -> str:
    m = int(round(seconds / 60))
    return f"{m // 60}h{m % 60:02d}m"
