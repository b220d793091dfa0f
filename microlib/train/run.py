"""One restartable training run: its inputs, trainer, quality checks and output files.

:func:`train_run` is what ``microlib train`` calls; the loop around the trainer (resume,
progress, checkpoints, signals, the order of the final files) is
:class:`microlib.train.loop.RunLoop`, shared with family runs. The full state (networks, optimisers,
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

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from microlib.errors import MicrolibError
from microlib.slicegan.params import ModelParams
from microlib.slicegan.presets import Preset
from microlib.train.data import format_values, infer_image_type, make_training_set
from microlib.train.loop import RunLoop, already_finished, setup_torch
from microlib.train.monitor import (
    PlateauStop,
    compare,
    monitor_latent_edge,
    monitor_volume,
    reference_statistics,
)
from microlib.train.optim import Optimisations
from microlib.train.outputs import read_training_input, write_model_files
from microlib.train.phase_bias import phase_bias_record
from microlib.train.scale import scaled_training_set
from microlib.train.trainer import SliceGANTrainer
from microlib.validate import finest_chord

log = logging.getLogger("microlib.train")


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


def _fmt(values) -> str:
    return ", ".join(f"{float(v):.3f}" for v in values)


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
    preset = cfg.preset
    if already_finished(out, name, cfg.force):
        return 0
    device = setup_torch(cfg.threads, cfg.device, preset)

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
    preset = preset.for_image_type(image_type)
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
    full = tset.sources[0]
    tset, scale = scaled_training_set(tset, preset.train_scale, preset.l, name)
    if scale > 1:
        log.info(
            "%s: training at 1/%d resolution (finest phase's mean chord %.1f px, crop %d px)",
            name,
            scale,
            finest_chord(full, tset.nc) if image_type == "nphase" else math.nan,
            preset.l,
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

    loop = RunLoop(trainer, out, name, target, stopper)
    if loop.resume(cfg.force) is None:
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
    reference = reference_statistics(tset) if mon_every else None
    mon_edge = monitor_latent_edge(
        preset.lz, preset.gk, preset.gs, preset.gp, max(int(preset.monitor_size), preset.l)
    )

    def check(it: int) -> dict[str, float]:
        net = trainer.generator_for_eval()
        vol = monitor_volume(net, image_type, preset.nz, mon_edge, trainer.device)
        return compare(reference, vol, image_type, tset.nc)

    status = loop.run(
        log_every,
        cfg.checkpoint_every,
        cfg.checkpoint_minutes,
        check if mon_every else None,
        mon_every,
    )
    if status is not None:
        return status

    def write_model() -> ModelParams:
        best = stopper.best_iteration >= 0
        training = {
            "preset": preset.name,
            "hyperparameters": preset.to_dict(),
            "seed": cfg.seed,
            "iterations": target,
            "iterations_done": trainer.iteration,
            "stopped": loop.stopped,
            "best_iteration": stopper.best_iteration if best else None,
            "best_score": round(stopper.best_score, 6) if best else None,
            "saved_generator": "ema" if trainer.ema is not None else "last",
            "monitor_every": mon_every,
            "device": device,
            "threads": torch.get_num_threads(),
            "wall_time_s": round(loop.elapsed, 3),
            "anisotropic": tset.anisotropic,
            "scale": scale,
            "d_update": cfg.d_update,
            "optimisations": trainer.eff,
            "log_every": log_every,
            "checkpoint_every": int(cfg.checkpoint_every or 0) or None,
            "checkpoint_minutes": cfg.checkpoint_minutes,
            "critic_axes": "critic key i judges slices normal to volume axis i "
            "(0 = TIFF Z = original SliceGAN x)",
        }
        # built once: with EMA each call re-estimates the BatchNorm statistics
        net = trainer.generator_for_eval()
        bias = None
        if preset.calibrate_phases and image_type == "nphase":
            p = preset
            bias = phase_bias_record(
                net,
                p.nz,
                p.gk,
                p.gs,
                p.gp,
                tset.sources,
                tset.nc,
                trainer.device,
            )
            pairs = zip(bias["raw_vf"], bias["target_vf"], strict=True)
            worst = max(abs(a - b) for a, b in pairs)
            log.info(
                "%s: phase offsets [%s] bring the fractions [%s] to [%s] (images [%s]; "
                "%.2f points off without)",
                name,
                _fmt(bias["offsets"]),
                _fmt(bias["raw_vf"]),
                _fmt(bias["fitted_vf"]),
                _fmt(bias["target_vf"]),
                100.0 * worst,
            )
        return write_model_files(
            out, name, trainer, image_type, meta0, vox, training, images, arrays, bias, net, scale
        )

    return loop.finish(write_model)


__all__ = [
    "TrainConfig",
    "monitor_interval",
    "train_run",
]
