"""Synthesise 3D volumes from a trained SliceGAN generator.

Python API (used by the ``generate`` command and the dataset consumer):

* :func:`load_generator` -> ``(net, params)`` from a model directory (ours or original);
* :func:`plan_generation` -> latent size per axis for a requested output size;
* :func:`synthesise` -> a uint8 ``(Z, Y, X)`` (labels/grey) or ``(Z, Y, X, 3)`` array;
* :func:`generate_to_tif` -> the same volume streamed into an ImageJ TIFF, tile by tile.

Latent planning and tile sizing (why tiles are exact, how periodicity works) live in
:mod:`microlib.slicegan.plan`.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from microlib.errors import MicrolibError
from microlib.io import atomic_path, entry_id
from microlib.io import remove_stale_parts as remove_parts_beside
from microlib.slicegan.networks import (
    FusedGenerator,
    Generator,
    cuda_backend_flags,
    load_generator_state,
)
from microlib.slicegan.params import ModelParams, load_model_params, load_weights
from microlib.slicegan.plan import (
    GenerationPlan,
    activation_bytes,
    choose_tile,
    default_memory_budget,
    estimate_peak_bytes,
    make_latent,
    noise_field,
    noise_grid,
    parse_periodic,
    parse_size,
    plan_generation,
    tile_from_voxels,
)

# --------------------------------------------------------------------------- loading


def load_generator(
    model_dir: str | os.PathLike,
    device: str | torch.device = "cpu",
    name: str | None = None,
    image_type: str | None = None,
    check_rules: bool = True,
) -> tuple[Generator, ModelParams]:
    """Load a trained generator in eval mode.

    Parameters
    ----------
    model_dir : path
        Directory with ``NAME_Gen.pt`` and ``NAME_params.json`` (ours) or
        ``NAME_params.data`` (original SliceGAN; then ``image_type`` is required).
    device : str or torch.device
    name : str, optional
        Model name when the directory holds several.
    image_type : {'nphase', 'grayscale', 'colour'}, optional
        Required for original-format directories without params.json.
    check_rules : bool
        Refuse generators that break the paper's transposed-convolution rules (they
        cannot be tiled exactly). Turn off only to load such historical generators.

    Returns
    -------
    net : Generator
        On ``device``, ``eval()`` mode, ``requires_grad`` off.
    params : ModelParams
    """
    params = load_model_params(model_dir, name=name, image_type=image_type)
    if params.conditional:
        # its weights hold a code MLP and no BatchNorm: a code must pick the structure
        lo, hi = params.conditional["code_range"]
        raise MicrolibError(
            f"a family (conditional) model: give a code in [{lo:g}, {hi:g}] (CLI: --code)",
            entry=params.name,
        )
    try:
        # on the meta device: the weights are loaded next, a random init would be wasted
        with torch.device("meta"):
            net = params.build_generator(check_rules=check_rules)
    except MicrolibError as exc:
        raise MicrolibError(
            f"{exc.reason}; load it anyway with check_rules=False (CLI: --no-rule-check)",
            entry=params.name,
        ) from None
    sd = load_weights(Path(model_dir) / f"{params.name}_Gen.pt", entry=params.name)
    net = net.to_empty(device=torch.device(device))
    load_generator_state(net, sd, entry=params.name)
    net.eval().requires_grad_(False)
    return net, params


def fused_generator(net: Generator, device: str | torch.device | None = None) -> FusedGenerator:
    """The BatchNorm-folded inference copy of ``net`` on ``device``, built once.

    The copy is cached on ``net`` and rebuilt only when ``net``'s tensors change (their
    storage or in-place version counters) or another device is asked for, so repeated
    generation from one loaded model pays the folding once. On CPU the copy is stored
    channels-last (:func:`memory_format_for`).
    """
    dev = torch.device(device) if device is not None else next(net.parameters()).device
    key = (str(dev), tuple((t.data_ptr(), t._version) for t in net.state_dict().values()))
    cached = net.__dict__.get("_microlib_fused")
    if cached is not None and cached[0] == key:
        return cached[1]
    fused = FusedGenerator(net).to(dev, memory_format=memory_format_for(dev))
    # a plain attribute, not a registered submodule: it must not enter net's state dict
    net.__dict__["_microlib_fused"] = (key, fused)
    return fused


def memory_format_for(device: str | torch.device) -> torch.memory_format:
    """Layout of generation activations on ``device``.

    Channels-last on CPU: oneDNN's transposed 3D convolutions run about twice as fast on it
    (SliceGAN v1.1 at 320^3 on 2 threads: 11.8 s -> 6.2 s, same voxels), and the argmax over
    phases then reads contiguous memory (6 s -> 0.4 s at 320^3). CUDA keeps the default
    layout until it is measured there.
    """
    dev = torch.device(device)
    return torch.channels_last_3d if dev.type == "cpu" else torch.contiguous_format


# --------------------------------------------------------------------------- synthesis


def _decode(logits: torch.Tensor, params: ModelParams) -> torch.Tensor:
    """Raw logits ``(1, nc, a, b, c)`` -> uint8 ``(a, b, c)`` or ``(a, b, c, 3)`` on device."""
    if params.image_type == "nphase":
        # argmax of the logits equals argmax of the softmax: skip the softmax
        x = logits[0]
        if params.phase_offsets is not None:
            off = torch.tensor(params.phase_offsets, dtype=x.dtype, device=x.device)
            x = x + off.view(-1, 1, 1, 1)
        return x.argmax(0).to(torch.uint8)
    x = 0.5 * (torch.tanh(logits[0].float()) + 1.0)
    x = torch.round(x * 255.0).clamp_(0, 255).to(torch.uint8)
    return x[0] if params.image_type == "grayscale" else x.permute(1, 2, 3, 0)


def _axis_blocks(n_out: int, stride: int, core: int) -> list[tuple[int, int, int, int]]:
    """Blocks along one axis: (latent start, core cells, output start, output stop)."""
    cells = -(-n_out // stride)
    out = []
    a = 0
    while a < cells:
        c = min(core, cells - a)
        o0 = a * stride
        out.append((a, c, o0, min(n_out, o0 + c * stride)))
        a += c
    return out


def iter_z_slabs(
    net: Generator,
    params: ModelParams,
    plan: GenerationPlan,
    seed: int = 0,
    device: str | torch.device | None = None,
    tile_cells: Sequence[int] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[np.ndarray]:
    """Yield the volume as consecutive uint8 Z slabs (each ``(dz, Y, X[, 3])``).

    Parameters
    ----------
    net : Generator
    params : ModelParams
    plan : GenerationPlan
    seed : int
    device : str or torch.device, optional
        Default: the device of ``net``.
    tile_cells : (tz, ty, tx), optional
        Core latent cells per tile (default: the whole volume in one tile).
    progress : callable(done, total), optional
        Called after each tile.
    """
    if plan.inner is not None:
        yield from _upsampled_slabs(net, params, plan, seed, device, tile_cells, progress)
        return
    yield from _slabs(
        net, params, plan, seed, device, tile_cells, progress, lambda x: _decode(x, params)
    )


def _channels_last_logits(logits: torch.Tensor) -> torch.Tensor:
    """Raw logits ``(1, nc, a, b, c)`` -> float32 ``(a, b, c, nc)``."""
    return logits[0].float().permute(1, 2, 3, 0)


def _slabs(
    net: Generator,
    params: ModelParams,
    plan: GenerationPlan,
    seed: int,
    device: str | torch.device | None,
    tile_cells: Sequence[int] | None,
    progress: Callable[[int, int], None] | None,
    decode: Callable[[torch.Tensor], torch.Tensor],
) -> Iterator[np.ndarray]:
    """Z slabs of ``decode(logits)`` (``(a, b, c, ...)`` per tile) over ``plan``'s volume."""
    dev = torch.device(device) if device is not None else next(net.parameters()).device
    g = plan.geometry
    if tile_cells is None:
        tile_cells = [-(-n // g.stride) for n in plan.size]
    fused = fused_generator(net, dev)
    layout = memory_format_for(dev)
    z = make_latent(plan, params.nz, seed)
    noisy = fused.noise_weight is not None
    period = [
        g.stride * (m - g.halo) if p else None
        for m, p in zip(plan.latent, plan.periodic, strict=True)
    ]

    def run(zz: torch.Tensor, cells: Sequence[int]) -> torch.Tensor:
        """Logits of latent cut ``zz`` that starts at latent cells ``cells``."""
        noise = None
        if noisy:
            start = [g.stride * c for c in cells]
            shape = [noise_grid(params.gk, params.gs, params.gp, m) for m in zz.shape[2:]]
            noise = noise_field(seed, start, shape, period).to(dev, non_blocking=True)
        return fused(zz.to(dev, non_blocking=True).contiguous(memory_format=layout), noise)

    if not g.exact_tiles:
        # borders depend on the latent edge: one pass over the whole latent, then crop
        with _modes(dev):
            out = decode(run(z, (0, 0, 0)))
            out = out[: plan.size[0], : plan.size[1], : plan.size[2]].cpu().numpy()
        if progress:
            progress(1, 1)
        yield out
        return
    blocks = [_axis_blocks(n, g.stride, int(t)) for n, t in zip(plan.size, tile_cells, strict=True)]
    total = math.prod(len(b) for b in blocks)
    done = 0
    for za, zc, zo0, zo1 in blocks[0]:
        slab = None
        for ya, yc, yo0, yo1 in blocks[1]:
            for xa, xc, xo0, xo1 in blocks[2]:
                zz = z[:, :, za : za + zc + g.halo, ya : ya + yc + g.halo, xa : xa + xc + g.halo]
                with _modes(dev):
                    out = decode(run(zz, (za, ya, xa)))
                    out = out[: zo1 - zo0, : yo1 - yo0, : xo1 - xo0].cpu().numpy()
                if slab is None:
                    shape = (zo1 - zo0, plan.size[1], plan.size[2]) + out.shape[3:]
                    slab = np.empty(shape, dtype=out.dtype)
                slab[:, yo0:yo1, xo0:xo1] = out
                done += 1
                if progress:
                    progress(done, total)
        yield slab


def _modes(dev: torch.device) -> contextlib.ExitStack:
    """Inference mode (and the CUDA flags), entered per tile: never held across a yield,
    where the consumer runs."""
    stack = contextlib.ExitStack()
    if dev.type == "cuda":
        stack.enter_context(_cuda_flags())
    stack.enter_context(torch.inference_mode())
    return stack


#: output slices upsampled at once by a generator trained at a lower resolution
UPSAMPLE_CHUNK = 32


def _upsampled_slabs(
    net: Generator,
    params: ModelParams,
    plan: GenerationPlan,
    seed: int,
    device: str | torch.device | None,
    tile_cells: Sequence[int] | None,
    progress: Callable[[int, int], None] | None,
) -> Iterator[np.ndarray]:
    """Z slabs of a generator trained at ``1 / plan.scale`` resolution.

    The generator's logits over the inner plan (one voxel beyond each end of a
    non-periodic axis, wrapped around a periodic one) are upsampled trilinearly by the
    scale, a chunk of slices at a time, and decoded: the boundaries are the smooth level
    sets of the interpolated logits rather than blocks. With ``align_corners=False`` an
    output voxel reads its two nearest inner voxels per axis, so the chunks, each cut
    with one inner voxel of context on both sides, give exactly the whole volume's
    upsampling. The generator's whole low-resolution output is held in memory
    (``nc`` floats per inner voxel: at scale 2, half a float per output voxel per phase).
    """
    f, inner = plan.scale, plan.inner
    dev = torch.device(device) if device is not None else next(net.parameters()).device
    low = np.concatenate(
        list(_slabs(net, params, inner, seed, device, tile_cells, progress, _channels_last_logits)),
        axis=0,
    )
    x = torch.from_numpy(low).permute(3, 0, 1, 2)[None]
    del low
    for axis, p in enumerate(plan.periodic):
        if p:
            d = 2 + axis
            x = torch.cat([x.narrow(d, x.shape[d] - 1, 1), x, x.narrow(d, 0, 1)], d)
    ny, nx, z_hi = plan.size[1], plan.size[2], f + plan.size[0]
    step = max(1, UPSAMPLE_CHUNK // f)
    a = 1
    while f * a < z_hi:
        b = min(a + step, x.shape[2] - 1)
        with _modes(dev):
            up = torch.nn.functional.interpolate(
                x[:, :, a - 1 : b + 1].to(dev),
                scale_factor=f,
                mode="trilinear",
                align_corners=False,
            )
            # up[j] is output voxel f (a - 1) + j; keep those in [f a, f b) and the volume
            o0, o1 = max(f * a, f), min(f * b, z_hi)
            part = up[:, :, o0 - f * (a - 1) : o1 - f * (a - 1), f : f + ny, f : f + nx]
            yield _decode(part, params).cpu().numpy()
        a = b


def _cuda_flags():
    return cuda_backend_flags(tf32=True, benchmark=False)


def synthesise(
    net: Generator,
    params: ModelParams,
    size: int | str | Sequence[int],
    seed: int = 0,
    periodic: str | Sequence[bool] = (False, False, False),
    device: str | torch.device | None = None,
    tile: int | Sequence[int] | None = None,
    max_memory_gb: float | None = None,
) -> np.ndarray:
    """Generate one volume as a uint8 array.

    Parameters
    ----------
    net : Generator
        From :func:`load_generator`.
    params : ModelParams
    size : int, str or (z, y, x)
        Output size; any size is reachable (the generator's ``stride (lf - halo)`` sizes are
        cropped), except along periodic axes (multiples of the stride).
    seed : int
        Latent seed (drawn on the CPU: same seed, same volume on CPU and CUDA up to float
        rounding).
    periodic : (bool, bool, bool) or str
        Seamless periodicity along (Z, Y, X).
    device : optional
        Default: the device of ``net``.
    tile : int or (z, y, x), optional
        Tile edge in output voxels (rounded up to the stride). Default: chosen from
        ``max_memory_gb`` (or the free memory), the whole volume when it fits.
    max_memory_gb : float, optional
        Memory budget for one tile's activations.

    Returns
    -------
    ndarray of uint8
        ``(Z, Y, X)`` labels ``0..n-1`` (n-phase) or grey ``round(255 x)``, or
        ``(Z, Y, X, 3)`` RGB (colour).
    """
    plan = plan_generation(params, size, periodic)
    cells = resolve_tile(net, plan, device, tile, max_memory_gb)
    parts = list(iter_z_slabs(net, params, plan, seed=seed, device=device, tile_cells=cells))
    return np.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]


def resolve_tile(
    net: Generator,
    plan: GenerationPlan,
    device: str | torch.device | None,
    tile: int | Sequence[int] | None,
    max_memory_gb: float | None,
) -> tuple[int, int, int]:
    """Tile (core latent cells) from an explicit ``tile`` or a memory budget."""
    inner = plan.network
    if tile is not None:
        edge = parse_size(tile if not isinstance(tile, int | np.integer) else int(tile))
        return tile_from_voxels(inner, [-(-int(v) // plan.scale) for v in edge])
    dev = torch.device(device) if device is not None else next(net.parameters()).device
    budget = int(max_memory_gb * (1 << 30)) if max_memory_gb else default_memory_budget(dev)
    return choose_tile(net, inner, budget, dev)


def volume_meta(params: ModelParams, plan: GenerationPlan, seed: int) -> dict:
    """Metadata stored in the TIFF's ImageJ ``Info`` (CONTRIBUTING.md keys + generation)."""
    meta: dict = {}
    try:
        meta["id"] = entry_id(params.name)
    except (ValueError, TypeError):
        pass
    dt = params.data_type
    if not dt:
        dt = (
            {2: "twophase", 3: "threephase"}.get(params.nc, "nphase")
            if params.image_type == "nphase"
            else params.image_type
        )
    meta.update(
        {
            "name": params.name,
            "data_type": dt,
            "n_phases": params.nc if params.image_type != "grayscale" else 1,
            "phase_grey_values": params.phase_grey_values,
            "voxel_size_um": params.voxel_size_um,
            "generator": {
                "seed": int(seed),
                "lf": list(plan.latent),
                "size": list(plan.size),
                "periodic": list(plan.periodic),
                **({"scale": plan.scale} if plan.scale > 1 else {}),
            },
        }
    )
    if params.conditional and "code" in params.conditional:
        # a family generator taken at one code (see microlib.slicegan.adain)
        meta["generator"]["code"] = params.conditional["code"]
    return meta


def remove_stale_parts(path: str | os.PathLike) -> list[Path]:
    """Delete every temporary file that an interrupted write of ``path`` left behind.

    :func:`microlib.io.atomic_path` removes its temporary file on any exception, but a
    killed process (SIGKILL, out of memory) cannot; for a large volume that is gigabytes
    that no rerun would ever reuse. The generate job is the only writer of its volume, so
    young leftovers go too (``atomic_path`` alone keeps those of the last minute).
    """
    return remove_parts_beside(path, ".part", min_age_s=0.0)


def generate_to_tif(
    path: str | os.PathLike,
    net: Generator,
    params: ModelParams,
    size: int | str | Sequence[int],
    seed: int = 0,
    periodic: str | Sequence[bool] = (False, False, False),
    device: str | torch.device | None = None,
    tile: int | Sequence[int] | None = None,
    max_memory_gb: float | None = None,
    voxel_size_um: float | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Generate a volume and stream it into an ImageJ TIFF (atomically), tile by tile.

    Only one Z slab of uint8 output (plus one tile's activations) is in memory at a time,
    so volumes larger than memory can be written. The file matches
    :func:`microlib.io.write_tif`: ImageJ hyperstack, ``spacing``/``unit`` and resolution
    from the voxel size, metadata JSON in ``Info``.

    Returns
    -------
    dict
        ``size``, ``latent``, ``tile_cells``, ``tiles``, ``notes``, ``meta``.
    """
    import json

    import tifffile

    plan = plan_generation(params, size, periodic)
    cells = resolve_tile(net, plan, device, tile, max_memory_gb)
    vox = voxel_size_um if voxel_size_um is not None else params.voxel_size_um
    meta = volume_meta(params, plan, seed)
    meta["voxel_size_um"] = vox
    rgb = params.image_type == "colour"
    shape = plan.size + ((3,) if rgb else ())
    ij_meta: dict = {"axes": "ZYXS" if rgb else "ZYX"}
    kwargs: dict = {}
    if vox:
        ij_meta.update(spacing=float(vox), unit="um")
        kwargs["resolution"] = (1.0 / float(vox), 1.0 / float(vox))
    ij_meta["Info"] = json.dumps(meta)

    def pages() -> Iterator[np.ndarray]:
        for slab in iter_z_slabs(
            net, params, plan, seed=seed, device=device, tile_cells=cells, progress=progress
        ):
            yield from slab

    remove_stale_parts(path)
    with atomic_path(path) as tmp:
        tifffile.imwrite(
            tmp,
            data=pages(),
            shape=shape,
            dtype=np.uint8,
            imagej=True,
            metadata=ij_meta,
            photometric="rgb" if rgb else "minisblack",
            **kwargs,
        )
    net_plan = plan.network
    n_tiles = math.prod(
        len(_axis_blocks(n, net_plan.geometry.stride, t))
        for n, t in zip(net_plan.size, cells, strict=True)
    )
    return {
        "size": list(plan.size),
        "latent": list(plan.latent),
        "tile_cells": list(cells),
        "tiles": n_tiles,
        "notes": list(plan.notes),
        "meta": meta,
    }


__all__ = [
    "GenerationPlan",
    "activation_bytes",
    "choose_tile",
    "default_memory_budget",
    "estimate_peak_bytes",
    "fused_generator",
    "generate_to_tif",
    "iter_z_slabs",
    "load_generator",
    "make_latent",
    "parse_periodic",
    "parse_size",
    "plan_generation",
    "remove_stale_parts",
    "resolve_tile",
    "synthesise",
    "tile_from_voxels",
    "volume_meta",
]
