"""``microlib inpaint``: fill the scale-bar mask of a segmented image.

Reads ``segmented/{id}.png`` (with its ``microlib`` metadata) and ``masks/{id}.png``,
writes ``training/{name}.png``: pixels outside the mask byte-identical to the input,
the input's metadata kept, plus ``inpaint_method`` (the method that filled the mask)
and an ``inpaint`` record of what was done. ``--method auto`` (the default) picks the
method per data type (:data:`microlib.inpaint.AUTO_METHOD`; the rule and its figures
are in :mod:`microlib.inpaint`).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from microlib import inpaint as ip
from microlib import io as mio
from microlib.device import resolve_device
from microlib.errors import MicrolibError

log = logging.getLogger("microlib.inpaint")

# the scraper's cap on image size; a header declaring more is refused before decoding
MAX_PIXELS = 100_000_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    D = ip.GAN_DEFAULTS  # noqa: N806 - read like a constant table below
    parser.add_argument("--image", required=True, type=Path, help="segmented/{id}.png")
    parser.add_argument("--mask", required=True, type=Path, help="masks/{id}.png (255 = in-paint)")
    parser.add_argument("--out", required=True, type=Path, help="training/{name}.png")
    parser.add_argument(
        "--method",
        choices=ip.METHODS,
        default="auto",
        help="auto (default): the benchmark's winner for the image's data type; gan: patch "
        "GAN; exemplar: best-matching copy from the image; telea/ns/biharmonic: diffusion",
    )
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="auto: CUDA when available, else CPU (default)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: the CPUs this process may use)",
    )
    parser.add_argument(
        "--fallback",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="use telea when the GAN cannot run on this image, e.g. no mask-free "
        "patch (default: on; the record says so)",
    )
    g = parser.add_argument_group("GAN training")
    g.add_argument("--iterations", type=int, default=D["iterations"], help="generator updates")
    g.add_argument("--critic-iters", type=int, default=D["critic_iters"])
    g.add_argument("--batch-size", type=int, default=D["batch_size"])
    g.add_argument(
        "--patch", type=int, default=D["patch"], help="training patch edge (multiple of 8)"
    )
    g.add_argument("--nz", type=int, default=D["nz"], help="latent channels")
    g.add_argument("--width", type=int, default=D["width"], help="network width")
    g.add_argument("--lr", type=float, default=D["lr"])
    g.add_argument("--gp-weight", type=float, default=D["gp_weight"])
    o = parser.add_argument_group("filling (latent optimisation)")
    o.add_argument("--opt-steps", type=int, default=D["opt_steps"], help="steps per masked region")
    o.add_argument("--opt-lr", type=float, default=D["opt_lr"])
    o.add_argument(
        "--opt-restarts",
        type=int,
        default=D["opt_restarts"],
        help="latents optimised side by side; the best fit wins",
    )
    o.add_argument(
        "--fraction-weight",
        type=float,
        default=D["fraction_weight"],
        help="prior pulling the fill's phase fractions towards its context (0: off)",
    )
    o.add_argument(
        "--opt-patience",
        type=int,
        default=D["opt_patience"],
        help="stop a latent fit after this many steps without 0.5 %% gain (0: never)",
    )
    o.add_argument("--context", type=int, default=D["context"], help="known pixels around a region")
    o.add_argument(
        "--group-gap",
        type=int,
        default=D["group_gap"],
        help="mask components closer than this are filled together",
    )
    parser.add_argument("--telea-radius", type=float, default=5.0)
    E = ip.EXEMPLAR_DEFAULTS  # noqa: N806
    e = parser.add_argument_group("exemplar")
    e.add_argument(
        "--exemplar-context",
        type=int,
        default=E["context"],
        help="known pixels around a region the copied window must match",
    )
    e.add_argument(
        "--exemplar-fraction-weight",
        type=float,
        default=E["fraction_weight"],
        help="prior pulling the copy's phase fractions towards its context (0: off)",
    )


def _entry(meta: dict, out: Path) -> str:
    if meta.get("id"):
        try:
            return mio.entry_name(meta["id"])
        except ValueError:
            pass
    return out.stem


def _check_image_file(path: Path, what: str, entry: str) -> None:
    """Refuse, as one error line, a file that is empty, not an image, or whose header
    declares more than :data:`MAX_PIXELS` pixels (checked before anything is decoded)."""
    if not path.is_file():
        raise MicrolibError(f"{what} not found: {path}", entry=entry)
    if path.stat().st_size == 0:
        raise MicrolibError(f"{what} {path} is empty (0 bytes)", entry=entry)
    try:
        with warnings.catch_warnings():
            # Pillow's own (higher) bomb threshold warns; the cap below decides
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:  # reads the header only
                w, h = im.size
    except Image.DecompressionBombError as exc:
        raise MicrolibError(f"{what} {path} is too large: {exc}", entry=entry) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise MicrolibError(f"{what} {path} is not a readable image: {exc}", entry=entry) from None
    if w * h > MAX_PIXELS:
        raise MicrolibError(
            f"{what} {path} declares {w}x{h} px, more than {MAX_PIXELS} pixels", entry=entry
        )


def _read(path: Path, what: str, entry: str) -> tuple[np.ndarray, dict]:
    """The pixels and the ``microlib`` metadata of a checked image file."""
    _check_image_file(path, what, entry)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return mio.read_image(path), mio.read_png_meta(path)
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise MicrolibError(f"cannot read {what} {path}: {exc}", entry=entry) from None


def _grey_mask(mask: np.ndarray, path: Path, entry: str) -> np.ndarray:
    if mask.ndim == 3:
        if not (
            np.array_equal(mask[..., 0], mask[..., 1])
            and np.array_equal(mask[..., 0], mask[..., 2])
        ):
            raise MicrolibError(f"mask {path} is a colour image; expected 0/255 grey", entry=entry)
        mask = mask[..., 0]
    return mask


def run(args: argparse.Namespace) -> int:
    import torch

    image, meta = _read(args.image, "segmented image", args.out.stem)
    entry = _entry(meta, args.out)
    mask, _ = _read(args.mask, "mask", entry)
    mask = _grey_mask(mask, args.mask, entry)

    data_type, n_phases = meta.get("data_type"), meta.get("n_phases")
    if not data_type:
        data_type, n_phases = ip.infer_data_type(image)
        log.warning(
            "%s: %s has no microlib metadata; treating it as %s (%d)",
            entry,
            args.image,
            data_type,
            n_phases,
        )
    elif data_type in ip.NPHASE_TYPES and not n_phases:
        n_phases = int(image.max()) + 1
    n_phases = int(n_phases or (3 if data_type == "colour" else 1))

    threads = args.threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(max(int(threads), 1))
    try:
        device = resolve_device(args.device).type
    except MicrolibError as exc:
        raise MicrolibError(exc.reason, entry=entry) from exc

    try:
        m = ip.check_inputs(image, mask, data_type, n_phases)
    except MicrolibError as exc:
        raise MicrolibError(exc.reason, entry=entry) from exc
    n_masked = int(m.sum())
    log.info(
        "%s: %s %s, %d masked pixels (%.2f %%), method %s on %s",
        entry,
        data_type,
        "x".join(map(str, image.shape)),
        n_masked,
        100.0 * n_masked / m.size,
        args.method,
        device,
    )

    params = {k: getattr(args, k) for k in ip.GAN_DEFAULTS}
    exemplar = {
        "context": args.exemplar_context,
        "fraction_weight": args.exemplar_fraction_weight,
        "group_gap": args.group_gap,
    }
    regions = len(ip.mask_regions(m, args.group_gap)) if n_masked else 0
    t0 = time.perf_counter()
    fallback_reason = None
    requested = ip.resolve_method(args.method, data_type)
    method = requested if n_masked else "none"
    log.info("%s: method %s resolves to %s for %s", entry, args.method, requested, data_type)
    if method == "gan":
        total = args.iterations + regions * args.opt_steps
        with tqdm(
            total=total,
            desc=f"inpaint {entry}",
            unit="step",
            file=sys.stderr,
            mininterval=0.5 if sys.stderr.isatty() else 15.0,
            leave=False,
        ) as bar:
            try:
                out, info = ip.inpaint(
                    image,
                    m,
                    data_type=data_type,
                    n_phases=n_phases,
                    method="gan",
                    seed=args.seed,
                    device=device,
                    progress=bar.update,
                    **params,
                )
            except MicrolibError as exc:
                if not args.fallback:
                    raise MicrolibError(exc.reason, entry=entry) from exc
                fallback_reason = exc.reason
                method = "telea"
                log.warning(
                    "%s: GAN in-painting impossible (%s); falling back to telea", entry, exc.reason
                )
    if method != "gan":
        out, info = ip.inpaint(
            image,
            m,
            data_type=data_type,
            n_phases=n_phases,
            method="telea" if method == "none" else method,
            telea_radius=args.telea_radius,
            exemplar=exemplar,
        )
    seconds = time.perf_counter() - t0

    # the hard contract of this stage, checked before anything is written
    if out.shape != image.shape or out.dtype != np.uint8 or not np.array_equal(out[~m], image[~m]):
        raise MicrolibError("in-painting changed pixels outside the mask (bug)", entry=entry)

    record = {
        "method": info["method"],
        "requested": args.method,
        "masked_pixels": n_masked,
        "regions": regions,
        "seed": args.seed,
        "seconds": round(seconds, 2),
    }
    if info["method"] == "gan":
        record.update(
            iterations=args.iterations,
            opt_steps=args.opt_steps,
            device=device,
            params={k: v for k, v in params.items() if k not in ("iterations", "opt_steps")},
            wasserstein=info["training"]["wasserstein"],
            patches_eligible=info["training"]["patches_eligible"],
            context_mse=[r["context_mse"] for r in info["regions"]],
        )
    elif info["method"] in ("telea", "ns"):
        record.update(radius=args.telea_radius)
    elif info["method"] == "exemplar":
        record.update(
            params=info["params"],
            sources=[r["source"] for r in info["regions"]],
            telea_regions=info["telea_regions"],
        )
    if fallback_reason:
        record.update(fallback_from="gan", fallback_reason=fallback_reason)
    out_meta = {**meta, "inpaint_method": info["method"], "inpaint": record}
    if not meta:
        out_meta.update(data_type=data_type, n_phases=n_phases)
    mio.write_png(args.out, out, out_meta)
    log.info(
        "%s: wrote %s (inpaint_method %s, requested %s, %.1f s)",
        entry,
        args.out,
        info["method"],
        args.method,
        seconds,
    )
    return 0
