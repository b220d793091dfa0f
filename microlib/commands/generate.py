"""``microlib generate MODEL_DIR --size N --out X.tif``: synthesise a volume.

Sizes: the standard generators make ``32 (lf - 2)`` voxels per axis (320 <=> lf 12); any
other size is generated at the next reachable size and cropped (said in the log). Large
volumes are generated in latent tiles and streamed into the TIFF, voxel-identical to a
single pass.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from pathlib import Path

from tqdm import tqdm

from microlib.device import DEVICE_CHOICES, resolve_device
from microlib.lazy import lazy_module

# the engine (torch) is imported when generation starts, not when the parser is built
generation = lazy_module("microlib.generate")
adain = lazy_module("microlib.slicegan.adain")

log = logging.getLogger("microlib.generate")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "model_dir",
        metavar="MODEL_DIR",
        help="directory with NAME_Gen.pt and NAME_params.json (or the original "
        "NAME_params.data, then pass --image-type)",
    )
    p.add_argument("--size", required=True, help="edge N, or Z,Y,X (e.g. 320 or 320,320,640)")
    p.add_argument("--out", required=True, metavar="X.tif", help="output ImageJ TIFF")
    p.add_argument(
        "--periodic", default="", help="axes to make seamlessly periodic: e.g. z,y,x or 1,1,0"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=list(DEVICE_CHOICES))
    p.add_argument("--name", help="model name when MODEL_DIR holds several")
    p.add_argument(
        "--image-type",
        choices=["nphase", "grayscale", "colour"],
        help="required for original SliceGAN model dirs without params.json",
    )
    p.add_argument("--voxel-size", type=float, help="micrometres per voxel (default: model's)")
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--max-memory-gb",
        type=float,
        help="memory budget per tile (default: 70%% of free GPU memory or half the available RAM)",
    )
    g.add_argument("--tile", help="tile edge in voxels (N or Z,Y,X), rounded up to the stride")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument(
        "--code",
        type=float,
        help="family (conditional) models: the code of the structure to generate, within "
        "the trained range",
    )
    p.add_argument(
        "--extrapolate",
        action="store_true",
        help="allow a --code outside the trained range (warned about)",
    )
    p.add_argument(
        "--no-rule-check",
        action="store_true",
        help="load a historical generator that breaks the transposed-convolution "
        "rules (no tiling or periodicity then)",
    )


def run(args: argparse.Namespace) -> int:
    if args.threads:
        import torch

        torch.set_num_threads(int(args.threads))
    device = resolve_device(args.device).type
    if args.code is not None:
        # refuse a bad code before loading any weights
        for warning in adain.check_code(
            adain.load_model_params(args.model_dir, name=args.name), args.code, args.extrapolate
        ):
            log.warning("%s", warning)
        family, params = adain.load_conditional_generator(
            args.model_dir, device=device, name=args.name
        )
        net = adain.generator_at_code(family, args.code, params.lz)
        params = dataclasses.replace(
            params, conditional={**params.conditional, "code": float(args.code)}
        )
        log.info("%s: generating at code %g", params.name, args.code)
    else:
        net, params = generation.load_generator(
            args.model_dir,
            device=device,
            name=args.name,
            image_type=args.image_type,
            check_rules=not args.no_rule_check,
        )
    plan = generation.plan_generation(params, args.size, args.periodic)
    for note in plan.notes:
        log.info("%s: %s", params.name, note)
    cells = generation.resolve_tile(net, plan, device, args.tile, args.max_memory_gb)
    t0 = time.perf_counter()
    with tqdm(
        total=None,
        unit="tile",
        desc=params.name,
        file=sys.stderr,
        mininterval=1.0 if sys.stderr.isatty() else 30.0,
        leave=False,
    ) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        info = generation.generate_to_tif(
            Path(args.out),
            net,
            params,
            plan.requested,
            seed=args.seed,
            periodic=plan.periodic,
            device=device,
            tile=[c * plan.geometry.stride for c in cells],
            voxel_size_um=args.voxel_size,
            progress=progress,
        )
    dt = time.perf_counter() - t0
    log.info(
        "%s: wrote %s: %s voxels (lf %s, %d tile%s) in %.2f s",
        params.name,
        args.out,
        "x".join(map(str, info["size"])),
        ",".join(map(str, info["latent"])),
        info["tiles"],
        "" if info["tiles"] == 1 else "s",
        dt,
    )
    return 0
