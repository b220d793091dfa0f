"""``microlib bench fidelity``: do generated volumes match real micrographs statistically?

Trains one generator per real micrograph (two-phase images spanning small and large
features, mid slices of the real three-phase volume, grayscale images) for each candidate
setting, generates a cube per entry and compares it with its 2D training image:

* volume fraction error (largest phase error in points, and MicroLib's mean ``|a-b|/a``),
* surface-area density error (share of neighbour faces with different labels, in %),
* two-point-correlation curve error (mean absolute difference, lags 0..R),
* 3D anisotropy (per-axis max/min of the face share; 1 is isotropic),
* checkerboard score (share of spectral power near Nyquist) of 3D slices over the 2D image's,
* training wall time.

Candidates: ``baseline`` (today's demo settings: preset ``demo``, 300 iterations),
``preset`` (``--preset`` at ``--iterations``) and ``recipe`` (:data:`RECIPE`, the CPU demo
recipe found by the fidelity study). Grayscale entries are compared after thresholding both
at the 2D image's Otsu level. The real data live outside the repository
(``--realdata``, default ``../shared/realdata``); without them the benchmark says so and
exits 0.
"""

from __future__ import annotations

import argparse
import copy
import csv
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from microlib import io as mio
from microlib import validate as V
from microlib.errors import MicrolibError
from microlib.slicegan.networks import Generator, activate_output
from microlib.slicegan.presets import Preset, get_preset
from microlib.train import SliceGANTrainer, make_training_set

HELP = "3D-vs-2D statistical fidelity on real micrographs: demo baseline, a preset, the recipe"

#: MicroLib's reported mean errors over its library (percent), printed beside ours.
MICROLIB_REPORTED = {"vf_pct": 4.7, "sa_pct": 4.3}

#: The CPU demo recipe: engine knobs beyond the preset fields (names as the training
#: engine's ``ema_decay`` / ``lr_schedule`` / ``lr_min_frac``) plus preset overrides and the
#: generator's output stage (see :class:`_ResizeConvGenerator`).
RECIPE: dict = {
    "preset": "demo",
    "iterations": 600,
    "overrides": {},
    "ema_decay": 0.99,
    "lr_schedule": "constant",
    "lr_min_frac": 1.0,
    "output_stage": "resize",
}

_REPO = Path(__file__).resolve().parents[2]
_DEFAULT_REALDATA = _REPO.parent / "shared" / "realdata"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--realdata", default=str(_DEFAULT_REALDATA), help="real reference data dir")
    p.add_argument("--preset", default="demo", help="preset of the 'preset' candidate")
    p.add_argument("--iterations", type=int, default=300, help="its iterations (default 300)")
    p.add_argument("--baseline-iterations", type=int, default=300, help="baseline iterations")
    p.add_argument("--recipe-iterations", type=int, help=f"default {RECIPE['iterations']}")
    p.add_argument(
        "--candidates", default="baseline,preset,recipe", help="comma list of candidates to run"
    )
    p.add_argument("--entries", help="comma list of entries (e.g. 017,031,3ph-z); default all")
    p.add_argument("--limit", type=int, help="first N selected entries only")
    p.add_argument("--two-phase", type=int, default=10, help="two-phase images (default 10)")
    p.add_argument("--grayscale", type=int, default=2, help="grayscale images (default 2)")
    p.add_argument("--size", type=int, default=128, help="generated cube edge (default 128)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="data/benchmarks/fidelity", help="montage + results dir")


# --------------------------------------------------------------------------- metrics
# Same names as the metric functions being added to microlib.validate; swap these for
# imports there once both are merged.


def _surface_area_density_axes(labels: np.ndarray) -> np.ndarray:
    """Share of neighbour pairs with different labels along each axis, ``(ndim,)``."""
    a = np.asarray(labels)
    out = np.zeros(a.ndim)
    for ax in range(a.ndim):
        n = a.shape[ax]
        if n > 1:
            lo, hi = np.take(a, range(n - 1), axis=ax), np.take(a, range(1, n), axis=ax)
            out[ax] = np.count_nonzero(lo != hi) / lo.size
    return out


def _anisotropy(labels: np.ndarray) -> float:
    """Per-axis max / min of :func:`_surface_area_density_axes` (1 = isotropic)."""
    s = _surface_area_density_axes(labels)
    return float(s.max() / s.min()) if s.min() > 0 else math.inf


def _checkerboard_score(image: np.ndarray) -> float:
    """Share of the (mean-removed) spectral power with ``max(|fy|, |fx|) >= 3/8`` cycles/px.

    Transposed-convolution artefacts repeat every 2 (and 4) voxels, so they put power at
    and near Nyquist; a sharp-edged micrograph has some there too, so compare 3D slices
    with the 2D image at the same window size. ``image`` is ``(H, W)`` or a stack
    ``(N, H, W)`` (power summed over the stack).
    """
    a = np.asarray(image, dtype=np.float64)
    if a.ndim == 2:
        a = a[None]
    a = a - a.mean(axis=(1, 2), keepdims=True)
    power = np.abs(np.fft.fft2(a)) ** 2
    fy = np.abs(np.fft.fftfreq(a.shape[1]))[:, None]
    fx = np.abs(np.fft.fftfreq(a.shape[2]))[None, :]
    total = power.sum()
    return float(power[:, np.maximum(fy, fx) >= 0.375].sum() / total) if total > 0 else 0.0


def _s2_curve_error(s2_2d: np.ndarray, s2_3d: np.ndarray) -> float:
    """Mean absolute difference of axis-averaged two-point-correlation curves.

    Both are ``(n_phases, ndim, R + 1)`` as :func:`microlib.validate.two_point_correlation`.
    """
    return float(np.mean(np.abs(s2_2d.mean(axis=1) - s2_3d.mean(axis=1))))


# --------------------------------------------------------------------------- entries


@dataclass
class Entry:
    """One real training image: ``kind`` nphase or grayscale, uint8 labels or grey."""

    name: str
    kind: str
    image: np.ndarray
    note: str = ""


def _otsu(values: np.ndarray) -> int:
    h = np.bincount(np.asarray(values, np.uint8).ravel(), minlength=256).astype(np.float64)
    p = h / h.sum()
    w, m = np.cumsum(p), np.cumsum(p * np.arange(256))
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (m[-1] * w - m) ** 2 / (w * (1 - w))
    return int(np.nanargmax(between))


def _spread(rows: list[dict], n: int) -> list[dict]:
    """``n`` rows evenly spaced by rank of mean correlation length (both extremes kept)."""
    rows = sorted(rows, key=lambda r: float(r["corr_len_x_px"]) + float(r["corr_len_y_px"]))
    if n >= len(rows):
        return rows
    if n <= 1:
        return rows[:n]
    return [rows[round(i * (len(rows) - 1) / (n - 1))] for i in range(n)]


def select_entries(realdata: Path, n_two: int, n_grey: int) -> list[Entry]:
    """Two-phase and grayscale micrographs spread over feature size, three-phase slices."""
    table = realdata / "micrographs.csv"
    if not table.is_file():
        raise MicrolibError(f"{table} missing: not a realdata folder")
    with table.open(newline="") as f:
        rows = list(csv.DictReader(f))
    out: list[Entry] = []
    two = [r for r in rows if r["category"] == "two-phase"]
    grey = [r for r in rows if r["category"] == "grayscale" and "false-colour" not in r["notes"]]
    for r, kind in [(r, "nphase") for r in _spread(two, n_two)] + [
        (r, "grayscale") for r in _spread(grey, n_grey)
    ]:
        img = mio.read_image(realdata / "micrographs" / r["name"])
        img = img[..., 0] if img.ndim == 3 else img
        if kind == "nphase":
            img = (img > 127).astype(np.uint8)
        cl = (float(r["corr_len_x_px"]) + float(r["corr_len_y_px"])) / 2
        out.append(Entry(r["entry"], kind, np.ascontiguousarray(img), f"corr len {cl:.1f} px"))
    vol_path = realdata / "volumes" / "threephase_128.tif"
    if vol_path.is_file():
        vol = mio.read_tif(vol_path)
        vals = np.unique(vol)
        vol = np.searchsorted(vals, vol).astype(np.uint8)
        mid = vol.shape[0] // 2
        out.append(Entry("3ph-z", "nphase", np.ascontiguousarray(vol[mid]), "real 3D, z slice"))
        out.append(Entry("3ph-x", "nphase", np.ascontiguousarray(vol[:, :, mid]), "x slice"))
    return out


# --------------------------------------------------------------------------- candidates


@dataclass
class Candidate:
    """A named training setting: preset, iterations and the engine knobs beyond it.

    ``output_stage`` is ``transpose`` (the preset's last transposed convolution),
    ``resize-nearest`` / ``resize-trilinear`` (:class:`_ResizeConvGenerator`) or ``resize``:
    trilinear for n-phase (argmax sharpens the smooth field), nearest for grey and colour
    (trilinear upsampling smooths away their pixel-scale texture).
    """

    name: str
    preset: Preset
    iterations: int
    ema_decay: float = 0.0
    lr_schedule: str = "constant"
    lr_min_frac: float = 0.0
    output_stage: str = "transpose"
    label: str = field(default="")


def build_candidates(args: argparse.Namespace) -> list[Candidate]:
    """The candidates named by ``--candidates``, in that order."""
    recipe_it = args.recipe_iterations or RECIPE["iterations"]
    table = {
        "baseline": Candidate("baseline", get_preset("demo"), args.baseline_iterations),
        "preset": Candidate("preset", get_preset(args.preset), args.iterations),
        "recipe": Candidate(
            "recipe",
            get_preset(RECIPE["preset"]).replace(**RECIPE["overrides"]),
            recipe_it,
            RECIPE["ema_decay"],
            RECIPE["lr_schedule"],
            RECIPE["lr_min_frac"],
            RECIPE["output_stage"],
        ),
    }
    names = [n.strip() for n in args.candidates.split(",") if n.strip()]
    unknown = [n for n in names if n not in table]
    if unknown or not names:
        raise MicrolibError(f"unknown candidate(s) {unknown}; choose from {', '.join(table)}")
    out = []
    for n in names:
        c = table[n]
        c.label = f"{n} ({c.preset.name}, {c.iterations} it"
        if c.output_stage != "transpose":
            c.label += f", {c.output_stage} output stage"
        if c.ema_decay:
            c.label += f", EMA {c.ema_decay}"
        c.label += f", {c.lr_schedule} lr)" if c.lr_schedule != "constant" else ")"
        out.append(c)
    return out


# --------------------------------------------------------------------------- train + generate


class _ResizeConvGenerator(Generator):
    """The generator with its last transposed convolution replaced by a resize-convolution:
    x2 upsampling (``mode`` nearest or trilinear), a k3 p0 convolution and one voxel
    cropped per side.

    Output size ``2 n - 4`` equals that of the k4 s2 p3 transposed convolution it replaces,
    so geometry and tiling are unchanged; every output voxel gets the same kernel coverage,
    which removes the period-2 checkerboard of the transposed convolution.
    """

    def __init__(
        self,
        gk: Sequence[int],
        gs: Sequence[int],
        gp: Sequence[int],
        gf: Sequence[int],
        final: str = "softmax",
        mode: str = "nearest",
    ):
        super().__init__(gk, gs, gp, gf, final=final)
        self.convs[-1] = torch.nn.Conv3d(gf[-2], gf[-1], 3, 1, 0, bias=False)
        self.mode = mode

    def forward(self, z: torch.Tensor, activate: bool = True) -> torch.Tensor:
        x = z
        for conv, bn in zip(self.convs[:-1], self.bns, strict=True):
            x = F.relu_(bn(conv(x)))
        if self.mode == "nearest":
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        else:
            x = F.interpolate(x, scale_factor=2, mode="trilinear", align_corners=False)
        x = self.convs[-1](x)[:, :, 1:-1, 1:-1, 1:-1]
        return activate_output(x, self.final) if activate else x


def _lr_factor(c: Candidate, i: int) -> float:
    if c.lr_schedule != "cosine":
        return 1.0
    return c.lr_min_frac + (1 - c.lr_min_frac) * 0.5 * (1 + math.cos(math.pi * i / c.iterations))


def _train_one(entry: Entry, c: Candidate, seed: int) -> tuple[Generator, Preset, float]:
    """Train ``c`` on ``entry``: (generator in eval mode, preset, training wall seconds).

    The one place that drives the trainer, so an engine that grows these knobs itself
    (``ema_decay``, ``lr_schedule``) replaces only this function.
    """
    preset = c.preset.replace(iterations=c.iterations)
    tset = make_training_set([entry.image], entry.kind, preset.l, entry=entry.name)
    t0 = time.perf_counter()
    tr = SliceGANTrainer(tset, preset, seed=seed)
    if c.output_stage.startswith("resize"):
        mode = c.output_stage.partition("-")[2]
        mode = mode or ("trilinear" if entry.kind == "nphase" else "nearest")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            g = _ResizeConvGenerator(preset.gk, preset.gs, preset.gp, tr.G.gf, tr.G.final, mode)
        g.to(tr.device)
        if tr.eff["channels_last"]:
            g.to(memory_format=torch.channels_last_3d)
        tr.G = tr.g_forward = g
        betas = (float(preset.betas[0]), float(preset.betas[1]))
        tr.opt_g = torch.optim.Adam(g.parameters(), lr=float(preset.lr_g), betas=betas)
    opts = [tr.opt_g, *tr.opt_ds]
    base = [o.param_groups[0]["lr"] for o in opts]
    ema = copy.deepcopy(tr.G) if c.ema_decay else None
    for i in range(c.iterations):
        for o, lr in zip(opts, base, strict=True):
            for group in o.param_groups:
                group["lr"] = lr * _lr_factor(c, i)
        tr.step()
        if ema is not None:
            # warm-up of the decay: early averages would otherwise weight the random init
            d = min(c.ema_decay, (1 + i) / (10 + i))
            with torch.no_grad():
                for pe, pg in zip(ema.parameters(), tr.G.parameters(), strict=True):
                    pe.lerp_(pg, 1 - d)
    net = tr.G
    if ema is not None:
        net = ema
        # BatchNorm running statistics of the averaged weights, not of the live ones
        bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm3d)]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None
        net.train()
        with torch.no_grad():
            for _ in range(16):
                net(tr.noise(preset.g_batch_size))
    net.eval()
    return net, preset, time.perf_counter() - t0


def _generate(net: Generator, preset: Preset, kind: str, size: int, seed: int) -> np.ndarray:
    """One ``size^3`` volume (uint8 labels or grey) from a latent drawn on the CPU."""
    stride = math.prod(preset.gs)
    lz = -(-size // stride) + 2
    z = torch.randn(1, preset.nz, lz, lz, lz, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        out = net(z.to(next(net.parameters()).device))[0].float().cpu()
    out = out[:, :size, :size, :size]
    if kind == "nphase":
        return out.argmax(0).numpy().astype(np.uint8)
    return np.round(out[0].numpy() * 255.0).astype(np.uint8)


# --------------------------------------------------------------------------- compare


def compare(entry: Entry, volume: np.ndarray) -> dict[str, float]:
    """All fidelity metrics of ``volume`` against ``entry.image``."""
    img = entry.image
    lab2, lab3 = _binarise(entry, img), _binarise(entry, volume)
    n = int(max(lab2.max(), lab3.max())) + 1 if entry.kind == "nphase" else 2
    vf2, vf3 = V.volume_fractions(lab2, n), V.volume_fractions(lab3, n)
    present = vf2 > 0
    sa2 = V.surface_area_density(lab2, n)["total"]
    sa3 = V.surface_area_density(lab3, n)["total"]
    lag = max(1, min(32, min(lab2.shape) // 2, min(lab3.shape) // 2))
    s2_2, s2_3 = V.two_point_correlation(lab2, n, lag), V.two_point_correlation(lab3, n, lag)
    # 2D windows of the 3D slice size, so both spectra have the same resolution
    e = min(volume.shape[1], *img.shape[:2])
    rng = np.random.default_rng(0)
    ys = rng.integers(0, img.shape[0] - e + 1, 16)
    xs = rng.integers(0, img.shape[1] - e + 1, 16)
    crops = np.stack([img[y : y + e, x : x + e] for y, x in zip(ys, xs, strict=True)])
    slices = [np.moveaxis(volume, ax, 0)[::4, :e, :e] for ax in range(3)]
    cb2 = _checkerboard_score(crops)
    cb3 = float(np.mean([_checkerboard_score(s) for s in slices]))
    return {
        "vf_pts": float(100 * np.max(np.abs(vf2 - vf3))),
        "vf_pct": float(np.mean(100 * np.abs(vf2 - vf3)[present] / vf2[present])),
        "sa_pct": float(100 * abs(sa3 - sa2) / sa2) if sa2 > 0 else math.nan,
        "s2_err": _s2_curve_error(s2_2, s2_3),
        "aniso_2d": _anisotropy(lab2),
        "aniso_3d": _anisotropy(lab3),
        "cb_ratio": cb3 / cb2 if cb2 > 0 else math.nan,
    }


# --------------------------------------------------------------------------- report

_COLS = [
    ("vf_pts", "vf pts", "{:7.2f}"),
    ("vf_pct", "vf %", "{:7.1f}"),
    ("sa_pct", "SA %", "{:7.1f}"),
    ("s2_err", "S2 err", "{:7.4f}"),
    ("aniso_3d", "aniso3D", "{:7.2f}"),
    ("cb_ratio", "cb 3/2D", "{:7.2f}"),
    ("train_s", "train s", "{:7.1f}"),
]


def _row(name: str, rec: dict) -> str:
    return f"  {name:<28}" + " ".join(f.format(rec.get(k, math.nan)) for k, _, f in _COLS)


def _tile(a: np.ndarray, kind: str, edge: int) -> np.ndarray:
    a = np.asarray(a)[:edge, :edge]
    if kind == "nphase":
        top = max(int(a.max()), 1)
        a = (a.astype(np.float64) * (255.0 / top)).astype(np.uint8)
    pad = np.full((edge + 4, edge + 4), 255, np.uint8)
    pad[2 : 2 + a.shape[0], 2 : 2 + a.shape[1]] = a
    return pad


def run(args: argparse.Namespace) -> int:
    realdata = Path(args.realdata)
    if not (realdata / "micrographs.csv").is_file():
        print(f"bench fidelity: no real data at {realdata} (pass --realdata DIR); skipped")
        return 0
    torch.set_num_threads(max(1, int(args.threads)))
    candidates = build_candidates(args)
    entries = select_entries(realdata, args.two_phase, args.grayscale)
    if args.entries:
        want = {e.strip() for e in args.entries.split(",") if e.strip()}
        entries = [e for e in entries if e.name in want]
    entries = entries[: args.limit] if args.limit else entries
    if not entries:
        raise MicrolibError("no entries selected")
    print(
        f"bench fidelity: {len(entries)} entries x {len(candidates)} candidates, "
        f"{args.size}^3 volumes, {torch.get_num_threads()} thread(s)"
    )
    for c in candidates:
        print(f"  candidate {c.label}")
    header = f"  {'entry / candidate':<28}" + " ".join(f"{h:>7}" for _, h, _ in _COLS)
    results: dict[str, list[dict]] = {c.name: [] for c in candidates}
    edge = min(args.size, 128)
    montage_rows = []
    for entry in entries:
        print(
            f"\n{entry.name} ({entry.kind}, {entry.image.shape[1]}x{entry.image.shape[0]}, "
            f"{entry.note}); 2D anisotropy {_anisotropy(_binarise(entry, entry.image)):.2f}"
        )
        print(header)
        tiles = [_tile(entry.image, entry.kind, edge)]
        for c in candidates:
            net, preset, secs = _train_one(entry, c, args.seed)
            vol = _generate(net, preset, entry.kind, args.size, args.seed + 1)
            rec = {"entry": entry.name, "kind": entry.kind, **compare(entry, vol), "train_s": secs}
            results[c.name].append(rec)
            print(_row(c.name, rec), flush=True)
            tiles += [
                _tile(np.moveaxis(vol, ax, 0)[vol.shape[ax] // 2], entry.kind, edge)
                for ax in range(3)
            ]
        montage_rows.append(tiles)
    print("\nmeans over entries")
    print(header)
    for c in candidates:
        recs = results[c.name]
        mean = {k: float(np.nanmean([r[k] for r in recs])) for k, _, _ in _COLS}
        print(_row(c.name, mean))
    print(
        f"  {'MicroLib reported':<28}{'':>8}{MICROLIB_REPORTED['vf_pct']:7.1f} "
        f"{MICROLIB_REPORTED['sa_pct']:7.1f}"
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    mio.write_png(out / "montage.png", np.block(montage_rows))
    mio.write_json(
        out / "results.json", {"candidates": [c.label for c in candidates], "results": results}
    )
    print(
        f"\nmontage (row: 2D crop, then z/y/x mid slices per candidate at the same "
        f"pixel scale): {out / 'montage.png'}"
    )
    return 0


def _binarise(entry: Entry, a: np.ndarray) -> np.ndarray:
    """Labels of ``a``: as they are (n-phase), else above the 2D image's Otsu level."""
    if entry.kind == "nphase":
        return a
    return (a > _otsu(entry.image)).astype(np.uint8)
