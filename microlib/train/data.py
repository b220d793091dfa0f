"""Training data: image-type inference and the canonical training arrays.

* :func:`infer_image_type` / :func:`prepare_training_array` validate a training image and
  bring it to the canonical form (uint8 labels ``0..n-1``, uint8 grey, or uint8 RGB).
* :func:`make_training_set` bundles one image (isotropic), one 3D label volume (slices
  along each axis) or three images (anisotropic, one critic per axis).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from microlib.datatypes import MAX_PHASES
from microlib.datatypes import NPHASE_TYPES as _NPHASE_DATA_TYPES
from microlib.errors import MicrolibError
from microlib.slicegan.params import IMAGE_TYPES

# --------------------------------------------------------------------------- inputs


def _is_grey_rgb(a: np.ndarray) -> bool:
    return (
        a.ndim == 3
        and a.shape[2] == 3
        and bool(np.array_equal(a[..., 0], a[..., 1]) and np.array_equal(a[..., 0], a[..., 2]))
    )


def _as_grey(a: np.ndarray) -> np.ndarray | None:
    """The single channel of an RGB(A) image with R = G = B (and constant alpha), else None.

    PNGs written by MicroLib/SliceGAN tools are often RGBA with identical colour channels
    and alpha 255; they carry one grey value per pixel.
    """
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        return None
    if a.shape[2] == 4 and a[..., 3].size and not np.all(a[..., 3] == a.flat[3]):
        return None
    return a[..., 0] if _is_grey_rgb(a[..., :3]) else None


def infer_image_type(
    array: np.ndarray, meta: dict | None = None, is_volume: bool = False, entry: str | None = None
) -> str:
    """Decide the image type of a training image when the user did not state it.

    Uses the ``microlib`` PNG/TIFF metadata when present (``data_type``); otherwise only
    unambiguous cases are accepted: an image with 2 to ``MAX_PHASES`` distinct values is
    n-phase (as SliceGAN itself treats it: sorted values become labels ``0..n-1``, see
    ``map_levels`` of :func:`prepare_training_array`), an RGB image whose channels differ
    is colour. RGB(A) with R = G = B and constant alpha counts as grey. Anything else
    (e.g. a grey micrograph) is refused with a message asking for ``--image-type``.

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
        grey = _as_grey(a)
        if grey is None:
            return "colour"
        a = grey
    values = np.unique(a)
    if 2 <= values.size <= MAX_PHASES:
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
    map_levels: bool = False,
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
    map_levels : bool
        Map the sorted distinct values of an image that is not labels ``0..n-1`` to labels
        without ``n_phases`` (used when the image type was inferred, see
        :func:`infer_image_type`).

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
        grey = _as_grey(a)
        if grey is None:
            raise MicrolibError(
                f"a colour image cannot be trained as {image_type}; pass --image-type colour",
                entry=entry,
            )
        a = grey
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
            f"{format_values(values)}, not labels 0..{int(meta_n) - 1}",
            entry=entry,
        )
    elif (n_phases and values.size == int(n_phases)) or (map_levels and not n_phases):
        # map distinct grey levels to labels in ascending order (SliceGAN's convention)
        labels = np.searchsorted(values, a).astype(np.uint8)
        n = int(values.size)
        grey_levels = [float(v) for v in values]
    else:
        raise MicrolibError(
            f"image handed in as n-phase holds {values.size} distinct values "
            f"{format_values(values)}, not labels 0..n-1; pass --phases {values.size} to map "
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
            f"({format_values(np.unique(labels))})",
            entry=entry,
        )
    return labels, {"n_phases": n, "grey_levels": grey_levels}


def format_values(values: np.ndarray) -> str:
    """``{0, 255}``-style short listing of (at most 8) values for messages."""
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
    map_levels: bool = False,
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
    map_levels : bool
        See :func:`prepare_training_array`.
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
            a,
            image_type,
            n_phases=n_phases,
            meta=m,
            is_volume=vol,
            entry=who,
            map_levels=map_levels,
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
