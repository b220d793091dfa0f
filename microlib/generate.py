"""Synthesise 3D volumes from a trained SliceGAN generator.

Python API (used by the ``generate`` command and the dataset consumer):

* :func:`load_generator` -> ``(net, params)`` from a model directory (ours or original);
* :func:`plan_generation` -> latent size per axis for a requested output size;
* :func:`synthesise` -> a uint8 ``(Z, Y, X)`` (labels/grey) or ``(Z, Y, X, 3)`` array;
* :func:`generate_to_tif` -> the same volume streamed into an ImageJ TIFF, tile by tile.

Why tiles are exact: every layer of a SliceGAN generator has padding ``p >= k - s``, so
each output voxel a latent slab produces is covered by the full kernel footprint of its
inputs; a slab of latent cells ``[a, a + m)`` therefore yields exactly the untiled output at
``[stride * a, stride * a + stride * m - trim)`` (eval-mode BatchNorm, ReLU and the output
decoding are pointwise). Neighbouring tiles share ``halo`` latent cells (2 for the standard
nets) and write non-overlapping output blocks.

Periodicity: an output block of ``stride`` voxels depends on ``halo + 1`` consecutive
latent cells, so a latent that repeats with period ``P`` cells gives an output that
repeats with period ``stride * P`` voxels. Along a periodic axis we draw ``P`` cells, append
copies of the first ``halo``, and keep the first ``stride * P`` voxels: exactly one period,
seamless when tiled. (The original code copies the last two latent planes onto the first
two, which builds the same periodic latent, and then drops the last voxel; dropping it
makes the volume one voxel shorter than its period, so the original's "periodic" volumes
have a one-plane seam when tiled. Output sizes along periodic axes are therefore
multiples of ``stride``.)
"""

from __future__ import annotations

import contextlib
import glob
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from microlib.errors import MicrolibError
from microlib.io import atomic_path, entry_id
from microlib.slicegan.networks import (
    FusedGenerator,
    Generator,
    GeneratorGeometry,
    conv_transpose_size,
    cuda_backend_flags,
    generator_geometry,
    load_generator_state,
)
from microlib.slicegan.params import ModelParams, load_model_params, load_weights

_BYTES_PER_FLOAT = 4
# peak memory / (largest input + output activation pair), used only to size tiles so it
# errs on the large side. CPU: measured 2.6-3.3 (oneDNN reorders each convolution's input
# and output into its own layout). CUDA: not measured yet; cuDNN workspaces are bounded.
_MEMORY_FACTOR = {"cpu": 3.5, "cuda": 2.0}


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
    generation from one loaded model pays the folding once.
    """
    dev = torch.device(device) if device is not None else next(net.parameters()).device
    key = (str(dev), tuple((t.data_ptr(), t._version) for t in net.state_dict().values()))
    cached = net.__dict__.get("_microlib_fused")
    if cached is not None and cached[0] == key:
        return cached[1]
    fused = FusedGenerator(net).to(dev)
    # a plain attribute, not a registered submodule: it must not enter net's state dict
    net.__dict__["_microlib_fused"] = (key, fused)
    return fused


# --------------------------------------------------------------------------- planning


@dataclass
class GenerationPlan:
    """Latent and output sizes for one generation request.

    Attributes
    ----------
    requested : tuple of int
        Requested ``(Z, Y, X)`` size.
    size : tuple of int
        Delivered size (differs from ``requested`` only along periodic axes that need a
        multiple of the stride).
    latent : tuple of int
        Latent edge ``lf`` per axis.
    periodic : tuple of bool
    geometry : GeneratorGeometry
    notes : list of str
        Human-readable remarks (crops, roundings).
    """

    requested: tuple[int, int, int]
    size: tuple[int, int, int]
    latent: tuple[int, int, int]
    periodic: tuple[bool, bool, bool]
    geometry: GeneratorGeometry
    notes: list[str] = field(default_factory=list)

    @property
    def generated(self) -> tuple[int, int, int]:
        """Untiled generator output size for :attr:`latent` (before the crop)."""
        return tuple(self.geometry.size(m) for m in self.latent)  # type: ignore[return-value]


def parse_size(size: int | str | Sequence[int]) -> tuple[int, int, int]:
    """``320`` / ``"320"`` / ``"320,320,640"`` / ``(z, y, x)`` -> ``(z, y, x)``."""
    if isinstance(size, str):
        parts = [p for p in size.replace("x", ",").split(",") if p.strip()]
        try:
            vals = [int(p) for p in parts]
        except ValueError:
            raise MicrolibError(f"bad size {size!r}: give N or Z,Y,X") from None
    elif isinstance(size, int | np.integer):
        vals = [int(size)]
    else:
        vals = [int(v) for v in size]
    if len(vals) == 1:
        vals = vals * 3
    if len(vals) != 3 or min(vals) < 1:
        raise MicrolibError(f"bad size {size!r}: give N or Z,Y,X with positive values")
    return vals[0], vals[1], vals[2]


def parse_periodic(periodic: str | Sequence[bool] | None) -> tuple[bool, bool, bool]:
    """``"z,y"`` / ``"1,0,1"`` / ``"all"`` / ``(True, False, True)`` -> flags per (Z, Y, X).

    Letters name axes of the output volume: z (first), y, x (last).
    """
    if periodic is None or periodic == "" or periodic is False:
        return (False, False, False)
    if periodic is True or periodic == "all":
        return (True, True, True)
    if isinstance(periodic, str):
        parts = [p.strip().lower() for p in periodic.split(",") if p.strip()]
        if parts and all(p in ("0", "1", "true", "false") for p in parts):
            if len(parts) != 3:
                raise MicrolibError(f"bad --periodic {periodic!r}: give three 0/1 flags or axes")
            return tuple(p in ("1", "true") for p in parts)  # type: ignore[return-value]
        flags = [False, False, False]
        for p in parts:
            if p not in ("z", "y", "x"):
                raise MicrolibError(f"bad --periodic {periodic!r}: axes are z, y, x")
            flags["zyx".index(p)] = True
        return tuple(flags)  # type: ignore[return-value]
    vals = [bool(v) for v in periodic]
    if len(vals) != 3:
        raise MicrolibError("periodic needs one flag per axis (z, y, x)")
    return vals[0], vals[1], vals[2]


def plan_generation(
    params: ModelParams,
    size: int | str | Sequence[int],
    periodic: str | Sequence[bool] | None = None,
) -> GenerationPlan:
    """Choose the latent size per axis for ``size`` voxels.

    Non-periodic axes get the smallest latent whose output reaches the size and are
    cropped to it (noted when the size is not reachable exactly); periodic axes get a
    multiple of the stride (rounded up, noted), because a crop would break the period.
    """
    req = parse_size(size)
    per = parse_periodic(periodic)
    g = generator_geometry(params.gk, params.gs, params.gp)
    if any(per) and not g.exact_tiles:
        raise MicrolibError(
            "this generator breaks the rule p >= k - s, so its borders depend "
            "on the latent edge: periodic generation is not possible",
            entry=params.name,
        )
    formula = params.output_size_formula()
    out, lat, notes = [], [], []
    for axis, (n, p) in enumerate(zip(req, per, strict=True)):
        name = "zyx"[axis]
        if p:
            cells = -(-n // g.stride)
            m = cells + g.halo
            n_out = g.stride * cells
            if n_out != n:
                notes.append(
                    f"{name}: periodic size must be a multiple of {g.stride}; "
                    f"generating {n_out} instead of {n}"
                )
        else:
            m = g.min_latent
            while g.size(m) < n:
                m += 1
            if g.exact_tiles:  # tiles need ceil(n / stride) + halo cells
                m = max(m, g.latent_for(n))
            n_out = n
            full = g.size(m)
            if full != n:
                lo = g.size(m - 1) if m - 1 >= g.min_latent else 0
                notes.append(
                    f"{name}: {n} is not reachable exactly (sizes are {formula}: "
                    f"{lo} at lf={m - 1}, {full} at lf={m}); generating {full} "
                    f"and cropping to {n}"
                )
        out.append(n_out)
        lat.append(m)
    return GenerationPlan(
        requested=req,
        size=tuple(out),
        latent=tuple(lat),  # type: ignore[arg-type]
        periodic=per,
        geometry=g,
        notes=notes,
    )


def make_latent(plan: GenerationPlan, nz: int, seed: int = 0) -> torch.Tensor:
    """Draw the latent for ``plan`` on the CPU (same seed -> same volume on any device).

    Periodic axes repeat their first ``halo`` cells at the end.
    """
    g = plan.geometry
    base = [m - g.halo if p else m for m, p in zip(plan.latent, plan.periodic, strict=True)]
    gen = torch.Generator().manual_seed(int(seed))
    z = torch.randn(1, nz, *base, generator=gen)
    for axis, p in enumerate(plan.periodic):
        if p and g.halo:
            # wrap: cells base, base+1, ... repeat cells 0, 1, ... (period = base cells)
            idx = torch.arange(base[axis] + g.halo) % base[axis]
            z = z.index_select(2 + axis, idx)
    return z.contiguous()


# --------------------------------------------------------------------------- memory


def activation_bytes(net: Generator | FusedGenerator, latent: Sequence[int]) -> int:
    """The largest (input + output) float32 activation pair of a forward pass, in bytes."""
    convs = list(net.convs)
    sizes = [list(latent)]
    for conv in convs:
        k, s, p = conv.kernel_size[0], conv.stride[0], conv.padding[0]
        sizes.append([conv_transpose_size(n, k, s, p) for n in sizes[-1]])
    chans = [convs[0].in_channels] + [c.out_channels for c in convs]
    elems = [c * math.prod(sz) for c, sz in zip(chans, sizes, strict=True)]
    peak = max(elems[i] + elems[i + 1] for i in range(len(convs)))
    return int(peak * _BYTES_PER_FLOAT)


def estimate_peak_bytes(
    net: Generator | FusedGenerator, latent: Sequence[int], device: str | torch.device = "cpu"
) -> int:
    """Estimated peak memory of generating one latent block on ``device`` (for tiling)."""
    kind = torch.device(device).type
    return int(activation_bytes(net, latent) * _MEMORY_FACTOR.get(kind, 3.5))


def default_memory_budget(device: torch.device) -> int:
    """Bytes a generation may use: 70 % of free GPU memory, or half the available RAM."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * 0.7)
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 // 2
    except OSError:
        pass
    return 4 << 30


def choose_tile(
    net: Generator | FusedGenerator,
    plan: GenerationPlan,
    budget_bytes: int,
    device: str | torch.device = "cpu",
) -> tuple[int, int, int]:
    """Core latent cells per tile ``(tz, ty, tx)`` so one tile fits ``budget_bytes``.

    Whole volume when it fits; otherwise Z slabs first (they stream straight to disk),
    then the in-plane size is halved until a tile fits.
    """
    g = plan.geometry
    cells = [-(-n // g.stride) for n in plan.size]

    def cost(t):
        return estimate_peak_bytes(net, [c + g.halo for c in t], device)

    t = list(cells)
    if cost(t) <= budget_bytes or not g.exact_tiles:
        return tuple(t)  # type: ignore[return-value]
    while cost(t) > budget_bytes and t[0] > 1:
        t[0] = max(1, t[0] // 2)
    while cost(t) > budget_bytes and (t[1] > 1 or t[2] > 1):
        if t[1] >= t[2]:
            t[1] = max(1, -(-t[1] // 2))
        else:
            t[2] = max(1, -(-t[2] // 2))
    return tuple(t)  # type: ignore[return-value]


def tile_from_voxels(plan: GenerationPlan, tile: int | Sequence[int]) -> tuple[int, int, int]:
    """Convert a tile edge in output voxels to core latent cells (at least one)."""
    s = plan.geometry.stride
    t = parse_size(tile if not isinstance(tile, int | np.integer) else int(tile))
    return tuple(max(1, -(-v // s)) for v in t)  # type: ignore[return-value]


# --------------------------------------------------------------------------- synthesis


def _decode(logits: torch.Tensor, params: ModelParams) -> torch.Tensor:
    """Raw logits ``(1, nc, a, b, c)`` -> uint8 ``(a, b, c)`` or ``(a, b, c, 3)`` on device."""
    if params.image_type == "nphase":
        # argmax of the logits equals argmax of the softmax: skip the softmax
        return logits[0].argmax(0).to(torch.uint8)
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
    dev = torch.device(device) if device is not None else next(net.parameters()).device
    g = plan.geometry
    if tile_cells is None:
        tile_cells = [-(-n // g.stride) for n in plan.size]
    fused = fused_generator(net, dev)
    z = make_latent(plan, params.nz, seed)
    rgb = params.image_type == "colour"

    def modes():
        # entered per tile, never held across a yield: the consumer runs in between
        stack = contextlib.ExitStack()
        if dev.type == "cuda":
            stack.enter_context(_cuda_flags())
        stack.enter_context(torch.inference_mode())
        return stack

    if not g.exact_tiles:
        # borders depend on the latent edge: one pass over the whole latent, then crop
        with modes():
            out = _decode(fused(z.to(dev)), params)
            out = out[: plan.size[0], : plan.size[1], : plan.size[2]].cpu().numpy()
        if progress:
            progress(1, 1)
        yield out
        return
    blocks = [_axis_blocks(n, g.stride, int(t)) for n, t in zip(plan.size, tile_cells, strict=True)]
    total = math.prod(len(b) for b in blocks)
    done = 0
    for za, zc, zo0, zo1 in blocks[0]:
        slab_shape = (zo1 - zo0, plan.size[1], plan.size[2]) + ((3,) if rgb else ())
        slab = np.empty(slab_shape, dtype=np.uint8)
        for ya, yc, yo0, yo1 in blocks[1]:
            for xa, xc, xo0, xo1 in blocks[2]:
                zz = z[:, :, za : za + zc + g.halo, ya : ya + yc + g.halo, xa : xa + xc + g.halo]
                with modes():
                    out = _decode(fused(zz.to(dev, non_blocking=True)), params)
                    out = out[: zo1 - zo0, : yo1 - yo0, : xo1 - xo0]
                    slab[:, yo0:yo1, xo0:xo1] = out.cpu().numpy()
                done += 1
                if progress:
                    progress(done, total)
        yield slab


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
    if tile is not None:
        return tile_from_voxels(plan, tile)
    dev = torch.device(device) if device is not None else next(net.parameters()).device
    budget = int(max_memory_gb * (1 << 30)) if max_memory_gb else default_memory_budget(dev)
    return choose_tile(net, plan, budget, dev)


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
            },
        }
    )
    return meta


def remove_stale_parts(path: str | os.PathLike) -> list[Path]:
    """Delete temporary files that an interrupted write of ``path`` left behind.

    :func:`microlib.io.atomic_path` writes ``.{name}.<random>.tif.part`` next to the target
    and removes it on any exception, but a killed process (SIGKILL, out of memory) cannot;
    for a large volume that is gigabytes that no rerun would ever reuse.
    """
    p = Path(path)
    removed = []
    if p.parent.is_dir():
        for stale in p.parent.glob(f".{glob.escape(p.name)}.*.part"):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
                removed.append(stale)
    return removed


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
    g = plan.geometry
    n_tiles = math.prod(
        len(_axis_blocks(n, g.stride, t)) for n, t in zip(plan.size, cells, strict=True)
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
    "volume_meta",
]
