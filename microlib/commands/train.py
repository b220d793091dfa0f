"""``microlib train IMAGE [IMAGE IMAGE] --out DIR``: train one SliceGAN generator.

One image trains an isotropic generator (one critic); three images train an anisotropic
one (image ``i`` is the section normal to output axis ``i``: Z, Y, X of the TIFF); a 3D
``.tif`` of labels trains on its slices along each axis.

Restartable: the full state (networks, optimisers, random generators, iteration) is saved
to ``DIR/resume/state.pt`` every ``--checkpoint-every`` iterations and on SIGTERM/SIGINT;
rerunning the same command resumes from it. ``DIR/resume/`` is deliberately not one of the
declared outputs: Snakemake deletes declared outputs before re-running a job, and the
resume state must survive that. At the end the artefacts are written, the state moves to
``DIR/checkpoint.pt`` and ``DIR/resume/`` is removed. A finished run is not retrained.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import logging
import shutil
import signal
import sys
import time
from pathlib import Path

import numpy as np

from microlib.errors import MicrolibError

log = logging.getLogger("microlib.train")

LOG_COLUMNS = [
    "iteration",
    "critic_loss",
    "generator_loss",
    "wasserstein",
    "gp",
    "elapsed_s",
    "it_per_s",
]
STATE_FILE = "state.pt"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "images",
        nargs="+",
        metavar="IMAGE",
        help="training image (PNG/TIFF), three images for anisotropic training "
        "(sections normal to Z, Y, X), or one 3D .tif of labels",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="model directory")
    p.add_argument("--name", help="model name (default: stem of the first image)")
    p.add_argument(
        "--preset",
        default="microlib",
        choices=["microlib", "table1", "tiny", "demo"],
        help="network + hyper-parameter preset (default: microlib = SliceGAN v1.1 "
        "as MicroLib trained it)",
    )
    p.add_argument("--iterations", type=int, help="generator iterations (default: preset's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument(
        "--image-type",
        default="auto",
        choices=["auto", "nphase", "grayscale", "colour"],
        help="auto: from the image's microlib metadata (refuses ambiguous images)",
    )
    p.add_argument("--phases", type=int, help="expected number of phases (n-phase)")
    p.add_argument("--voxel-size", type=float, help="micrometres per pixel (default: metadata)")
    p.add_argument("--checkpoint-every", type=int, default=100, metavar="N")
    p.add_argument("--log-every", type=int, default=50, metavar="N")
    p.add_argument("--force", action="store_true", help="retrain even if DIR holds a run")
    hp = p.add_argument_group("hyper-parameter overrides")
    hp.add_argument("--batch-size", type=int, help="real crops per axis per critic step")
    hp.add_argument("--g-batch-size", type=int, help="volumes per generator update")
    hp.add_argument("--d-batch-size", type=int, help="fake volumes per critic iteration")
    hp.add_argument("--critic-iters", type=int)
    hp.add_argument("--lr", type=float, help="learning rate of generator and critics")
    hp.add_argument("--gp-lambda", type=float)
    hp.add_argument(
        "--d-update",
        default="per_axis",
        choices=["per_axis", "summed"],
        help="per_axis: one critic step per axis (original code); summed: one "
        "step on the sum (paper's Algorithm 1)",
    )
    hp.add_argument(
        "--anisotropic", action="store_true", help="one critic per axis for a 3D .tif input"
    )
    op = p.add_argument_group("speed switches (CUDA ones are ignored on CPU)")
    op.add_argument("--no-autocast", action="store_true", help="no bf16 autocast")
    op.add_argument("--no-tf32", action="store_true")
    op.add_argument(
        "--channels-last",
        default="auto",
        choices=["auto", "on", "off"],
        help="channels-last memory format (auto: on for CPU, where it measured "
        "~10%% faster; off for CUDA until measured there)",
    )
    op.add_argument("--compile", action="store_true", help="torch.compile the generator")


# --------------------------------------------------------------------------- inputs


def read_training_input(path: str | Path) -> tuple[np.ndarray, dict, bool, float | None]:
    """(array, microlib metadata, is_volume, voxel size) of a training image or volume."""
    from microlib import io as mio

    p = Path(path)
    if not p.is_file():
        raise MicrolibError(f"training image {p} does not exist")
    try:
        if p.suffix.lower() in (".tif", ".tiff"):
            arr = mio.read_tif(p)
            tmeta = mio.read_tif_meta(p)
            meta = tmeta.get("info") or {}
            vox = tmeta.get("voxel_size_um") or meta.get("voxel_size_um")
            arr = np.squeeze(arr)
            is_volume = arr.ndim == 3 and arr.shape[-1] not in (3, 4)
            return arr, meta, is_volume, vox
        arr = mio.read_image(p)
        meta = mio.read_png_meta(p) if p.suffix.lower() == ".png" else {}
        return arr, meta, False, meta.get("voxel_size_um")
    except MicrolibError:
        raise
    except Exception as exc:  # unreadable or truncated image
        raise MicrolibError(f"cannot read {p.name}: {exc}") from None


# --------------------------------------------------------------------------- run


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


def _csv_text(rows: list[list[float]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(LOG_COLUMNS)
    for r in rows:
        w.writerow([int(r[0])] + [f"{x:.6g}" for x in r[1:]])
    return buf.getvalue()


def run(args: argparse.Namespace) -> int:
    import torch

    from microlib import io as mio
    from microlib.device import resolve_device
    from microlib.slicegan.networks import generator_state_for_original
    from microlib.slicegan.params import (
        ModelParams,
        load_weights,
        save_weights,
        versions,
        write_params_data,
    )
    from microlib.slicegan.presets import get_preset
    from microlib.train import (
        Optimisations,
        SliceGANTrainer,
        infer_image_type,
        make_training_set,
    )

    images = [Path(x) for x in args.images]
    if len(images) not in (1, 3):
        raise MicrolibError(f"give one training image or three (anisotropic), not {len(images)}")
    name = args.name or images[0].stem
    out = Path(args.out)
    resume_dir = out / "resume"
    state_path = resume_dir / STATE_FILE
    final_ckpt = out / "checkpoint.pt"
    pjson = out / f"{name}_params.json"
    gen_pt = out / f"{name}_Gen.pt"

    if args.force:
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

    if args.threads:
        torch.set_num_threads(int(args.threads))
    device = resolve_device(args.device).type

    # ---- data
    loaded = [read_training_input(p) for p in images]
    arrays = [x[0] for x in loaded]
    metas = [x[1] for x in loaded]
    vols = [x[2] for x in loaded]
    if args.image_type == "auto":
        image_type = infer_image_type(arrays[0], metas[0], is_volume=vols[0], entry=name)
    else:
        image_type = args.image_type
    preset = get_preset(args.preset).replace(
        batch_size=args.batch_size,
        g_batch_size=args.g_batch_size,
        d_batch_size=args.d_batch_size,
        critic_iters=args.critic_iters,
        lr_g=args.lr,
        lr_d=args.lr,
        gp_lambda=args.gp_lambda,
        iterations=args.iterations,
    )
    for v in ("batch_size", "g_batch_size", "d_batch_size", "critic_iters", "iterations"):
        if getattr(preset, v) < 1:
            raise MicrolibError(f"--{v.replace('_', '-')} must be >= 1")
    tset = make_training_set(
        arrays,
        image_type,
        preset.l,
        n_phases=args.phases,
        metas=metas,
        volumes=vols,
        anisotropic=True if args.anisotropic else None,
        entry=name,
    )
    meta0 = metas[0] or {}
    vox = args.voxel_size or next((x[3] for x in loaded if x[3]), None)
    target = int(preset.iterations)
    opts = Optimisations(
        autocast_bf16=not args.no_autocast,
        tf32=not args.no_tf32,
        channels_last={"auto": None, "on": True, "off": False}[args.channels_last],
        compile=args.compile,
    )
    trainer = SliceGANTrainer(
        tset, preset, seed=args.seed, device=device, opts=opts, d_update=args.d_update
    )

    # ---- resume
    rows: list[list[float]] = []
    elapsed_before = 0.0
    source = state_path if state_path.is_file() else None
    if source is None and final_ckpt.is_file() and not args.force:
        # killed between moving the final state and writing params.json: finish from it
        source = final_ckpt
    if source is not None:
        state = load_weights(source, entry=name)
        try:
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

    def full_state(elapsed: float) -> dict:
        return {
            "trainer": trainer.state_dict(),
            "log": rows,
            "elapsed_s": elapsed,
            "target": target,
        }

    # ---- loop
    from tqdm import tqdm

    t0 = time.perf_counter()
    start_it = trainer.iteration
    log_every = max(1, int(args.log_every))
    ckpt_every = max(1, int(args.checkpoint_every))
    last_log_t, last_log_it = t0, trainer.iteration
    stopped: int | None = None
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
        while trainer.iteration < target:
            if stop.signum is not None:
                stopped = stop.signum
                break
            trainer.step()
            bar.update(1)
            it = trainer.iteration
            if it % log_every == 0 or it == target:
                now = time.perf_counter()
                vals = trainer.read_log()
                if vals is not None:
                    rate = (it - last_log_it) / max(now - last_log_t, 1e-9)
                    rows.append(
                        [
                            it,
                            vals["critic_loss"],
                            vals["generator_loss"],
                            vals["wasserstein"],
                            vals["gp"],
                            elapsed_before + now - t0,
                            rate,
                        ]
                    )
                    bar.set_postfix(
                        wass=f"{vals['wasserstein']:.3g}", gp=f"{vals['gp']:.3g}", refresh=False
                    )
                    log.debug(
                        "%s: it %d critic %.4g gen %.4g wass %.4g gp %.4g (%.2f it/s)",
                        name,
                        it,
                        vals["critic_loss"],
                        vals["generator_loss"],
                        vals["wasserstein"],
                        vals["gp"],
                        rate,
                    )
                last_log_t, last_log_it = now, it
            if it % ckpt_every == 0 and it < target:
                save_weights(state_path, full_state(elapsed_before + time.perf_counter() - t0))
                mio.write_text(resume_dir / "train_log.csv", _csv_text(rows))
    elapsed = elapsed_before + time.perf_counter() - t0
    if stopped is not None:
        save_weights(state_path, full_state(elapsed))
        signame = signal.Signals(stopped).name
        print(
            f"microlib train: {name}: stopped by {signame} at iteration {trainer.iteration}/"
            f"{target}; state saved in {state_path}, rerun the same command to resume",
            file=sys.stderr,
        )
        return 128 + int(stopped)

    # ---- artefacts (final state first, params.json last: see module docstring)
    save_weights(state_path, full_state(elapsed))
    save_weights(gen_pt, generator_state_for_original(trainer.G))
    critic_files = (
        [f"{name}_Disc.pt", f"{name}_Disc_y.pt", f"{name}_Disc_z.pt"]
        if tset.anisotropic
        else [f"{name}_Disc.pt"]
    )
    for f, d in zip(critic_files, trainer.Ds, strict=True):
        save_weights(out / f, {k: v.detach().cpu().contiguous() for k, v in d.state_dict().items()})
    nc = tset.nc
    params = ModelParams(
        name=name,
        image_type=image_type,
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
        data_type=meta0.get("data_type") or _data_type(image_type, nc),
        phase_grey_values=(meta0.get("phase_grey_values") if image_type == "nphase" else None)
        or tset.grey_levels,
        voxel_size_um=vox,
        critics=(
            {"0": critic_files[0], "1": critic_files[1], "2": critic_files[2]}
            if tset.anisotropic
            else {"all": critic_files[0]}
        ),
        training={
            "preset": preset.name,
            "hyperparameters": preset.to_dict(),
            "seed": args.seed,
            "iterations": target,
            "iterations_done": trainer.iteration,
            "device": device,
            "threads": torch.get_num_threads(),
            "wall_time_s": round(elapsed, 3),
            "anisotropic": tset.anisotropic,
            "d_update": args.d_update,
            "optimisations": trainer.eff,
            "log_every": log_every,
            "checkpoint_every": ckpt_every,
            "critic_axes": "critic key i judges slices normal to volume axis i "
            "(0 = TIFF Z = original SliceGAN x)",
        },
        source={
            "images": [
                {"file": p.name, "sha256": mio.sha256_file(p), "shape": list(a.shape)}
                for p, a in zip(images, arrays, strict=True)
            ],
            "meta": meta0,
        },
        versions=versions(),
        finished=True,
    )
    write_params_data(out / f"{name}_params.data", params.original_layers())
    mio.write_text(out / "train_log.csv", _csv_text(rows))
    state_path.replace(final_ckpt)
    mio.write_json(pjson, params.to_json())
    shutil.rmtree(resume_dir, ignore_errors=True)
    session = time.perf_counter() - t0
    log.info(
        "%s: %d iterations done (%d in this session, %.1f s, %.2f it/s); wrote %s",
        name,
        trainer.iteration,
        trainer.iteration - start_it,
        session,
        (trainer.iteration - start_it) / max(session, 1e-9),
        out,
    )
    return 0


def _data_type(image_type: str, nc: int) -> str:
    if image_type != "nphase":
        return image_type
    return {2: "twophase", 3: "threephase"}.get(nc, "nphase")
