"""``microlib bench generate``: time and peak memory of one volume, optimised vs baseline,
and the peak memory of a tiled large volume against the untiled estimate.

Random weights (no trained model needed), three output phases. Optimised = BatchNorm
folded into the convolutions (folded once, outside the timed region, as
``microlib.generate`` caches it per loaded model), ``inference_mode``, argmax of the logits on the device,
uint8 to the host. Baseline = what the original ``test_img`` did at best (SliceGAN
master): eval-mode network with separate BatchNorm, ``no_grad``, softmax output copied to
the host as float32, argmax there, int64 labels. The tiled run streams a TIFF to a
temporary directory (deleted afterwards) under a memory budget.

Peak memory: ``torch.cuda.max_memory_allocated`` on CUDA; on CPU the resident set size
sampled every 2 ms by a thread (increase over the level before the call).

Run on a GPU machine without installing: ``PYTHONPATH=. python -m microlib bench generate
--device cuda``.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

from microlib.device import resolve_device
from microlib.generate import (
    estimate_peak_bytes,
    fused_generator,
    generate_to_tif,
    iter_z_slabs,
    make_latent,
    plan_generation,
    resolve_tile,
)
from microlib.slicegan.params import ModelParams
from microlib.slicegan.presets import get_preset

HELP = "volume generation: time and peak memory, optimised vs baseline, tiled vs untiled"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="microlib", choices=["microlib", "table1", "tiny", "demo"])
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--size", type=int, default=320, help="edge of the timed volume")
    p.add_argument(
        "--tiled-size",
        type=int,
        default=None,
        help="edge of the tiled volume (default: 1024 on CUDA; 384 on CPU, where "
        "1024^3 would take ~20 minutes)",
    )
    p.add_argument(
        "--max-memory-gb",
        type=float,
        default=None,
        help="tile memory budget (default: 4 on CUDA, 1 on CPU)",
    )
    p.add_argument(
        "--repeats", type=int, default=None, help="timed repeats (default 5 CUDA, 1 CPU)"
    )
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--no-baseline", action="store_true", help="skip the baseline pass")


class _RssPeak:
    """Peak resident set size (bytes) of this process while the block runs."""

    def __init__(self, interval: float = 0.002):
        self.interval = interval
        self.peak = 0
        self.start = 0
        self._stop = threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

    def _rss(self) -> int:
        try:
            with open("/proc/self/statm") as fh:
                return int(fh.read().split()[1]) * self._page
        except OSError:
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(self.interval)

    def __enter__(self):
        self.start = self._rss()
        self.peak = self.start
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self._rss())
        return False

    @property
    def increase(self) -> int:
        return self.peak - self.start


def _measure(fn, device, repeats: int, warmup: int) -> tuple[float, int]:
    """(median seconds, peak bytes above the starting level) of ``fn()``."""
    import torch

    for _ in range(warmup):
        fn()
    times = []
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            torch.cuda.synchronize(device)
            times.append(time.perf_counter() - t0)
        peak = torch.cuda.max_memory_allocated(device) - base
    else:
        with _RssPeak() as rss:
            for _ in range(repeats):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
        peak = rss.increase
    return statistics.median(times), peak


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    preset = get_preset(args.preset)
    nc = 3
    params = ModelParams(
        name="bench",
        image_type="nphase",
        gk=list(preset.gk),
        gs=list(preset.gs),
        gp=list(preset.gp),
        gf=preset.gf(nc),
        dk=list(preset.dk),
        ds=list(preset.ds),
        dp=list(preset.dp),
        df=preset.df(nc),
        lz=preset.lz,
        l=preset.l,
        g_output_stage=preset.g_output_stage,
        g_hidden_stage=preset.g_hidden_stage,
        g_output_noise=preset.g_output_noise,
    )
    torch.manual_seed(0)
    net = params.build_generator().eval().requires_grad_(False).to(device)
    repeats = args.repeats or (5 if cuda else 1)
    # one untimed pass on CPU too: the first call pays page faults and oneDNN set-up
    warmup = 2 if cuda else 1
    tiled = args.tiled_size or (1024 if cuda else 384)
    budget = args.max_memory_gb or (4.0 if cuda else 1.0)
    where = (
        torch.cuda.get_device_name(device) if cuda else f"cpu, {torch.get_num_threads()} threads"
    )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"bench generate: preset {preset.name} (random weights, {nc} phases) on {where}; "
        f"torch {torch.__version__}; load average {load:.2f}"
    )

    plan = plan_generation(params, args.size)
    # the BatchNorm-folded copy is built once per loaded model (cached on ``net``): build
    # it here so the timed region holds generation only
    fused = fused_generator(net, device)
    one_tile = [-(-n // plan.geometry.stride) for n in plan.size]

    def optimised():
        return next(iter_z_slabs(net, params, plan, seed=0, device=device, tile_cells=one_tile))

    z = make_latent(plan, params.nz, 0)

    def baseline():
        with torch.no_grad():
            x = net(z.to(device))  # softmax output, separate BatchNorm
            host = x.float().cpu().numpy()
        return np.argmax(host[0], axis=0).astype(np.int64)

    rows = []
    t_opt, m_opt = _measure(optimised, device, repeats, warmup)
    rows.append(("optimised", args.size, t_opt, m_opt, "1 tile"))
    if not args.no_baseline:
        t_base, m_base = _measure(baseline, device, repeats, warmup)
        rows.append(("baseline", args.size, t_base, m_base, "1 tile"))
        same = float((optimised().astype(np.int64) == baseline()).mean())
    est_small = estimate_peak_bytes(fused, plan.latent, device)

    big_plan = plan_generation(params, tiled)
    cells = resolve_tile(net, big_plan, device, None, budget)
    est_big = estimate_peak_bytes(fused, big_plan.latent, device)
    with tempfile.TemporaryDirectory(prefix="microlib-bench-") as td:
        out = Path(td) / "tiled.tif"

        def tiled_run():
            return generate_to_tif(
                out,
                net,
                params,
                tiled,
                seed=0,
                device=device,
                tile=[c * big_plan.geometry.stride for c in cells],
            )

        t_big, m_big = _measure(tiled_run, device, 1, 0)
        size_on_disk = out.stat().st_size
    stride = big_plan.geometry.stride
    n_tiles = 1
    for n, c in zip(big_plan.size, cells, strict=True):
        n_tiles *= math.ceil(math.ceil(n / stride) / c)
    tile_vox = "x".join(str(c * stride) for c in cells)
    rows.append(
        (
            "tiled",
            tiled,
            t_big,
            m_big,
            f"{n_tiles} tiles of {tile_vox} voxels, budget {budget:g} GB, streamed TIFF",
        )
    )

    gb = 2**30
    print(f"  {'run':<10}{'size':>7}{'seconds':>10}{'peak GB':>10}  notes")
    for label, n, t, m, note in rows:
        print(f"  {label:<10}{str(n) + '^3':>7}{t:10.3f}{m / gb:10.2f}  {note}")
    if not args.no_baseline:
        print(
            f"ratio baseline/optimised at {args.size}^3: time {t_base / t_opt:.2f}x, "
            f"peak memory {m_base / max(m_opt, 1):.2f}x (labels agree on {same:.4%} of voxels)"
        )
    print(
        f"estimate check at {args.size}^3: measured peak {m_opt / gb:.2f} GB vs tile-sizing "
        f"estimate {est_small / gb:.2f} GB"
    )
    print(
        f"tiled {tiled}^3: peak {m_big / gb:.2f} GB vs untiled estimate {est_big / gb:.1f} GB "
        f"(ratio {est_big / max(m_big, 1):.1f}x less), {size_on_disk / gb:.2f} GB TIFF streamed "
        f"in {t_big:.1f} s"
    )
    if cuda and args.size == 320 and preset.name in ("microlib", "table1"):
        print(f"goal 320^3 <= 0.15 s: {'meets' if t_opt <= 0.15 else 'misses'} ({t_opt:.3f} s)")
    return 0
