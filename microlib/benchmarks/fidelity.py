"""``microlib bench fidelity``: do generated volumes match real micrographs statistically?

Trains one generator per real micrograph (two-phase images spanning small and large
features, mid slices of the real three-phase volume, grayscale images) for each candidate
setting, generates a cube per entry and compares it with its 2D training image using the
metrics of :mod:`microlib.validate`:

* volume fraction error (largest phase error in points, and MicroLib's mean ``|a-b|/a``),
* surface-area density error (share of neighbour faces with different labels, in %),
* two-point-correlation curve error (:func:`~microlib.validate.s2_curve_error`),
* 3D anisotropy (:func:`~microlib.validate.anisotropy`; grey entries
  :func:`~microlib.validate.grey_anisotropy`; 1 is isotropic),
* 3D orientation anisotropy (:func:`~microlib.validate.orientation_anisotropy`, the
  largest in-plane structure-tensor ratio of the three slicing planes: diagonal streaks,
  which the per-axis measure misses; compare with the 2D image's value in the header),
* checkerboard ratio of 3D slices over the 2D image
  (:func:`~microlib.validate.checkerboard_ratio`),
* lattice ratio: a pattern on the 4 and 8 voxel stride grid, 3D over 2D
  (:mod:`~microlib.validate.lattice`),
* training wall time.

Candidates: ``baseline`` (the first demo settings: preset ``demo`` with SliceGAN's
transposed convolutions throughout, its 32 px slices from a 4^3 latent, no output noise,
no EMA, constant lr, 300 iterations), ``demo`` (today's ``demo``
preset as it is) and ``preset`` (``--preset`` at ``--iterations``, run when ``--preset`` is
given). A candidate with ``calibrate_phases`` fits its phase offsets after training (inside
the training time) and generates with them, as ``microlib generate`` would. Volume
fraction, surface area and S2 of grayscale entries are compared after a Gaussian
denoise of both (``GREY_DENOISE_SIGMA``) and thresholding both at the denoised 2D image's
Otsu level: thresholding a raw micrograph counts its pixel noise as interfaces (on 217,
whose grains are ~70 px across, a 1 px Gaussian removes 55 % of the raw threshold's
interface pixels and moves its fraction 1.5 points), and a generator that reproduced that
noise would not be a better microstructure. The raw threshold's surface-area error is
reported beside it (``sa_raw_pct``). The real data live outside the repository
(``--realdata``, default ``../shared/realdata``); without them the benchmark says so and
exits 0. Rows are printed, and ``results.json`` and the montage rewritten, after every
entry, so an interrupted run keeps what it finished. One training run is one draw:
generators of the same image from different seeds differ by more than most settings
being compared (784's 3D anisotropy 1.33 at seed 0, 1.23 at seed 1), so ``--seeds N`` trains
each entry N times and reports per-entry means, and the largest anisotropy both as a
mean and as a single run.
"""

from __future__ import annotations

import argparse
import csv
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from microlib import io as mio
from microlib import validate as V
from microlib.benchmarks import fidelity_report as report
from microlib.errors import MicrolibError
from microlib.slicegan.networks import Generator, generator_geometry
from microlib.slicegan.plan import noise_field, noise_grid
from microlib.slicegan.presets import Preset, get_preset
from microlib.train import SliceGANTrainer, make_training_set
from microlib.train.phase_bias import phase_bias_record
from microlib.train.scale import scaled_training_set

HELP = "3D-vs-2D statistical fidelity on real micrographs: old demo baseline, demo, a preset"

#: The old demo settings, as overrides of today's ``demo`` preset.
BASELINE = {
    "g_output_stage": "transpose",
    "g_hidden_stage": "transpose",
    "g_output_noise": False,
    "histogram_weight": 0.0,
    "orientation_weight": 0.0,
    "calibrate_phases": False,
    "augment": "none",
    "gp": (2, 2, 2, 3),
    "lz": 4,
    "l": 32,
    "grey": {},  # grey and colour entries too: no blurred variant
    "ema_decay": 0.0,
    "lr_schedule": "constant",
    "iterations": 300,
}

#: Gaussian sigma (pixels / voxels) applied to grey images and volumes before thresholding
GREY_DENOISE_SIGMA = 1.0

_REPO = Path(__file__).resolve().parents[2]
_DEFAULT_REALDATA = _REPO.parent / "shared" / "realdata"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Command-line options of ``microlib bench fidelity``."""
    p.add_argument("--realdata", default=str(_DEFAULT_REALDATA), help="real reference data dir")
    p.add_argument("--preset", help="preset of the 'preset' candidate (runs it when given)")
    p.add_argument("--iterations", type=int, help="its iterations (default: the preset's)")
    p.add_argument("--baseline-iterations", type=int, default=BASELINE["iterations"])
    p.add_argument("--demo-iterations", type=int, help="default: the demo preset's")
    p.add_argument(
        "--candidates",
        help="comma list of baseline, demo, preset (default: baseline,demo "
        "and preset when --preset is given)",
    )
    p.add_argument("--entries", help="comma list of entries (e.g. 017,031,3ph-z); default spread")
    p.add_argument("--limit", type=int, help="first N selected entries only")
    p.add_argument("--two-phase", type=int, default=10, help="two-phase images (default 10)")
    p.add_argument("--grayscale", type=int, default=2, help="grayscale images (default 2)")
    p.add_argument("--size", type=int, default=128, help="generated cube edge (default 128)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--seed", type=int, default=0, help="first training seed (default 0)")
    p.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="training runs per entry and candidate, seeds --seed, --seed+1, ...; rows and "
        "means are then per-entry means over them (default 1)",
    )
    p.add_argument("--out", default="data/benchmarks/fidelity", help="montage + results dir")


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


def _corr_len(row: dict) -> float:
    return (float(row["corr_len_x_px"]) + float(row["corr_len_y_px"])) / 2


def _spread(rows: list[dict], n: int) -> list[dict]:
    """``n`` rows evenly spaced by rank of mean correlation length (both extremes kept)."""
    rows = sorted(rows, key=_corr_len)
    if n >= len(rows):
        return rows
    if n <= 1:
        return rows[:n]
    return [rows[round(i * (len(rows) - 1) / (n - 1))] for i in range(n)]


def select_entries(
    realdata: Path, n_two: int, n_grey: int, names: set[str] | None = None
) -> list[Entry]:
    """Micrographs and slices of the real three-phase volume to train on.

    Parameters
    ----------
    realdata : Path
        Folder with ``micrographs.csv``, ``micrographs/`` and ``volumes/``.
    n_two, n_grey : int
        Two-phase and grayscale images, spread over feature size (ignored with ``names``).
    names : set of str, optional
        Exactly these entries (``3ph-z``, ``3ph-x``: the volume's mid slices).

    Returns
    -------
    list of Entry
        Two-phase images by feature size, grayscale images, three-phase slices.
    """
    table = realdata / "micrographs.csv"
    if not table.is_file():
        raise MicrolibError(f"{table} missing: not a realdata folder")
    with table.open(newline="") as f:
        rows = list(csv.DictReader(f))
    two = [r for r in rows if r["category"] == "two-phase"]
    grey = [r for r in rows if r["category"] == "grayscale" and "false-colour" not in r["notes"]]
    if names is None:
        two, grey = _spread(two, n_two), _spread(grey, n_grey)
    else:
        two = sorted((r for r in two if r["entry"] in names), key=_corr_len)
        grey = [r for r in grey if r["entry"] in names]
    out: list[Entry] = []
    for r, kind in [(r, "nphase") for r in two] + [(r, "grayscale") for r in grey]:
        img = mio.read_image(realdata / "micrographs" / r["name"])
        img = img[..., 0] if img.ndim == 3 else img
        if kind == "nphase":
            img = (img > 127).astype(np.uint8)
        note = f"corr len {_corr_len(r):.1f} px"
        out.append(Entry(r["entry"], kind, np.ascontiguousarray(img), note))
    vol_path = realdata / "volumes" / "threephase_128.tif"
    if vol_path.is_file():
        vol = mio.read_tif(vol_path)
        vol = np.searchsorted(np.unique(vol), vol).astype(np.uint8)
        mid = vol.shape[0] // 2
        for name, sl, note in (
            ("3ph-z", vol[mid], "real 3D, z slice"),
            ("3ph-x", vol[..., mid], "x slice"),
        ):
            if names is None or name in names:
                out.append(Entry(name, "nphase", np.ascontiguousarray(sl), note))
    if names is not None and (missing := names - {e.name for e in out}):
        raise MicrolibError(f"entries not found in {realdata}: {', '.join(sorted(missing))}")
    return out


# --------------------------------------------------------------------------- candidates


@dataclass
class Candidate:
    """A named training setting: the preset (its ``iterations`` included) and a label."""

    name: str
    preset: Preset
    label: str = ""


def build_candidates(args: argparse.Namespace) -> list[Candidate]:
    """The candidates named by ``--candidates``, in that order."""
    demo = get_preset("demo")
    table = {
        "baseline": lambda: demo.replace(**{**BASELINE, "iterations": args.baseline_iterations}),
        "demo": lambda: demo.replace(iterations=args.demo_iterations or demo.iterations),
        "preset": lambda: get_preset(args.preset).replace(
            iterations=args.iterations or get_preset(args.preset).iterations
        ),
    }
    default = "baseline,demo" + (",preset" if args.preset else "")
    names = [n.strip() for n in (args.candidates or default).split(",") if n.strip()]
    unknown = [n for n in names if n not in table]
    if unknown or not names:
        raise MicrolibError(f"unknown candidate(s) {unknown}; choose from {', '.join(table)}")
    if "preset" in names and not args.preset:
        raise MicrolibError("candidate 'preset' needs --preset NAME")
    out = []
    for n in names:
        p = table[n]()
        ema = f"EMA {p.ema_decay:g}" if p.ema_decay else "no EMA"
        lr = p.lr_schedule + (f" to {p.lr_min_frac:g}" if p.lr_schedule != "constant" else "")
        stages = f"{p.g_hidden_stage}/{p.g_output_stage}" + (" + noise" if p.g_output_noise else "")
        extra = f", histogram {p.histogram_weight:g}" if p.histogram_weight else ""
        extra += f", {p.d_slices} fake slices per critic step" if p.d_slices else ""
        extra += f", {p.augment} symmetries of the real crops" if p.augment != "none" else ""
        extra += f", isotropy term {p.orientation_weight:g}" if p.orientation_weight else ""
        extra += ", phase fractions calibrated" if p.calibrate_phases else ""
        if p.grey:
            extra += "; grey/colour: " + ", ".join(f"{k} {v}" for k, v in p.grey.items())
        label = f"{n} ({p.name}, {p.iterations} it, {stages} stages, {ema}, {lr} lr{extra})"
        out.append(Candidate(n, p, label))
    return out


# --------------------------------------------------------------------------- train + generate


def _train_one(
    entry: Entry, preset: Preset, seed: int
) -> tuple[Generator, float, list[float] | None, int]:
    """Train ``preset`` on ``entry``: (generator to evaluate, training wall seconds with the
    phase calibration, the phase offsets or None, the training scale)."""
    tset = make_training_set([entry.image], entry.kind, preset.l, entry=entry.name)
    tset, scale = scaled_training_set(tset, preset.train_scale, preset.l, entry.name)
    t0 = time.perf_counter()
    tr = SliceGANTrainer(tset, preset, seed=seed)
    for _ in range(preset.iterations):
        tr.step()
    net = tr.generator_for_eval()  # the EMA copy with re-estimated BatchNorm when EMA is on
    offsets = None
    if preset.calibrate_phases and entry.kind == "nphase":
        p = tr.preset
        rec = phase_bias_record(net, p.nz, p.gk, p.gs, p.gp, tset.sources, tset.nc, tr.device)
        offsets = rec["offsets"]
    return net, time.perf_counter() - t0, offsets, scale


def _generate(
    net: Generator,
    preset: Preset,
    kind: str,
    size: int,
    seed: int,
    offsets: list[float] | None = None,
    scale: int = 1,
) -> np.ndarray:
    """One ``size^3`` volume (uint8 labels or grey) from a latent drawn on the CPU; n-phase
    labels are the argmax after the phase ``offsets``, as ``microlib generate`` applies them.
    A generator trained at ``1 / scale`` resolution runs at its own and is upsampled
    trilinearly, with one voxel of context beyond each end, as ``microlib generate`` does."""
    full = size
    size = -(-size // scale) + 2 if scale > 1 else size
    lz = generator_geometry(preset.gk, preset.gs, preset.gp).latent_for(size)
    z = torch.randn(1, preset.nz, lz, lz, lz, generator=torch.Generator().manual_seed(seed))
    dev = next(net.parameters()).device
    noise = None
    if net.noise_weight is not None:  # the seed's field, as `microlib generate` draws it
        noise = noise_field(seed, (0, 0, 0), [noise_grid(preset.gk, preset.gs, preset.gp, lz)] * 3)
        noise = noise.to(dev)
    with torch.no_grad():
        out = net(z.to(dev), noise=noise)[0].float().cpu()
    out = out[:, :size, :size, :size]
    if kind == "nphase":
        # log-probabilities: the logits less a per-voxel constant, so the same argmax
        out = torch.log(out.clamp_min(1e-38))
    if scale > 1:
        out = torch.nn.functional.interpolate(
            out[None], scale_factor=scale, mode="trilinear", align_corners=False
        )[0]
        out = out[:, scale : scale + full, scale : scale + full, scale : scale + full]
    if kind == "nphase":
        if offsets is not None:
            out = out + torch.tensor(offsets).view(-1, 1, 1, 1)
        return out.argmax(0).numpy().astype(np.uint8)
    return np.round(out[0].numpy() * 255.0).astype(np.uint8)


# --------------------------------------------------------------------------- compare


def _denoise(a: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0:
        return np.asarray(a)
    return np.round(ndimage.gaussian_filter(np.asarray(a, np.float32), sigma)).astype(np.uint8)


def _labels(
    entry: Entry, volume: np.ndarray, sigma: float = GREY_DENOISE_SIGMA
) -> tuple[np.ndarray, np.ndarray]:
    """Labels of the 2D image and of ``volume``: as they are (n-phase), else, after a
    Gaussian of ``sigma`` on both alike, above the denoised 2D image's Otsu level."""
    if entry.kind == "nphase":
        return entry.image, volume
    image = _denoise(entry.image, sigma)
    level = _otsu(image)
    return (image > level).astype(np.uint8), (_denoise(volume, sigma) > level).astype(np.uint8)


def _sa_error(sa2: float, sa3: float) -> float:
    return float(100 * abs(sa3 - sa2) / sa2) if sa2 > 0 else math.nan


def compare(entry: Entry, volume: np.ndarray) -> dict[str, float]:
    """All fidelity metrics of ``volume`` against ``entry.image``.

    Parameters
    ----------
    entry : Entry
    volume : ndarray of uint8, (Z, Y, X)
        Labels (n-phase) or grey levels.

    Returns
    -------
    dict
        ``vf_pts``, ``vf_pct``, ``sa_pct``, ``s2_err``, ``aniso_2d``, ``aniso_3d``,
        ``orient_2d``, ``orient_3d``, ``cb_2d``, ``cb_3d``, ``cb_ratio``, ``lattice_ratio``
        (see the module docstring); grey entries also ``sa_raw_pct``, the surface-area
        error of both thresholded without the denoise.
    """
    lab2, lab3 = _labels(entry, volume)
    n = int(max(lab2.max(), lab3.max())) + 1 if entry.kind == "nphase" else 2
    vf2, vf3 = V.volume_fractions(lab2, n), V.volume_fractions(lab3, n)
    present = vf2 > 0
    sa2 = V.surface_area_density(lab2, n)["total"]
    sa3 = V.surface_area_density(lab3, n)["total"]
    lag = max(1, min(32, min(lab2.shape) // 2, min(lab3.shape) // 2))
    s2_2 = V.two_point_correlation(lab2, n, lag).mean(axis=1)
    s2_3 = V.two_point_correlation(lab3, n, lag).mean(axis=1)
    n_phases = n if entry.kind == "nphase" else None
    aniso = V.anisotropy if n_phases else V.grey_anisotropy
    cb2 = V.checkerboard_score(entry.image, n_phases=n_phases)
    cb3 = V.checkerboard_score(volume, n_phases=n_phases)
    sa_raw = math.nan
    if entry.kind != "nphase":
        raw2, raw3 = _labels(entry, volume, 0.0)
        sa_raw = _sa_error(
            V.surface_area_density(raw2, 2)["total"], V.surface_area_density(raw3, 2)["total"]
        )
    return {
        "vf_pts": float(100 * np.max(np.abs(vf2 - vf3))),
        "vf_pct": float(np.mean(100 * np.abs(vf2 - vf3)[present] / vf2[present])),
        "sa_pct": _sa_error(sa2, sa3),
        "sa_raw_pct": sa_raw,
        "s2_err": V.s2_curve_error(s2_2, s2_3),
        "aniso_2d": aniso(entry.image),
        "aniso_3d": aniso(volume),
        "orient_2d": V.orientation_anisotropy(entry.image, n_phases=n_phases),
        "orient_3d": V.orientation_anisotropy(volume, n_phases=n_phases),
        "cb_2d": cb2,
        "cb_3d": cb3,
        "cb_ratio": V.checkerboard_ratio(cb3, cb2),
        "lattice_ratio": V.lattice_ratio(
            V.lattice_score(volume, n_phases=n_phases),
            V.lattice_score(entry.image, n_phases=n_phases),
        )
        or math.nan,
    }


def run(args: argparse.Namespace) -> int:
    """Train, generate and compare every entry for every candidate; print and save."""
    realdata = Path(args.realdata)
    if not (realdata / "micrographs.csv").is_file():
        print(f"bench fidelity: no real data at {realdata} (pass --realdata DIR); skipped")
        return 0
    torch.set_num_threads(max(1, int(args.threads)))
    candidates = build_candidates(args)
    names = {e.strip() for e in args.entries.split(",") if e.strip()} if args.entries else None
    entries = select_entries(realdata, args.two_phase, args.grayscale, names)
    entries = entries[: args.limit] if args.limit else entries
    if not entries:
        raise MicrolibError("no entries selected")
    print(
        f"bench fidelity: {len(entries)} entries x {len(candidates)} candidates, "
        f"{args.size}^3 volumes, {torch.get_num_threads()} thread(s)"
    )
    for c in candidates:
        print(f"  candidate {c.label}")
    seeds = [args.seed + i for i in range(max(1, args.seeds))]
    if len(seeds) > 1:
        print(
            f"  seeds {seeds[0]}-{seeds[-1]} per entry; rows 'mean' and the means use their means"
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[dict]] = {c.name: [] for c in candidates}
    edge = min(args.size, 128)
    montage_rows = []
    for entry in entries:
        a2 = V.anisotropy(entry.image) if entry.kind == "nphase" else V.grey_anisotropy(entry.image)
        o2 = V.orientation_anisotropy(
            entry.image, n_phases=int(entry.image.max()) + 1 if entry.kind == "nphase" else None
        )
        print(
            f"\n{entry.name} ({entry.kind}, {entry.image.shape[1]}x{entry.image.shape[0]}, "
            f"{entry.note}); 2D anisotropy {a2:.2f}, orientation {o2:.2f}"
        )
        print(report.HEADER, flush=True)
        tiles = [report.tile(entry.image, entry.kind, edge)]
        for c in candidates:
            preset = c.preset.for_image_type(entry.kind)
            runs = []
            for seed in seeds:
                net, secs, offsets, scale = _train_one(entry, preset, seed)
                vol = _generate(net, preset, entry.kind, args.size, seed + 1, offsets, scale)
                runs.append({"entry": entry.name, "kind": entry.kind, **compare(entry, vol)})
                runs[-1].update(train_s=secs, scale=scale, seed=seed)
                if len(seeds) > 1:
                    print(report.row(f"{c.name} seed {seed}", runs[-1]), flush=True)
                if seed == seeds[0]:
                    tiles += [
                        report.tile(np.moveaxis(vol, ax, 0)[vol.shape[ax] // 2], entry.kind, edge)
                        for ax in range(3)
                    ]
            rec = runs[0] if len(runs) == 1 else report.seed_mean(runs)
            results[c.name].append(rec)
            print(report.row(c.name if len(runs) == 1 else f"{c.name} mean", rec), flush=True)
        montage_rows.append(tiles)
        report.save(out, {c.name: c.label for c in candidates}, results, montage_rows)
    print(f"\nmeans over {len(entries)} entries")
    print(report.HEADER)
    for c in candidates:
        print(report.row(c.name, report.means(results[c.name])))
    for c in candidates:
        print(f"  {c.name}: largest 3D anisotropy {report.largest_anisotropy(results[c.name])}")
    ref = report.MICROLIB_REPORTED
    print(f"  {'MicroLib reported':<28}{'':>8}{ref['vf_pct']:7.1f} {ref['sa_pct']:7.1f}")
    print(
        f"  (SAraw: grey entries only, both thresholded without the {GREY_DENOISE_SIGMA:g} px "
        "denoise; their SA column is after it)"
    )
    print(
        f"\nmontage (row: 2D crop, then z/y/x mid slices per candidate at the same "
        f"pixel scale): {out / 'montage.png'}; results: {out / 'results.json'}"
    )
    return 0
