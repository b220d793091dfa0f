"""Latent planning and tile sizing for generation: pure integer and size arithmetic.

Why tiles are exact: every layer of a SliceGAN generator has padding ``p >= k - s``, so
each output voxel a latent slab produces is covered by the full kernel footprint of its
inputs; a slab of latent cells ``[a, a + m)`` therefore yields exactly the untiled output at
``[stride * a, stride * a + stride * m - trim)`` (eval-mode BatchNorm, ReLU and the output
decoding are pointwise). Neighbouring tiles share ``halo`` latent cells (2 for the standard
nets) and write non-overlapping output blocks.

The resize output stage (:mod:`microlib.slicegan.stages`) keeps this: it has the same
output size and no output voxel of it reads a border value, so a slab is exact with the same
``halo``. So do blurred hidden layers: each is a transposed convolution of kernel ``k + 2``
padded ``p + 1`` (:func:`~microlib.slicegan.stages.check_hidden_stage`). Output noise is cut
from one global field (:func:`noise_field`) at the tile's position, so it is exact too.

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

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from microlib.errors import MicrolibError
from microlib.slicegan.networks import (
    FusedGenerator,
    Generator,
    GeneratorGeometry,
    conv_transpose_size,
    generator_geometry,
    generator_output_size,
)
from microlib.slicegan.params import ModelParams
from microlib.slicegan.stages import is_resize_stage, resize_sizes

_BYTES_PER_FLOAT = 4
# peak memory / (largest input + output activation pair), used only to size tiles so it
# errs on the large side. CPU: measured 2.6-3.3 (oneDNN reorders each convolution's input
# and output into its own layout). CUDA: not measured yet; cuDNN workspaces are bounded.
_MEMORY_FACTOR = {"cpu": 3.5, "cuda": 2.0}


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
    scale : int
        The generator's training scale (``ModelParams.scale``): it runs at ``1/scale`` of
        the output resolution and its logits are upsampled.
    inner : GenerationPlan or None
        With ``scale > 1``, the plan of the generator's own (low-resolution) output:
        ``ceil(n / scale) + 2`` voxels along non-periodic axes (the upsampling reads one
        voxel beyond each end), ``n / scale`` along periodic ones. ``latent`` and
        ``geometry`` are the inner plan's.
    """

    requested: tuple[int, int, int]
    size: tuple[int, int, int]
    latent: tuple[int, int, int]
    periodic: tuple[bool, bool, bool]
    geometry: GeneratorGeometry
    notes: list[str] = field(default_factory=list)
    scale: int = 1
    inner: GenerationPlan | None = None

    @property
    def network(self) -> GenerationPlan:
        """The plan the generator itself runs (tiles, memory, latent): :attr:`inner`
        when the generator works at a lower resolution, else this plan."""
        return self.inner if self.inner is not None else self

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
    A generator trained at a lower resolution (``params.scale > 1``) gets an inner plan
    at its own resolution (:attr:`GenerationPlan.inner`).
    """
    req = parse_size(size)
    per = parse_periodic(periodic)
    f = params.scale
    if f == 1:
        return _plan_at(params, req, per)
    inner_req = tuple(-(-n // f) if p else -(-n // f) + 2 for n, p in zip(req, per, strict=True))
    inner = _plan_at(params, inner_req, per)
    out = tuple(f * m if p else n for n, m, p in zip(req, inner.size, per, strict=True))
    notes = [
        f"{'zyx'[a]}: periodic size must be a multiple of {f * inner.geometry.stride} "
        f"(scale {f}); generating {out[a]} instead of {req[a]}"
        for a in range(3)
        if per[a] and out[a] != req[a]
    ]
    return GenerationPlan(
        requested=req,
        size=out,  # type: ignore[arg-type]
        latent=inner.latent,
        periodic=per,
        geometry=inner.geometry,
        notes=notes,
        scale=f,
        inner=inner,
    )


def _plan_at(
    params: ModelParams, req: tuple[int, int, int], per: tuple[bool, bool, bool]
) -> GenerationPlan:
    """:func:`plan_generation` at the generator's own resolution."""
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


# --------------------------------------------------------------------------- output noise

#: output noise is drawn in cubes of this edge, each from its own seed: a tile's cut of
#: the field holds the same numbers as the whole volume's, wherever the tile starts
NOISE_BLOCK = 16
_NOISE_TAG = 0x6E6F697365  # keeps the noise streams apart from the latent's


def noise_grid(gk: Sequence[int], gs: Sequence[int], gp: Sequence[int], m: int) -> int:
    """Edge of the output-noise grid (the resize stage's upsampled features) for ``m``
    latent cells: twice the hidden layers' output."""
    return 2 * generator_output_size(m, gk[:-1], gs[:-1], gp[:-1])


def noise_field(
    seed: int,
    start: Sequence[int],
    shape: Sequence[int],
    period: Sequence[int | None] = (None, None, None),
) -> torch.Tensor:
    """Standard normal noise on voxels ``[start, start + shape)`` of one unbounded grid.

    The grid is a lattice of :data:`NOISE_BLOCK` cubes, each drawn from a seed made of
    ``seed`` and its block index, so any cut of it is reproducible on its own (CPU draw:
    the same on every device). A tile of latent cells starting at ``a`` reads the grid from
    ``stride * a``, the global position of its upsampled features.

    Parameters
    ----------
    seed : int
    start, shape : (z, y, x) int
        Non-negative start and size of the cut.
    period : (z, y, x) int or None
        Along a periodic axis, the grid repeats every ``period`` voxels (a multiple of
        :data:`NOISE_BLOCK`).

    Returns
    -------
    Tensor
        ``(1, 1, *shape)`` float32 on the CPU.
    """
    b = NOISE_BLOCK
    lo = [int(s) // b for s in start]
    hi = [-(-(int(s) + int(n)) // b) for s, n in zip(start, shape, strict=True)]
    for p in period:
        if p is not None and (p < b or p % b):
            raise MicrolibError(f"noise period {p} is not a multiple of {b}")
    out = torch.empty([(h - low) * b for low, h in zip(lo, hi, strict=True)])
    for iz in range(lo[0], hi[0]):
        for iy in range(lo[1], hi[1]):
            for ix in range(lo[2], hi[2]):
                key = [
                    i % (p // b) if p is not None else i
                    for i, p in zip((iz, iy, ix), period, strict=True)
                ]
                state = np.random.SeedSequence([int(seed), _NOISE_TAG, *key]).generate_state(1)
                g = torch.Generator().manual_seed(int(state[0]))
                z0, y0, x0 = ((i - low) * b for i, low in zip((iz, iy, ix), lo, strict=True))
                out[z0 : z0 + b, y0 : y0 + b, x0 : x0 + b] = torch.randn(b, b, b, generator=g)
    o = [int(s) - low * b for s, low in zip(start, lo, strict=True)]
    cut = out[o[0] : o[0] + shape[0], o[1] : o[1] + shape[1], o[2] : o[2] + shape[2]]
    return cut[None, None].contiguous()


# --------------------------------------------------------------------------- memory


def activation_bytes(net: Generator | FusedGenerator, latent: Sequence[int]) -> int:
    """The largest (input + output) float32 activation pair of a forward pass, in bytes."""
    convs = list(net.convs)
    resize = is_resize_stage(getattr(net, "output_stage", "transpose"))
    blur = bool(getattr(net, "hidden_blur", False))
    sizes = [list(latent)]
    chans = [convs[0].in_channels]
    for i, conv in enumerate(convs):
        if resize and i == len(convs) - 1:
            # the upsampled hidden features (8x the cells, hidden channels) dominate
            up, out = resize_sizes(sizes[-1])
            sizes += [up, out]
            chans += [conv.in_channels, conv.out_channels]
            continue
        k, s, p = conv.kernel_size[0], conv.stride[0], conv.padding[0]
        sizes.append([conv_transpose_size(n, k, s, p) for n in sizes[-1]])
        chans.append(conv.out_channels)
        if blur and i < len(convs) - 1:
            # the blur's output is a second activation of the layer's channels
            sizes.append([n - 2 for n in sizes[-1]])
            chans.append(conv.out_channels)
    elems = [c * math.prod(sz) for c, sz in zip(chans, sizes, strict=True)]
    peak = max(elems[i] + elems[i + 1] for i in range(len(elems) - 1))
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
