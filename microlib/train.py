"""SliceGAN training: WGAN-GP on 2D slices of a 3D generator (Kench & Cooper 2021).

Pure functions and a trainer object on arrays; no paths, logging configuration or
progress bars (those live in :mod:`microlib.commands.train`).

* :func:`infer_image_type` / :func:`prepare_training_array` validate a training image and
  bring it to the canonical form (uint8 labels ``0..n-1``, uint8 grey, or uint8 RGB).
* :func:`make_training_set` bundles one image (isotropic), one 3D label volume (slices
  along each axis) or three images (anisotropic, one critic per axis).
* :class:`SliceGANTrainer` runs Algorithm 1 (isotropic) / S1 (anisotropic): per generator
  iteration, ``critic_iters`` critic iterations (one fake batch, every slice along each
  axis, real crops sampled on the device, gradient penalty against fake slices drawn at
  random from all of them) and one generator update through every critic.

Axis convention: a generated volume is ``(Z, Y, X)`` = tensor dims ``(2, 3, 4)``. Training
image ``i`` of an anisotropic run is compared with slices normal to axis ``i``: image 0 is
the Z section (rows Y, columns X), image 1 the Y section (rows Z, columns X), image 2 the
X section (rows Z, columns Y).
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from microlib.errors import MicrolibError
from microlib.slicegan.networks import Critic, Generator, critic_output_size, generator_output_size
from microlib.slicegan.params import IMAGE_TYPES
from microlib.slicegan.presets import Preset

MAX_PHASES = 16
TRAIN_STATE_FORMAT = "microlib-slicegan-train/1"
from microlib.datatypes import NPHASE_TYPES as _NPHASE_DATA_TYPES  # noqa: E402

# --------------------------------------------------------------------------- inputs


def _is_grey_rgb(a: np.ndarray) -> bool:
    return (
        a.ndim == 3
        and a.shape[2] == 3
        and bool(np.array_equal(a[..., 0], a[..., 1]) and np.array_equal(a[..., 0], a[..., 2]))
    )


def infer_image_type(
    array: np.ndarray, meta: dict | None = None, is_volume: bool = False, entry: str | None = None
) -> str:
    """Decide the image type of a training image when the user did not state it.

    Uses the ``microlib`` PNG/TIFF metadata when present (``data_type``); otherwise only
    unambiguous cases are accepted: labels exactly ``0..n-1`` (2 <= n <= 16) are n-phase,
    an RGB image whose channels differ is colour. Anything else (e.g. a grey micrograph)
    is refused with a message asking for ``--image-type``.

    Returns
    -------
    {'nphase', 'grayscale', 'colour'}
    """
    dt = (meta or {}).get("data_type")
    if dt:
        if dt in _NPHASE_DATA_TYPES:
            return "nphase"
        if dt in ("grayscale", "colour"):
            return dt
        raise MicrolibError(f"unknown data_type {dt!r} in the image metadata", entry=entry)
    a = np.asarray(array)
    if a.ndim == 3 and not is_volume:
        if not _is_grey_rgb(a):
            return "colour"
        a = a[..., 0]
    values = np.unique(a)
    if 2 <= values.size <= MAX_PHASES and np.array_equal(values, np.arange(values.size)):
        return "nphase"
    raise MicrolibError(
        f"cannot tell the image type: no microlib metadata and {values.size} distinct grey "
        f"values that are not labels 0..n-1; pass --image-type grayscale (or nphase with "
        f"--phases N to map {values.size} grey levels to labels)",
        entry=entry,
    )


def prepare_training_array(
    array: np.ndarray,
    image_type: str,
    n_phases: int | None = None,
    meta: dict | None = None,
    is_volume: bool = False,
    entry: str | None = None,
) -> tuple[np.ndarray, dict]:
    """Validate a training image and return it in canonical form.

    Parameters
    ----------
    array : ndarray
        ``(H, W)`` grey/labels, ``(H, W, 3)`` RGB, or ``(D, H, W)`` labels/grey when
        ``is_volume``.
    image_type : {'nphase', 'grayscale', 'colour'}
    n_phases : int, optional
        Expected phase count (``--phases``). For an image whose values are not labels
        ``0..n-1`` it also allows mapping ``n`` distinct grey levels to labels in ascending
        order (the original SliceGAN convention).
    meta : dict, optional
        ``microlib`` metadata (``n_phases``, ``data_type``) of the image.
    is_volume : bool
        ``array`` is a 3D volume.

    Returns
    -------
    canonical : ndarray of uint8
        n-phase: labels ``0..n-1``; grayscale: grey 0..255; colour: ``(H, W, 3)`` RGB.
    info : dict
        ``n_phases`` (channels for the network), ``grey_levels`` (original values of the
        labels when they were mapped, else None).
    """
    if image_type not in IMAGE_TYPES:
        raise MicrolibError(
            f"unknown image type {image_type!r} ({', '.join(IMAGE_TYPES)})", entry=entry
        )
    a = np.asarray(array)
    meta = meta or {}
    want_dims = 3 if is_volume else 2
    if image_type == "colour":
        if is_volume:
            raise MicrolibError("colour training needs a 2D RGB image, not a volume", entry=entry)
        if a.ndim != 3 or a.shape[2] not in (3, 4):
            raise MicrolibError(
                f"colour training needs an RGB image, got shape {a.shape}", entry=entry
            )
        a = a[..., :3]
        return _to_uint8(a, entry), {"n_phases": 3, "grey_levels": None}
    # n-phase and grayscale are single-channel
    if not is_volume and a.ndim == 3 and a.shape[2] in (3, 4):
        if not _is_grey_rgb(a[..., :3]):
            raise MicrolibError(
                f"a colour image cannot be trained as {image_type}; pass --image-type colour",
                entry=entry,
            )
        a = a[..., 0]
    if a.ndim != want_dims:
        raise MicrolibError(
            f"expected a {'3D volume' if is_volume else '2D image'}, got shape {a.shape}",
            entry=entry,
        )
    if image_type == "grayscale":
        return _to_uint8(a, entry), {"n_phases": 1, "grey_levels": None}

    values = np.unique(a)
    meta_n = meta.get("n_phases") if meta.get("data_type") in _NPHASE_DATA_TYPES else None
    if values.size > MAX_PHASES:
        raise MicrolibError(
            f"image has {values.size} distinct values: a grey or JPEG image, not n-phase "
            f"labels (one-hot would need {values.size} channels); segment it first or pass "
            "--image-type grayscale",
            entry=entry,
        )
    is_labels = values.size >= 1 and values.min() >= 0 and np.all(values == np.round(values))
    n_decl = n_phases or meta_n
    if meta_n and n_phases and int(meta_n) != int(n_phases):
        raise MicrolibError(
            f"--phases {n_phases} contradicts the image metadata (n_phases {meta_n})", entry=entry
        )
    grey_levels = None
    if is_labels and values.max() < max(values.size, int(n_decl or 0)):
        labels = a.astype(np.uint8)
        n = int(n_decl) if n_decl else int(values.max()) + 1
    elif meta_n:
        raise MicrolibError(
            f"metadata says {meta_n} phases but the image holds values "
            f"{_fmt_values(values)}, not labels 0..{int(meta_n) - 1}",
            entry=entry,
        )
    elif n_phases and values.size == int(n_phases):
        # explicit phase count: map distinct grey levels to labels in ascending order
        labels = np.searchsorted(values, a).astype(np.uint8)
        n = int(n_phases)
        grey_levels = [float(v) for v in values]
    else:
        raise MicrolibError(
            f"image handed in as n-phase holds {values.size} distinct values "
            f"{_fmt_values(values)}, not labels 0..n-1; pass --phases {values.size} to map "
            "them to labels in ascending grey order",
            entry=entry,
        )
    if n < 2:
        raise MicrolibError(
            f"n-phase training needs at least 2 phases, the image has {n}", entry=entry
        )
    present = int(np.unique(labels).size)
    if n_decl and present != int(n_decl):
        raise MicrolibError(
            f"expected {int(n_decl)} phases but the image holds {present} "
            f"({_fmt_values(np.unique(labels))})",
            entry=entry,
        )
    return labels, {"n_phases": n, "grey_levels": grey_levels}


def _fmt_values(values: np.ndarray) -> str:
    v = [int(x) if float(x).is_integer() else float(x) for x in np.asarray(values)[:8]]
    return "{" + ", ".join(map(str, v)) + (", ...}" if np.asarray(values).size > 8 else "}")


def _to_uint8(a: np.ndarray, entry: str | None) -> np.ndarray:
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    if np.issubdtype(a.dtype, np.floating) and a.size and a.min() >= 0 and a.max() <= 1:
        return np.clip(np.round(a * 255.0), 0, 255).astype(np.uint8)
    if a.size and a.min() >= 0 and a.max() <= 255:
        return np.round(a).astype(np.uint8)
    raise MicrolibError(
        f"cannot read {a.dtype} values in [{a.min()}, {a.max()}] as 8-bit grey", entry=entry
    )


@dataclass
class TrainingSet:
    """Canonical training data.

    Attributes
    ----------
    image_type : str
    nc : int
        Network channels (phases, 1 grey, 3 RGB).
    sources : list of ndarray
        One 2D image (isotropic), one 3D volume (slices normal to each axis), or three 2D
        images (anisotropic, image ``i`` for slices normal to axis ``i``).
    anisotropic : bool
        One critic per axis.
    grey_levels : list of float or None
        Original grey value of each label when labels were mapped from grey levels.
    """

    image_type: str
    nc: int
    sources: list[np.ndarray]
    anisotropic: bool = False
    grey_levels: list[float] | None = None

    @property
    def is_volume(self) -> bool:
        return len(self.sources) == 1 and self.sources[0].ndim == 3 and self.image_type != "colour"

    def fingerprint(self) -> str:
        """SHA-256 of the canonical training data (a resumed run must train on the same)."""
        import hashlib

        h = hashlib.sha256()
        for a in self.sources:
            h.update(str(a.shape).encode())
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()


def make_training_set(
    arrays: Sequence[np.ndarray],
    image_type: str,
    l: int,  # noqa: E741
    n_phases: int | None = None,
    metas: Sequence[dict | None] | None = None,
    volumes: Sequence[bool] | None = None,
    anisotropic: bool | None = None,
    entry: str | None = None,
) -> TrainingSet:
    """Validate one or three training images (or one volume) for slices of edge ``l``.

    Parameters
    ----------
    arrays : sequence of ndarray
        One image or volume (isotropic), or three images (anisotropic).
    image_type : {'nphase', 'grayscale', 'colour'}
    l : int
        Training slice edge; every image side must be at least ``l``.
    n_phases : int, optional
        Expected number of phases (n-phase).
    metas : sequence of dict, optional
        ``microlib`` metadata per image.
    volumes : sequence of bool, optional
        Which arrays are 3D volumes (default: 3D single-channel arrays of a single input).
    anisotropic : bool, optional
        Force one critic per axis (default: True for three images, False otherwise).
    """
    arrays = list(arrays)
    if len(arrays) not in (1, 3):
        raise MicrolibError(
            f"give one training image (isotropic) or three (anisotropic), not {len(arrays)}",
            entry=entry,
        )
    metas = list(metas) if metas is not None else [None] * len(arrays)
    if volumes is None:
        volumes = [
            len(arrays) == 1
            and np.asarray(arrays[0]).ndim == 3
            and np.asarray(arrays[0]).shape[-1] not in (3, 4)
        ]
        volumes += [False] * (len(arrays) - 1)
    if len(arrays) == 3 and any(volumes):
        raise MicrolibError("anisotropic training takes three 2D images, not volumes", entry=entry)
    out, infos = [], []
    for i, (a, m, vol) in enumerate(zip(arrays, metas, volumes, strict=True)):
        who = entry if len(arrays) == 1 else f"{entry or 'image'}[{i}]"
        canon, info = prepare_training_array(
            a, image_type, n_phases=n_phases, meta=m, is_volume=vol, entry=who
        )
        spatial = canon.shape[:3] if vol else canon.shape[:2]
        if min(spatial) < l:
            dims = "x".join(map(str, spatial))
            raise MicrolibError(
                f"{'volume' if vol else 'image'} is {dims} px, smaller than "
                f"the {l} px training crop",
                entry=who,
            )
        out.append(canon)
        infos.append(info)
    ncs = {info["n_phases"] for info in infos}
    if len(ncs) != 1:
        raise MicrolibError(
            f"the three images have different phase counts "
            f"({', '.join(str(i['n_phases']) for i in infos)})",
            entry=entry,
        )
    grey = [i["grey_levels"] for i in infos]
    if any(g != grey[0] for g in grey):
        raise MicrolibError("the three images map different grey levels to the phases", entry=entry)
    aniso = (len(arrays) == 3) if anisotropic is None else bool(anisotropic)
    if aniso and len(arrays) == 1 and not volumes[0]:
        raise MicrolibError("anisotropic training needs three images or a 3D volume", entry=entry)
    return TrainingSet(
        image_type=image_type,
        nc=int(ncs.pop()),
        sources=out,
        anisotropic=aniso,
        grey_levels=grey[0],
    )


# --------------------------------------------------------------------------- trainer


@dataclass
class Optimisations:
    """Speed switches; :meth:`baseline` turns every one of them off.

    Attributes
    ----------
    device_sampling : bool
        Sample real crops on the device by index arithmetic (else a host-side numpy loop,
        one crop at a time, copied to the device every step).
    lazy_sync : bool
        Keep losses on the device and synchronise only when the log is read (else
        ``.item()`` on every loss of every step, as the original did).
    autocast_bf16 : bool
        bf16 autocast for the forward passes (CUDA only).
    tf32 : bool
        TF32 matmul/convolution (CUDA only).
    cudnn_benchmark : bool
        Let cuDNN pick the fastest algorithms for the fixed shapes (CUDA only).
    fused_adam : bool
        Fused Adam kernels (CUDA only).
    channels_last : bool or None
        channels-last memory format for generator and critics. ``None`` (default): on for
        CPU, where it measured 9-11 % faster per iteration (tiny and demo presets, one
        thread, interleaved repeats); off for CUDA until measured there
        (``microlib bench train`` reports it as a variant).
    compile : bool
        ``torch.compile`` the generator (the critics need double backward for the
        gradient penalty, which torch.compile does not support).
    """

    device_sampling: bool = True
    lazy_sync: bool = True
    autocast_bf16: bool = True
    tf32: bool = True
    cudnn_benchmark: bool = True
    fused_adam: bool = True
    channels_last: bool | None = None
    compile: bool = False

    @classmethod
    def baseline(cls) -> Optimisations:
        return cls(
            device_sampling=False,
            lazy_sync=False,
            autocast_bf16=False,
            tf32=False,
            cudnn_benchmark=False,
            fused_adam=False,
            channels_last=False,
            compile=False,
        )

    def effective(self, device: torch.device) -> dict[str, bool]:
        """The switches that actually apply on ``device`` (CUDA-only ones off on CPU)."""
        d = asdict(self)
        if d["channels_last"] is None:
            d["channels_last"] = device.type == "cpu"
        if device.type != "cuda":
            for k in ("autocast_bf16", "tf32", "cudnn_benchmark", "fused_adam"):
                d[k] = False
        return d


@contextlib.contextmanager
def cuda_backend_flags(tf32: bool, benchmark: bool):
    """Set TF32 / cuDNN benchmark for a block and restore the previous values."""
    old = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cudnn.benchmark,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cudnn.benchmark = benchmark
    try:
        yield
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            (
                torch.backends.cuda.matmul.allow_tf32,
                torch.backends.cudnn.allow_tf32,
                torch.backends.cudnn.benchmark,
            ) = old


def slices_along(volumes: torch.Tensor, axis: int) -> torch.Tensor:
    """All 2D slices normal to spatial ``axis`` of ``(B, C, D0, D1, D2)`` volumes.

    Returns ``(B * D_axis, C, ...)``: the original SliceGAN permute/reshape trick
    (axis 0 gives ``(D1, D2)`` slices, axis 1 ``(D0, D2)``, axis 2 ``(D0, D1)``).
    """
    b, c = volumes.shape[:2]
    moved = volumes.movedim(2 + axis, 1)
    return moved.reshape(b * moved.shape[1], c, *moved.shape[3:])


class SliceGANTrainer:
    """One SliceGAN training run, stepped one generator iteration at a time.

    Parameters
    ----------
    tset : TrainingSet
        Training data (see :func:`make_training_set`).
    preset : Preset
        Every hyper-parameter (see :mod:`microlib.slicegan.presets`).
    seed : int
        Seeds the network initialisation and the run's own random generator (noise,
        crops, gradient-penalty partners and weights); the generator's state is part of
        :meth:`state_dict`, so a resumed run continues the same random sequence.
    device : str or torch.device
    opts : Optimisations, optional
    d_update : {'per_axis', 'summed'}
        ``per_axis`` (the original code): each axis' critic loss is a separate Adam step
        (three steps of the same critic per critic iteration when isotropic);
        ``summed`` (the paper's Algorithm 1): one step on the sum over axes.

    Notes
    -----
    Determinism: on CPU with a fixed thread count, (N uninterrupted iterations) equals
    (k iterations, ``state_dict`` -> new trainer -> ``load_state_dict``, N - k iterations)
    parameter for parameter. On CUDA, cuDNN autotuning and atomics make runs close but
    not bit-identical.
    """

    def __init__(
        self,
        tset: TrainingSet,
        preset: Preset,
        seed: int = 0,
        device: str | torch.device = "cpu",
        opts: Optimisations | None = None,
        d_update: str = "per_axis",
    ):
        self.tset, self.preset, self.seed = tset, preset, int(seed)
        self.device = torch.device(device)
        self.opts = opts or Optimisations()
        self.eff = self.opts.effective(self.device)
        if d_update not in ("per_axis", "summed"):
            raise MicrolibError(f"d_update must be per_axis or summed, not {d_update!r}")
        self.d_update = d_update
        p = preset
        nc = tset.nc
        if generator_output_size(p.lz, p.gk, p.gs, p.gp) != p.l:
            raise MicrolibError(
                f"preset {p.name}: generator makes "
                f"{generator_output_size(p.lz, p.gk, p.gs, p.gp)} voxels from "
                f"a latent of {p.lz}, not the slice edge l={p.l}"
            )
        if critic_output_size(p.l, p.dk, p.ds, p.dp) < 1:
            raise MicrolibError(f"preset {p.name}: critic collapses a {p.l} px slice")
        final = "softmax" if tset.image_type == "nphase" else "tanh"
        n_critics = 3 if tset.anisotropic else 1
        # init on the CPU from the seed: the same seed gives the same start on any device
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.G = Generator(p.gk, p.gs, p.gp, p.gf(nc), final=final)
            self.Ds = [Critic(p.dk, p.ds, p.dp, p.df(nc)) for _ in range(n_critics)]
        self.G.to(self.device)
        for d in self.Ds:
            d.to(self.device)
        if self.eff["channels_last"]:
            self.G.to(memory_format=torch.channels_last_3d)
            for d in self.Ds:
                d.to(memory_format=torch.channels_last)
        adam_kw: dict = {"betas": (float(p.betas[0]), float(p.betas[1]))}
        if self.eff["fused_adam"]:
            adam_kw["fused"] = True
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=float(p.lr_g), **adam_kw)
        self.opt_ds = [
            torch.optim.Adam(d.parameters(), lr=float(p.lr_d), **adam_kw) for d in self.Ds
        ]
        self.g_forward = torch.compile(self.G) if self.eff["compile"] else self.G
        self.rng = torch.Generator(device=self.device)
        self.rng.manual_seed(self.seed)
        self.host_rng = np.random.default_rng(self.seed)
        self._fingerprint = tset.fingerprint()
        self._reals = [self._to_device(a) for a in tset.sources]
        self._hosts = list(tset.sources)
        self._arange_l = torch.arange(p.l, device=self.device)
        self._phase_ids = torch.arange(nc, device=self.device, dtype=torch.uint8)
        self.iteration = 0
        self._acc = torch.zeros(4, device=self.device)
        self._acc_n = torch.zeros(2, device=self.device)  # critic steps, generator steps
        self._host_acc = [0.0, 0.0, 0.0, 0.0, 0, 0]

    # ----------------------------------------------------------------- data

    def _to_device(self, a: np.ndarray) -> torch.Tensor:
        # a private copy: images from PIL are read-only, and the source stays untouched
        return torch.from_numpy(np.array(a, order="C", copy=True)).to(self.device)

    def _source_for_axis(self, axis: int) -> tuple[int, bool]:
        """(source index, source is a volume) for slices normal to ``axis``."""
        if len(self.tset.sources) == 3:
            return axis, False
        return 0, self.tset.is_volume

    def _encode(self, crops: torch.Tensor) -> torch.Tensor:
        """uint8 crops ``(B, l, l)`` or ``(B, l, l, 3)`` -> float network input ``(B, nc, l, l)``."""
        t = self.tset.image_type
        if t == "nphase":
            return (crops.unsqueeze(1) == self._phase_ids.view(1, -1, 1, 1)).float()
        if t == "grayscale":
            return crops.unsqueeze(1).float().div_(255.0)
        return crops.permute(0, 3, 1, 2).float().div_(255.0)

    def sample_real(self, axis: int, batch: int) -> torch.Tensor:
        """``batch`` random ``l x l`` crops for slices normal to ``axis``, on the device."""
        if not self.eff["device_sampling"]:
            return self._sample_real_host(axis, batch)
        idx, is_vol = self._source_for_axis(axis)
        src = self._reals[idx]
        edge, dev, g = self.preset.l, self.device, self.rng
        ar = self._arange_l
        if is_vol:
            vol = src.movedim(axis, 0)
            lay = torch.randint(0, vol.shape[0], (batch,), device=dev, generator=g)
            oy = torch.randint(0, vol.shape[1] - edge + 1, (batch,), device=dev, generator=g)
            ox = torch.randint(0, vol.shape[2] - edge + 1, (batch,), device=dev, generator=g)
            crops = vol[
                lay.view(-1, 1, 1),
                (oy.view(-1, 1) + ar).unsqueeze(2),
                (ox.view(-1, 1) + ar).unsqueeze(1),
            ]
        else:
            oy = torch.randint(0, src.shape[0] - edge + 1, (batch,), device=dev, generator=g)
            ox = torch.randint(0, src.shape[1] - edge + 1, (batch,), device=dev, generator=g)
            crops = src[(oy.view(-1, 1) + ar).unsqueeze(2), (ox.view(-1, 1) + ar).unsqueeze(1)]
        return self._encode(crops)

    def _sample_real_host(self, axis: int, batch: int) -> torch.Tensor:
        # baseline for the benchmark: host-side numpy crops + one-hot, copied every step
        idx, is_vol = self._source_for_axis(axis)
        src = self._hosts[idx]
        edge, rng, nc = self.preset.l, self.host_rng, self.tset.nc
        vol = np.moveaxis(src, axis, 0) if is_vol else None
        t = self.tset.image_type
        shape = (batch, nc, edge, edge)
        out = np.zeros(shape, dtype=np.float32)
        for b in range(batch):
            if is_vol:
                k = rng.integers(0, vol.shape[0])
                y = rng.integers(0, vol.shape[1] - edge + 1)
                x = rng.integers(0, vol.shape[2] - edge + 1)
                crop = vol[k, y : y + edge, x : x + edge]
            else:
                y = rng.integers(0, src.shape[0] - edge + 1)
                x = rng.integers(0, src.shape[1] - edge + 1)
                crop = src[y : y + edge, x : x + edge]
            if t == "nphase":
                for ph in range(nc):
                    out[b, ph] = crop == ph
            elif t == "grayscale":
                out[b, 0] = crop / 255.0
            else:
                out[b] = np.moveaxis(crop, -1, 0) / 255.0
        return torch.from_numpy(out).to(self.device)

    def noise(self, batch: int) -> torch.Tensor:
        lz = self.preset.lz
        z = torch.randn(batch, self.preset.nz, lz, lz, lz, device=self.device, generator=self.rng)
        if self.eff["channels_last"]:
            z = z.contiguous(memory_format=torch.channels_last_3d)
        return z

    def _autocast(self):
        if self.eff["autocast_bf16"]:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _critic_input(self, x: torch.Tensor) -> torch.Tensor:
        if self.eff["channels_last"]:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    # ----------------------------------------------------------------- losses

    def _critic_loss(self, axis: int, fake: torch.Tensor) -> tuple[torch.Tensor, ...]:
        p = self.preset
        D = self.Ds[axis if self.tset.anisotropic else 0]
        real = self.sample_real(axis, p.batch_size)
        fake_s = slices_along(fake, axis)
        with self._autocast():
            out = D(self._critic_input(torch.cat([real, fake_s])))
        out = out.float().flatten(1).mean(1)
        out_real, out_fake = out[: real.shape[0]].mean(), out[real.shape[0] :].mean()
        # gradient penalty: partners drawn from all fake slices, not the first volume's
        pick = torch.randint(
            0, fake_s.shape[0], (real.shape[0],), device=self.device, generator=self.rng
        )
        alpha = torch.rand(real.shape[0], 1, 1, 1, device=self.device, generator=self.rng)
        interp = (alpha * real + (1.0 - alpha) * fake_s[pick]).requires_grad_(True)
        with self._autocast():
            d_int = D(self._critic_input(interp))
        (grad,) = torch.autograd.grad(d_int.float().sum(), interp, create_graph=True)
        gp = p.gp_lambda * ((grad.flatten(1).norm(2, dim=1) - 1.0) ** 2).mean()
        loss = out_fake - out_real + gp
        return loss, out_real - out_fake, gp

    def _record(self, slot: int, *values: torch.Tensor) -> None:
        if self.eff["lazy_sync"]:
            if slot == 0:
                loss, wass, gp = values
                self._acc[0] += loss.detach()
                self._acc[2] += wass.detach()
                self._acc[3] += gp.detach()
                self._acc_n[0] += 1
            else:
                self._acc[1] += values[0].detach()
                self._acc_n[1] += 1
        else:
            # the original's per-step host synchronisation (baseline only)
            if slot == 0:
                self._host_acc[0] += values[0].item()
                self._host_acc[2] += values[1].item()
                self._host_acc[3] += values[2].item()
                self._host_acc[4] += 1
            else:
                self._host_acc[1] += values[0].item()
                self._host_acc[5] += 1

    # ----------------------------------------------------------------- steps

    def step(self) -> None:
        """One generator iteration: ``critic_iters`` critic iterations, one G update."""
        with (
            cuda_backend_flags(self.eff["tf32"], self.eff["cudnn_benchmark"])
            if self.device.type == "cuda"
            else contextlib.nullcontext()
        ):
            for _ in range(self.preset.critic_iters):
                self._critic_iteration()
            self._generator_update()
        self.iteration += 1

    def _critic_iteration(self) -> None:
        p = self.preset
        with torch.no_grad(), self._autocast():
            fake = self.g_forward(self.noise(p.d_batch_size)).float()
        axes = range(3)
        if self.d_update == "per_axis" or self.tset.anisotropic:
            for a in axes:
                k = a if self.tset.anisotropic else 0
                self.opt_ds[k].zero_grad(set_to_none=True)
                loss, wass, gp = self._critic_loss(a, fake)
                loss.backward()
                self.opt_ds[k].step()
                self._record(0, loss, wass, gp)
        else:
            self.opt_ds[0].zero_grad(set_to_none=True)
            parts = [self._critic_loss(a, fake) for a in axes]
            total = sum(x[0] for x in parts)
            total.backward()
            self.opt_ds[0].step()
            for x in parts:
                self._record(0, *x)

    def _generator_update(self) -> None:
        p = self.preset
        for d in self.Ds:
            d.requires_grad_(False)  # no critic weight gradients needed for the G step
        try:
            self.opt_g.zero_grad(set_to_none=True)
            with self._autocast():
                fake = self.g_forward(self.noise(p.g_batch_size))
                loss = 0.0
                for a in range(3):
                    D = self.Ds[a if self.tset.anisotropic else 0]
                    loss = loss - D(self._critic_input(slices_along(fake, a))).float().mean()
            loss.backward()
            self.opt_g.step()
        finally:
            for d in self.Ds:
                d.requires_grad_(True)
        self._record(1, loss)

    # ----------------------------------------------------------------- logging

    def read_log(self) -> dict[str, float] | None:
        """Mean losses since the last call (one host synchronisation), or None if no step.

        Keys: ``critic_loss``, ``generator_loss``, ``wasserstein``, ``gp``.
        """
        if self.eff["lazy_sync"]:
            vals = torch.cat([self._acc, self._acc_n]).tolist()
            self._acc.zero_()
            self._acc_n.zero_()
        else:
            vals = list(self._host_acc)
            self._host_acc = [0.0, 0.0, 0.0, 0.0, 0, 0]
        nd, ng = vals[4], vals[5]
        if nd == 0 and ng == 0:
            return None
        return {
            "critic_loss": vals[0] / max(nd, 1),
            "generator_loss": vals[1] / max(ng, 1),
            "wasserstein": vals[2] / max(nd, 1),
            "gp": vals[3] / max(nd, 1),
        }

    # ----------------------------------------------------------------- state

    def config(self) -> dict:
        """What defines the run (a resumed run must match it)."""
        return {
            "preset": {k: v for k, v in self.preset.to_dict().items() if k != "iterations"},
            "image_type": self.tset.image_type,
            "nc": self.tset.nc,
            "seed": self.seed,
            "anisotropic": self.tset.anisotropic,
            "d_update": self.d_update,
            "grey_levels": self.tset.grey_levels,
            "data_sha256": self._fingerprint,
        }

    def state_dict(self) -> dict:
        """Everything needed to continue exactly: networks, optimisers, RNGs, iteration.

        Plain containers and tensors only, so ``torch.load(weights_only=True)`` reads it.
        """

        def cpu(sd):
            return {
                k: (v.detach().cpu().contiguous() if torch.is_tensor(v) else v)
                for k, v in sd.items()
            }

        return {
            "format": TRAIN_STATE_FORMAT,
            "iteration": self.iteration,
            "config": json.dumps(self.config(), sort_keys=True),
            "generator": cpu(self.G.state_dict()),
            "critics": [cpu(d.state_dict()) for d in self.Ds],
            "opt_g": _opt_state_cpu(self.opt_g.state_dict()),
            "opt_d": [_opt_state_cpu(o.state_dict()) for o in self.opt_ds],
            "rng_state": self.rng.get_state(),
            "rng_device": self.device.type,
            "host_rng": json.dumps(self.host_rng.bit_generator.state),
            "acc": torch.cat([self._acc, self._acc_n]).detach().cpu(),
            "host_acc": [float(x) for x in self._host_acc],
        }

    def load_state_dict(self, state: dict) -> list[str]:
        """Restore :meth:`state_dict`; returns warnings (e.g. RNG re-seeded across devices).

        Raises
        ------
        MicrolibError
            If the state belongs to a different configuration.
        """
        notes: list[str] = []
        if state.get("format") != TRAIN_STATE_FORMAT:
            raise MicrolibError(f"not a microlib training state (format {state.get('format')!r})")
        mine, theirs = self.config(), json.loads(state["config"])
        if mine != theirs:
            diff = sorted(_diff_keys(mine, theirs))
            raise MicrolibError(
                "the saved training state was made with different settings "
                f"({', '.join(diff)}); rerun with the same settings or --force"
            )
        self.G.load_state_dict(state["generator"])
        for d, sd in zip(self.Ds, state["critics"], strict=True):
            d.load_state_dict(sd)
        self.opt_g.load_state_dict(_keep_impl_flags(state["opt_g"], self.opt_g))
        for o, sd in zip(self.opt_ds, state["opt_d"], strict=True):
            o.load_state_dict(_keep_impl_flags(sd, o))
        if state.get("rng_device") == self.device.type:
            self.rng.set_state(state["rng_state"])
        else:
            # generator states are device-specific; continue with a derived seed
            self.rng.manual_seed(self.seed * 1_000_003 + int(state["iteration"]))
            notes.append(
                f"state saved on {state.get('rng_device')}, resumed on "
                f"{self.device.type}: random stream re-seeded (not bit-identical)"
            )
        self.host_rng.bit_generator.state = json.loads(state["host_rng"])
        acc = state["acc"].to(self.device)
        self._acc.copy_(acc[:4])
        self._acc_n.copy_(acc[4:])
        ha = state.get("host_acc", [0.0] * 6)
        self._host_acc = [ha[0], ha[1], ha[2], ha[3], int(ha[4]), int(ha[5])]
        self.iteration = int(state["iteration"])
        return notes

    # ----------------------------------------------------------------- accounting

    def flops_per_iteration(self) -> float:
        """FLOPs of one generator iteration, counted with the formulas of
        ``torch.utils.flop_counter.FlopCounterMode`` on a real step.

        ``FlopCounterMode`` itself cannot run here: its module tracker refuses the
        ``autograd.grad`` of the gradient penalty, so its per-operator registry is applied
        from a plain dispatch mode. Runs (and therefore applies) one training step.
        """
        from torch.utils._python_dispatch import TorchDispatchMode
        from torch.utils.flop_counter import FlopCounterMode

        registry = FlopCounterMode(display=False).flop_registry

        class _Count(TorchDispatchMode):
            total = 0

            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                out = func(*args, **kwargs)
                fn = registry.get(func._overloadpacket)
                if fn is not None:
                    _Count.total += fn(*args, **kwargs, out_val=out)
                return out

        with _Count():
            self.step()
        return float(_Count.total)


def _keep_impl_flags(saved: dict, opt: torch.optim.Optimizer) -> dict:
    """Saved optimiser state with this run's implementation switches (fused/foreach):
    a state saved on CUDA with fused Adam must resume on a CPU node too."""
    groups = []
    for g_saved, g_now in zip(saved["param_groups"], opt.param_groups, strict=True):
        g = dict(g_saved)
        for k in ("fused", "foreach", "capturable", "differentiable"):
            if k in g_now:
                g[k] = g_now[k]
        groups.append(g)
    return {"state": saved["state"], "param_groups": groups}


def _opt_state_cpu(sd: dict) -> dict:
    state = {
        k: {n: (t.detach().cpu() if torch.is_tensor(t) else t) for n, t in v.items()}
        for k, v in sd["state"].items()
    }
    return {"state": state, "param_groups": sd["param_groups"]}


def _diff_keys(a: dict, b: dict, prefix: str = "") -> set[str]:
    out = set()
    for k in set(a) | set(b):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out |= _diff_keys(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.add(f"{prefix}{k}")
    return out


__all__ = [
    "MAX_PHASES",
    "Optimisations",
    "SliceGANTrainer",
    "TrainingSet",
    "cuda_backend_flags",
    "infer_image_type",
    "make_training_set",
    "prepare_training_array",
    "slices_along",
]
