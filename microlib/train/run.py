"""One restartable training run: inputs, resume, the loop, signals and the output files.

:func:`train_run` is what ``microlib train`` calls. The full state (networks, optimisers,
random generators, iteration, log, stop-rule state) is saved to ``OUT/resume/state.pt``
every ``checkpoint_minutes`` (and every ``checkpoint_every`` iterations when set), on
SIGTERM/SIGINT and at the end; rerunning the same command resumes from it. ``OUT/resume/``
is deliberately not a declared workflow output: Snakemake deletes declared outputs before
re-running a job, and the resume state must survive that. At the end the artefacts are
written, the state moves to ``OUT/checkpoint.pt``, ``OUT/resume/`` is removed and
``NAME_params.json`` is written last with ``finished: true``; a finished run is not
retrained.

Why a run stopped is recorded: ``training.stopped`` in ``_params.json`` is ``cap`` (reached
``iterations``) or ``plateau`` (the stop rule of :mod:`microlib.train.monitor`); a run
stopped by a signal writes no ``_params.json`` and records ``stopped: signal`` in its
resume state. ``training.best_iteration`` / ``best_score`` record the best quality check.
The saved ``_Gen.pt`` is the generator at the last iteration (the weight average when
``ema_decay`` is on), not the best checkpoint: keeping a best copy would mean a second
full generator in every resume state, and with the stop rule the last one is at most
``stop_patience`` checks past the best.
"""

from __future__ import annotations

import contextlib
import logging
import math
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from microlib import io as mio
from microlib.device import resolve_device
from microlib.errors import MicrolibError
from microlib.slicegan.params import (
    load_weights,
    save_weights,
)
from microlib.slicegan.presets import Preset
from microlib.train.data import format_values, infer_image_type, make_training_set
from microlib.train.monitor import (
    MONITOR_COLUMNS,
    PlateauStop,
    compare,
    monitor_latent_edge,
    monitor_volume,
    reference_statistics,
)
from microlib.train.optim import Optimisations
from microlib.train.outputs import (
    csv_text,
    read_training_input,
    write_model_files,
)
from microlib.train.trainer import SliceGANTrainer

log = logging.getLogger("microlib.train")

STATE_FILE = "state.pt"


@dataclass
class TrainConfig:
    """Everything one training run needs besides the hyper-parameters in ``preset``.

    Attributes
    ----------
    images : list of Path
        One training image or 3D ``.tif`` (isotropic), or three images (anisotropic).
    out : Path
        Model directory.
    preset : Preset
        Hyper-parameters with any overrides applied.
    name : str, optional
        Model name (default: stem of the first image).
    image_type : {'auto', 'nphase', 'grayscale', 'colour'}
    phases : int, optional
    voxel_size : float, optional
    seed, device, threads, force, d_update, anisotropic, opts
        As the CLI flags of the same names.
    log_every : int
        Loss rows in ``train_log.csv`` every N iterations.
    checkpoint_every : int, optional
        Also checkpoint every N iterations.
    checkpoint_minutes : float
        Checkpoint when this many minutes have passed since the last one (0 = only on
        signals, ``checkpoint_every`` and at the end).
    """

    images: list[Path]
    out: Path
    preset: Preset
    name: str | None = None
    image_type: str = "auto"
    phases: int | None = None
    voxel_size: float | None = None
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    force: bool = False
    d_update: str = "per_axis"
    anisotropic: bool = False
    opts: Optimisations = field(default_factory=Optimisations)
    log_every: int = 50
    checkpoint_every: int | None = None
    checkpoint_minutes: float = 10.0


# --------------------------------------------------------------------------- helpers


class _Stop:
    """SIGTERM/SIGINT -> finish the current iteration, save, exit 143/130."""

    def __init__(self):
        self.signum: int | None = None
        self._old: dict[int, object] = {}

    def __enter__(self):
        for s in (signal.SIGTERM, signal.SIGINT):
            try:
                self._old[s] = signal.signal(s, self._handle)
            except ValueError:  # not the main thread (e.g. called from a test thread)
                pass
        return self

    def _handle(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: stop now
        self.signum = signum

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)
        return False


def monitor_interval(preset: Preset, log_every: int) -> int:
    """Iterations between quality checks (0 = off): the preset's ``monitor_every``, or by
    default 10 % of the run rounded up to a multiple of ``log_every`` so checks land on
    loss rows."""
    if preset.monitor_every is not None:
        return max(0, int(preset.monitor_every))
    tenth = max(1, math.ceil(preset.iterations / 10))
    step = max(1, int(log_every))
    return -(-tenth // step) * step


# --------------------------------------------------------------------------- run


def train_run(cfg: TrainConfig) -> int:
    """Train (or resume, or skip a finished) run; returns the process exit status.

    0 when finished (or already finished), ``128 + signal`` when stopped by SIGTERM /
    SIGINT after saving the resume state.

    Raises
    ------
    MicrolibError
        Bad input, a resume state made with other settings, unreadable files.
    """
    images = [Path(x) for x in cfg.images]
    if len(images) not in (1, 3):
        raise MicrolibError(f"give one training image or three (anisotropic), not {len(images)}")
    name = cfg.name or images[0].stem
    out = Path(cfg.out)
    resume_dir = out / "resume"
    state_path = resume_dir / STATE_FILE
    final_ckpt = out / "checkpoint.pt"
    pjson = out / f"{name}_params.json"
    gen_pt = out / f"{name}_Gen.pt"
    preset = cfg.preset

    if cfg.force:
        shutil.rmtree(resume_dir, ignore_errors=True)
    elif pjson.is_file() and gen_pt.is_file():
        with contextlib.suppress(Exception):
            done = mio.read_json(pjson)
            if done.get("finished"):
                print(
                    f"{name}: already trained ({done.get('training', {}).get('iterations_done')}"
                    f" iterations) in {out}; use --force to retrain",
                    file=sys.stderr,
                )
                return 0

    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    device = resolve_device(cfg.device).type
    for v in ("batch_size", "g_batch_size", "d_batch_size", "critic_iters", "iterations"):
        if getattr(preset, v) < 1:
            raise MicrolibError(f"--{v.replace('_', '-')} must be >= 1")

    # ---- data
    loaded = [read_training_input(p) for p in images]
    arrays = [x[0] for x in loaded]
    metas = [x[1] for x in loaded]
    vols = [x[2] for x in loaded]
    auto = cfg.image_type == "auto"
    if auto:
        image_type = infer_image_type(arrays[0], metas[0], is_volume=vols[0], entry=name)
    else:
        image_type = cfg.image_type
    tset = make_training_set(
        arrays,
        image_type,
        preset.l,
        n_phases=cfg.phases,
        metas=metas,
        volumes=vols,
        anisotropic=True if cfg.anisotropic else None,
        entry=name,
        map_levels=auto,
    )
    if auto and tset.grey_levels is not None and not cfg.phases:
        n = len(tset.grey_levels)
        log.info(
            "%s: treating %d distinct values %s as %d phases (labels 0..%d in ascending order)",
            name,
            n,
            format_values(np.asarray(tset.grey_levels)),
            n,
            n - 1,
        )
    meta0 = metas[0] or {}
    vox = cfg.voxel_size or next((x[3] for x in loaded if x[3]), None)
    target = int(preset.iterations)
    trainer = SliceGANTrainer(
        tset, preset, seed=cfg.seed, device=device, opts=cfg.opts, d_update=cfg.d_update
    )
    log_every = max(1, int(cfg.log_every))
    mon_every = monitor_interval(preset, log_every)
    min_stop = (
        preset.stop_min_iterations
        if preset.stop_min_iterations is not None
        else math.ceil(0.25 * target)
    )
    stopper = PlateauStop(patience=max(0, int(preset.stop_patience)), min_iteration=min_stop)

    # ---- resume
    rows: list[list[float]] = []
    elapsed_before = 0.0
    stopped: str | None = None
    source = state_path if state_path.is_file() else None
    if source is None and final_ckpt.is_file() and not cfg.force:
        # killed between moving the final state and writing params.json: finish from it
        source = final_ckpt
    if source is not None:
        state = load_weights(source, entry=name)
        try:
            if not isinstance(state, dict) or "trainer" not in state:
                raise MicrolibError("not a microlib training state")
            notes = trainer.load_state_dict(state["trainer"])
        except MicrolibError as exc:
            if source == final_ckpt:
                log.warning("%s: ignoring %s (%s)", name, final_ckpt, exc.reason)
                source = None
            else:
                raise MicrolibError(f"{state_path}: {exc.reason}", entry=name) from None
        else:
            rows = [list(r) for r in state.get("log", [])]
            elapsed_before = float(state.get("elapsed_s", 0.0))
            stopper.load_state_dict(state.get("stop", {}))
            if state.get("stopped") in ("cap", "plateau"):
                stopped = state["stopped"]
            for n in notes:
                log.warning("%s: %s", name, n)
            log.info(
                "%s: resumed from iteration %d/%d (%s)", name, trainer.iteration, target, source
            )
    if source is None:
        log.info(
            "%s: training %s (%s, nc=%d, %s) for %d iterations on %s",
            name,
            preset.name,
            image_type,
            tset.nc,
            "anisotropic" if tset.anisotropic else "isotropic",
            target,
            device,
        )

    def full_state(elapsed: float, why: str | None = None) -> dict:
        return {
            "trainer": trainer.state_dict(),
            "log": rows,
            "elapsed_s": elapsed,
            "target": target,
            "stop": stopper.state_dict(),
            "stopped": why,
        }

    reference = reference_statistics(tset) if mon_every else None
    mon_edge = monitor_latent_edge(
        preset.lz, preset.gk, preset.gs, preset.gp, max(int(preset.monitor_size), preset.l)
    )

    def check(it: int) -> dict[str, float]:
        net = trainer.generator_for_eval()
        vol = monitor_volume(net, image_type, preset.nz, mon_edge, trainer.device)
        row = compare(reference, vol, image_type, tset.nc)
        plateau = stopper.update(it, row["score"])
        log.info(
            "%s: it %d: %s; score %.3g (best %.3g at %d)",
            name,
            it,
            ", ".join(f"{k} {v:.3g}" for k, v in row.items() if k != "score" and math.isfinite(v)),
            row["score"],
            stopper.best_score,
            stopper.best_iteration,
        )
        row["_plateau"] = plateau
        return row

    # ---- loop
    t0 = time.perf_counter()
    start_it = trainer.iteration
    ckpt_every = int(cfg.checkpoint_every or 0)
    ckpt_s = float(cfg.checkpoint_minutes or 0.0) * 60.0
    last_ckpt = time.monotonic()
    last_log_t, last_log_it = t0, trainer.iteration
    signum: int | None = None
    with (
        _Stop() as stop,
        tqdm(
            total=target,
            initial=min(trainer.iteration, target),
            unit="it",
            desc=name,
            file=sys.stderr,
            dynamic_ncols=True,
            mininterval=1.0 if sys.stderr.isatty() else 30.0,
        ) as bar,
    ):
        while stopped is None and trainer.iteration < target:
            if stop.signum is not None:
                signum = stop.signum
                break
            trainer.step()
            bar.update(1)
            it = trainer.iteration
            mon = check(it) if mon_every and (it % mon_every == 0 or it == target) else None
            if it % log_every == 0 or it == target or mon is not None:
                now = time.perf_counter()
                vals = trainer.read_log()
                if vals is not None:
                    rate = (it - last_log_it) / max(now - last_log_t, 1e-9)
                    row = [it, vals["critic_loss"], vals["generator_loss"], vals["wasserstein"]]
                    row += [vals["gp"], elapsed_before + now - t0, rate]
                    row += [mon[k] if mon else float("nan") for k in MONITOR_COLUMNS]
                    rows.append(row)
                    post = {"wass": f"{vals['wasserstein']:.3g}", "gp": f"{vals['gp']:.3g}"}
                    if mon:
                        post["score"] = f"{mon['score']:.3g}"
                        if math.isfinite(mon["vf_err_pts"]):
                            post["vf"] = f"{mon['vf_err_pts']:.2g}"
                    bar.set_postfix(post, refresh=False)
                last_log_t, last_log_it = now, it
            if mon is not None and mon["_plateau"]:
                stopped = "plateau"
                log.info(
                    "%s: stopping at iteration %d: score has not improved for %d checks "
                    "(best %.3g at %d)",
                    name,
                    it,
                    stopper.patience,
                    stopper.best_score,
                    stopper.best_iteration,
                )
                break
            due = (ckpt_every and it % ckpt_every == 0) or (
                ckpt_s > 0 and time.monotonic() - last_ckpt >= ckpt_s
            )
            if due and it < target:
                save_weights(state_path, full_state(elapsed_before + time.perf_counter() - t0))
                mio.write_text(resume_dir / "train_log.csv", csv_text(rows))
                last_ckpt = time.monotonic()
    elapsed = elapsed_before + time.perf_counter() - t0
    if signum is not None:
        save_weights(state_path, full_state(elapsed, "signal"))
        signame = signal.Signals(signum).name
        print(
            f"microlib train: {name}: stopped by {signame} at iteration {trainer.iteration}/"
            f"{target}; state saved in {state_path}, rerun the same command to resume",
            file=sys.stderr,
        )
        return 128 + int(signum)
    stopped = stopped or "cap"

    # ---- artefacts (final state first, params.json last: see module docstring)
    save_weights(state_path, full_state(elapsed, stopped))
    best = stopper.best_iteration >= 0
    training = {
        "preset": preset.name,
        "hyperparameters": preset.to_dict(),
        "seed": cfg.seed,
        "iterations": target,
        "iterations_done": trainer.iteration,
        "stopped": stopped,
        "best_iteration": stopper.best_iteration if best else None,
        "best_score": round(stopper.best_score, 6) if best else None,
        "saved_generator": "ema" if trainer.ema is not None else "last",
        "monitor_every": mon_every,
        "device": device,
        "threads": torch.get_num_threads(),
        "wall_time_s": round(elapsed, 3),
        "anisotropic": tset.anisotropic,
        "d_update": cfg.d_update,
        "optimisations": trainer.eff,
        "log_every": log_every,
        "checkpoint_every": ckpt_every or None,
        "checkpoint_minutes": cfg.checkpoint_minutes,
        "critic_axes": "critic key i judges slices normal to volume axis i "
        "(0 = TIFF Z = original SliceGAN x)",
    }
    params = write_model_files(out, name, trainer, image_type, meta0, vox, training, images, arrays)
    mio.write_text(out / "train_log.csv", csv_text(rows))
    state_path.replace(final_ckpt)
    mio.write_json(pjson, params.to_json())
    shutil.rmtree(resume_dir, ignore_errors=True)
    session = time.perf_counter() - t0
    log.info(
        "%s: %d iterations done (%d in this session, %.1f s, %.2f it/s, stopped: %s); wrote %s",
        name,
        trainer.iteration,
        trainer.iteration - start_it,
        session,
        (trainer.iteration - start_it) / max(session, 1e-9),
        stopped,
        out,
    )
    return 0


__all__ = [
    "TrainConfig",
    "monitor_interval",
    "train_run",
]
