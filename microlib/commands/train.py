"""``microlib train IMAGE [IMAGE IMAGE] --out DIR``: train one SliceGAN generator.

One image trains an isotropic generator (one critic); three images train an anisotropic
one (image ``i`` is the section normal to output axis ``i``: Z, Y, X of the TIFF); a 3D
``.tif`` of labels trains on its slices along each axis. With ``--codes a,b,c`` the images
are instead members of one family, each isotropic, and one AdaIN-conditioned generator is
trained on all of them (:mod:`microlib.train.family_run`). An image with a few distinct
values (e.g. a 0/255 PNG) is taken as n-phase without flags; grey micrographs need
``--image-type``.

Restartable and monitored: see :mod:`microlib.train.run` (resume state, checkpoints,
signals, output files) and :mod:`microlib.train.monitor` (quality checks, stop rule).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from microlib.device import DEVICE_CHOICES
from microlib.errors import MicrolibError
from microlib.lazy import lazy_module
from microlib.slicegan.presets import (
    AUGMENTATIONS,
    DEFAULT_CODE_DIM,
    DEFAULT_CODE_HIDDEN,
    LR_SCHEDULES,
    PRESETS,
    get_preset,
)

# the engine (torch) is imported when a run starts, not when the parser is built
training = lazy_module("microlib.train")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "images",
        nargs="+",
        metavar="IMAGE",
        help="training image (PNG/TIFF), three images for anisotropic training "
        "(sections normal to Z, Y, X), or one 3D .tif of labels; with --codes, the "
        "members of one family (each isotropic)",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="model directory")
    p.add_argument("--name", help="model name (default: stem of the first image)")
    p.add_argument(
        "--preset",
        default="microlib",
        choices=list(PRESETS),
        help="network + hyper-parameter preset (default: microlib = SliceGAN v1.1 "
        "as MicroLib trained it)",
    )
    p.add_argument("--iterations", type=int, help="generator iterations (default: preset's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=list(DEVICE_CHOICES))
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument(
        "--image-type",
        default="auto",
        choices=["auto", "nphase", "grayscale", "colour"],
        help="auto: from the image's microlib metadata, or n-phase for an image with at "
        "most 16 distinct values (refuses ambiguous images)",
    )
    p.add_argument("--phases", type=int, help="expected number of phases (n-phase)")
    p.add_argument("--voxel-size", type=float, help="micrometres per pixel (default: metadata)")
    p.add_argument(
        "--checkpoint-every",
        type=int,
        metavar="N",
        help="also save the resume state every N iterations (default: on the timer only)",
    )
    p.add_argument(
        "--checkpoint-minutes",
        type=float,
        default=10.0,
        metavar="M",
        help="save the resume state every M minutes (0: only on signals and at the end)",
    )
    p.add_argument("--log-every", type=int, default=50, metavar="N")
    p.add_argument("--force", action="store_true", help="retrain even if DIR holds a run")
    hp = p.add_argument_group("hyper-parameter overrides")
    hp.add_argument("--batch-size", type=int, help="real crops per axis per critic step")
    hp.add_argument("--g-batch-size", type=int, help="volumes per generator update")
    hp.add_argument("--d-batch-size", type=int, help="fake volumes per critic iteration")
    hp.add_argument(
        "--d-slices", type=int, help="fake slices per axis per critic step (0: all of them)"
    )
    hp.add_argument("--critic-iters", type=int)
    hp.add_argument("--lr", type=float, help="learning rate of generator and critics")
    hp.add_argument("--lr-g", type=float, help="generator learning rate (overrides --lr)")
    hp.add_argument("--lr-d", type=float, help="critic learning rate (overrides --lr)")
    hp.add_argument(
        "--lr-schedule",
        choices=list(LR_SCHEDULES),
        help="learning-rate schedule over --iterations (preset default: constant)",
    )
    hp.add_argument("--lr-min-frac", type=float, help="final lr / initial lr for cosine and linear")
    hp.add_argument(
        "--ema-decay",
        type=float,
        help="generator weight EMA decay, 0 = off; the saved generator is the average",
    )
    hp.add_argument("--gp-lambda", type=float)
    hp.add_argument(
        "--output-noise",
        action="store_true",
        default=None,
        help="add a learned-weight noise field before the last convolution (resize output "
        "stages only): detail at the output resolution, e.g. a grey image's fine texture",
    )
    hp.add_argument(
        "--histogram-weight",
        type=float,
        help="weight of the value-distribution term in the generator loss, 0 = off, for "
        "every image type (preset default: demo 100 for grey and colour, else 0)",
    )
    hp.add_argument(
        "--orientation-weight",
        type=float,
        help="weight of the isotropy term (structure tensor of each slicing plane) in the "
        "generator loss, 0 = off, isotropic runs only (default: the preset's)",
    )
    hp.add_argument(
        "--calibrate-phases",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="n-phase: after training, fit per-phase logit offsets so that generated volumes "
        "have the images' phase fractions; stored with the model (default: the preset's)",
    )
    hp.add_argument(
        "--augment",
        choices=list(AUGMENTATIONS),
        help="symmetries of the real crops: d4 = a random rotation/mirror of the square per "
        "crop, isotropic runs only (default: the preset's)",
    )
    hp.add_argument(
        "--train-scale",
        choices=["auto", "1", "2", "4"],
        help="train on the image downscaled by this factor and generate at that resolution "
        "(logits upsampled); auto: 2 for n-phase images whose finest phase is coarse for "
        "the crop (default: the preset's)",
    )
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
    fa = p.add_argument_group("family (conditional) training")
    fa.add_argument(
        "--codes",
        metavar="A,B,...",
        help="one code per image (same order): train one AdaIN generator for the family; "
        "generate with --code between them",
    )
    fa.add_argument(
        "--code-dim",
        type=int,
        default=DEFAULT_CODE_DIM,
        help=f"length of the code vector c = code * 1 (default {DEFAULT_CODE_DIM})",
    )
    fa.add_argument(
        "--code-hidden",
        type=int,
        default=DEFAULT_CODE_HIDDEN,
        help=f"width of the code MLP (default {DEFAULT_CODE_HIDDEN})",
    )
    mo = p.add_argument_group("quality monitoring and stop rule")
    mo.add_argument(
        "--monitor-every",
        type=int,
        metavar="N",
        help="quality check every N iterations (default: every 10%% of the run; 0: off)",
    )
    mo.add_argument(
        "--monitor-size", type=int, metavar="N", help="edge of the checked volume (default 64)"
    )
    mo.add_argument(
        "--stop-patience",
        type=int,
        metavar="K",
        help="stop when the score has not improved for K checks (default 0: off)",
    )
    mo.add_argument(
        "--stop-min-iterations",
        type=int,
        metavar="N",
        help="never stop on a plateau before iteration N (default: 25%% of the run)",
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


def run(args: argparse.Namespace) -> int:
    overrides = dict(
        batch_size=args.batch_size,
        g_batch_size=args.g_batch_size,
        d_batch_size=args.d_batch_size,
        d_slices=args.d_slices,
        critic_iters=args.critic_iters,
        lr_g=args.lr_g if args.lr_g is not None else args.lr,
        lr_d=args.lr_d if args.lr_d is not None else args.lr,
        gp_lambda=args.gp_lambda,
        g_output_noise=args.output_noise,
        augment=args.augment,
        iterations=args.iterations,
        ema_decay=args.ema_decay,
        lr_schedule=args.lr_schedule,
        lr_min_frac=args.lr_min_frac,
        monitor_every=args.monitor_every,
        monitor_size=args.monitor_size,
        stop_patience=args.stop_patience,
        stop_min_iterations=args.stop_min_iterations,
        histogram_weight=args.histogram_weight,
        orientation_weight=args.orientation_weight,
        calibrate_phases=args.calibrate_phases,
        train_scale=(
            None
            if args.train_scale is None
            else args.train_scale
            if args.train_scale == "auto"
            else int(args.train_scale)
        ),
    )
    given = {k for k, v in overrides.items() if v is not None}
    preset = get_preset(args.preset)
    # a value given on the command line holds for every image type: the preset's grey
    # fields (applied later, for grey and colour images) must not replace it
    grey = {k: v for k, v in preset.grey.items() if k not in given}
    preset = preset.replace(**overrides, grey=grey)
    if args.codes is not None:
        return _run_family(args, preset)
    cfg = training.TrainConfig(
        images=[Path(x) for x in args.images],
        out=Path(args.out),
        preset=preset,
        name=args.name,
        image_type=args.image_type,
        phases=args.phases,
        voxel_size=args.voxel_size,
        seed=args.seed,
        device=args.device,
        threads=args.threads,
        force=args.force,
        d_update=args.d_update,
        anisotropic=args.anisotropic,
        opts=training.Optimisations(
            autocast_bf16=not args.no_autocast,
            tf32=not args.no_tf32,
            channels_last={"auto": None, "on": True, "off": False}[args.channels_last],
            compile=args.compile,
        ),
        log_every=args.log_every,
        checkpoint_every=args.checkpoint_every,
        checkpoint_minutes=args.checkpoint_minutes,
    )
    return training.train_run(cfg)


def _run_family(args: argparse.Namespace, preset) -> int:
    codes = training.parse_codes(args.codes, len(args.images))
    if args.anisotropic:
        raise MicrolibError("--codes trains isotropic family members; drop --anisotropic")
    cfg = training.FamilyConfig(
        images=[Path(x) for x in args.images],
        codes=codes,
        out=Path(args.out),
        preset=preset,
        name=args.name,
        code_dim=args.code_dim,
        code_hidden=args.code_hidden,
        image_type=args.image_type,
        phases=args.phases,
        voxel_size=args.voxel_size,
        seed=args.seed,
        device=args.device,
        threads=args.threads,
        force=args.force,
        log_every=args.log_every,
        checkpoint_every=args.checkpoint_every,
        checkpoint_minutes=args.checkpoint_minutes,
    )
    return training.family_train_run(cfg)
