"""One restartable family (conditional) training run: :func:`family_train_run`.

What ``microlib train A.png B.png C.png --codes 0.15,0.35,0.6`` calls. Resume, checkpoints,
signals and the order of the final files are those of single-image runs (one
:class:`microlib.train.loop.RunLoop`): the state lives
in ``OUT/resume/state.pt`` while training (saved every ``checkpoint_minutes``, every
``checkpoint_every`` iterations, on SIGTERM/SIGINT -> exit ``128 + signal``), moves to
``OUT/checkpoint.pt`` at the end, and ``NAME_params.json`` (with ``finished: true`` and the
``conditional`` block: code length, code range, each member's code) is written last.

``NAME_Gen.pt`` holds the AdaIN generator's state dict (conv weights in the original
``convs.{i}`` names plus the code MLP); it has no original-SliceGAN counterpart, so no
``NAME_params.data`` is written. ``microlib generate --code`` turns it into a plain
generator at one code (:func:`microlib.slicegan.adain.generator_at_code`). The quality
monitor of single-image runs is not used: it compares with one training image.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from microlib import io as mio
from microlib.errors import MicrolibError
from microlib.slicegan.adain import CONDITIONAL_KIND
from microlib.slicegan.params import ModelParams, save_weights, versions
from microlib.slicegan.presets import DEFAULT_CODE_DIM, DEFAULT_CODE_HIDDEN, Preset
from microlib.train.data import infer_image_type, make_training_set
from microlib.train.family import FamilyTrainer
from microlib.train.loop import RunLoop, already_finished, setup_torch
from microlib.train.outputs import read_training_input

log = logging.getLogger("microlib.train")


@dataclass
class FamilyConfig:
    """Everything one family run needs besides the hyper-parameters in ``preset``.

    Attributes
    ----------
    images : list of Path
        The family members (each an isotropic 2D image).
    codes : list of float
        One code per image, same order.
    out : Path
    preset : Preset
    name : str, optional
        Model name (default: stem of the first image + ``_family``).
    code_dim, code_hidden : int
        Code length (the paper: 128) and code-MLP width.
    image_type, phases, voxel_size, seed, device, threads, force, log_every,
    checkpoint_every, checkpoint_minutes
        As :class:`microlib.train.run.TrainConfig`.
    """

    images: list[Path]
    codes: list[float]
    out: Path
    preset: Preset
    name: str | None = None
    code_dim: int = DEFAULT_CODE_DIM
    code_hidden: int = DEFAULT_CODE_HIDDEN
    image_type: str = "auto"
    phases: int | None = None
    voxel_size: float | None = None
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    force: bool = False
    log_every: int = 50
    checkpoint_every: int | None = None
    checkpoint_minutes: float = 10.0


def parse_codes(text: str | list[float], n_images: int) -> list[float]:
    """``"0.15,0.35,0.6"`` -> floats, one per image, distinct and finite.

    Raises
    ------
    MicrolibError
        One image, a count that differs from the images', a non-number, or repeated codes.
    """
    if n_images < 2:
        raise MicrolibError(
            "--codes trains one generator for a family: give two or more images, one code each"
        )
    parts = [str(x).strip() for x in text.split(",")] if isinstance(text, str) else list(text)
    try:
        codes = [float(x) for x in parts]
    except ValueError:
        raise MicrolibError(f"--codes {text!r}: not a comma-separated list of numbers") from None
    if len(codes) != n_images:
        raise MicrolibError(f"--codes gives {len(codes)} codes for {n_images} images (one each)")
    if not all(math.isfinite(c) for c in codes):
        raise MicrolibError(f"--codes {text!r}: codes must be finite numbers")
    if len(set(codes)) != len(codes):
        raise MicrolibError(f"--codes {text!r}: each member needs its own code")
    return codes


def family_train_run(cfg: FamilyConfig) -> int:
    """Train (or resume, or skip a finished) family run; returns the exit status.

    Raises
    ------
    MicrolibError
        Bad input, a resume state made with other settings, unreadable files.
    """
    images = [Path(x) for x in cfg.images]
    codes = parse_codes(list(cfg.codes), len(images))
    name = cfg.name or f"{images[0].stem}_family"
    out = Path(cfg.out)
    preset = cfg.preset
    if already_finished(out, name, cfg.force):
        return 0
    device = setup_torch(cfg.threads, cfg.device, preset)

    loaded = [read_training_input(p) for p in images]
    if any(x[2] for x in loaded):
        raise MicrolibError("family members are 2D images, not volumes", entry=name)
    auto = cfg.image_type == "auto"
    image_type = (
        infer_image_type(loaded[0][0], loaded[0][1], entry=name) if auto else cfg.image_type
    )
    members = [
        make_training_set(
            [arr],
            image_type,
            preset.l,
            n_phases=cfg.phases,
            metas=[meta],
            volumes=[False],
            entry=f"{name}[{p.name}]",
            map_levels=auto,
        )
        for p, (arr, meta, _, _) in zip(images, loaded, strict=True)
    ]
    if len({m.nc for m in members}) != 1 or len({str(m.grey_levels) for m in members}) != 1:
        raise MicrolibError("family members differ in their phases or grey levels", entry=name)
    trainer = FamilyTrainer(
        members, codes, preset, cfg.code_dim, cfg.code_hidden, seed=cfg.seed, device=device
    )
    loop = RunLoop(trainer, out, name, int(preset.iterations))
    loop.resume(cfg.force)
    log.info(
        "%s: training a %d-member family (codes %s, %s, nc=%d) with %s for %d iterations on %s",
        name,
        len(images),
        ",".join(f"{c:g}" for c in codes),
        image_type,
        trainer.nc,
        preset.name,
        loop.target,
        device,
    )
    status = loop.run(max(1, int(cfg.log_every)), cfg.checkpoint_every, cfg.checkpoint_minutes)
    if status is not None:
        return status

    def write_model() -> ModelParams:
        params = family_params(cfg, name, trainer, image_type, loaded, images, loop.elapsed, device)
        net = trainer.generator_for_eval()
        save_weights(
            out / f"{name}_Gen.pt", {k: v.detach().cpu() for k, v in net.state_dict().items()}
        )
        save_weights(
            out / f"{name}_Disc.pt", {k: v.cpu() for k, v in trainer.D.state_dict().items()}
        )
        return params

    return loop.finish(write_model)


def family_params(
    cfg: FamilyConfig,
    name: str,
    trainer: FamilyTrainer,
    image_type: str,
    loaded: list,
    images: list[Path],
    elapsed: float,
    device: str,
) -> ModelParams:
    """The finished :class:`ModelParams` of a family run (``conditional`` block included)."""
    preset, nc = trainer.preset, trainer.nc
    meta0 = loaded[0][1] or {}
    voxels = [x[3] for x in loaded]
    vox = cfg.voxel_size or next((v for v in voxels if v), None)
    dt = meta0.get("data_type") or (
        {2: "twophase", 3: "threephase"}.get(nc, "nphase") if image_type == "nphase" else image_type
    )
    members = [
        {
            "file": p.name,
            "code": c,
            "sha256": mio.sha256_file(p),
            "shape": list(x[0].shape),
            "voxel_size_um": v,
        }
        for p, c, x, v in zip(images, trainer.codes, loaded, voxels, strict=True)
    ]
    return ModelParams(
        name=name,
        image_type=image_type,
        gk=list(preset.gk),
        gs=list(preset.gs),
        gp=list(preset.gp),
        gf=preset.gf(nc),
        dk=list(preset.dk),
        ds=list(preset.ds),
        dp=list(preset.dp),
        df=trainer.D.df,
        lz=preset.lz,
        l=preset.l,
        g_output_stage=preset.g_output_stage,
        g_hidden_stage=preset.g_hidden_stage,
        data_type=dt,
        phase_grey_values=(meta0.get("phase_grey_values") if image_type == "nphase" else None)
        or trainer.members[0].grey_levels,
        voxel_size_um=vox,
        critics={"all": f"{name}_Disc.pt"},
        training={
            "preset": preset.name,
            "hyperparameters": preset.to_dict(),
            "seed": cfg.seed,
            "iterations": int(preset.iterations),
            "iterations_done": trainer.iteration,
            "stopped": "cap",
            "saved_generator": "ema" if trainer.ema is not None else "last",
            "batches": {"real": trainer.r_batch, "fake": trainer.d_batch, "g": trainer.g_batch},
            "device": device,
            "threads": torch.get_num_threads(),
            "wall_time_s": round(elapsed, 3),
            "anisotropic": False,
            "d_update": "per_axis",
        },
        source={"images": members, "meta": meta0},
        versions=versions(),
        finished=True,
        conditional={
            "kind": CONDITIONAL_KIND,
            "code_dim": trainer.code_dim,
            "code_hidden": trainer.code_hidden,
            "code_range": [min(trainer.codes), max(trainer.codes)],
            "members": [{"file": m["file"], "code": m["code"]} for m in members],
            "critic_input": "slice channels + one constant channel holding the code",
            "generation": "AdaIN statistics frozen per code from training-size latents",
        },
    )


__all__ = ["FamilyConfig", "family_params", "family_train_run", "parse_codes"]
