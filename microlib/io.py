"""File I/O shared by every stage: atomic writes, images with metadata, JSON, TIFF.

Every writer goes through :func:`atomic_path`, so an interrupted job never leaves a
file that looks complete: data is written to a temporary sibling and renamed into
place only after it was flushed and closed.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

PNG_META_KEY = "microlib"


def _default_mode() -> int:
    # mkstemp creates 0600 files; a dataset on a shared cluster must stay group-readable,
    # so renamed files get the mode a plain open() would have given them
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _default_mode()


# A writer killed mid-file (SIGKILL, node failure) cannot remove its temporary file. The
# next writer of the same path removes such leftovers; one younger than this is left alone
# because it may belong to a writer that is still running.
STALE_PART_AGE_S = 60.0


def remove_stale_parts(
    path: str | os.PathLike, part_suffix: str = ".part", min_age_s: float = STALE_PART_AGE_S
) -> list[Path]:
    """Remove temporary files that an interrupted :func:`atomic_path` left beside ``path``.

    Parameters
    ----------
    path : path-like
        The destination file.
    part_suffix : str
        Suffix of the temporary files (the destination's suffix + ``.part``).
    min_age_s : float
        Leave files modified more recently than this (a writer may still be running);
        0 removes every leftover, for a caller that knows it is the only writer.

    Returns
    -------
    list of Path
        The files removed.
    """
    path = Path(path)
    removed = []
    now = time.time()
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*{glob.escape(part_suffix)}"):
        with contextlib.suppress(FileNotFoundError):
            if now - stale.stat().st_mtime >= min_age_s:
                stale.unlink()
                removed.append(stale)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    The temporary file keeps the destination's suffix (or ``suffix``) so that
    libraries choosing a format by extension still work. On any exception the
    temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    part_suffix = (suffix if suffix is not None else path.suffix) + ".part"
    remove_stale_parts(path, part_suffix)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=part_suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        if tmp_path.stat().st_nlink == 1:  # not a hard link to someone else's file
            os.chmod(tmp_path, _FILE_MODE)
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Atomically write ``data`` to ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Atomically write UTF-8 ``text`` to ``path``."""
    write_bytes(path, text.encode("utf-8"))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def dumps_json(obj: Any) -> str:
    """Serialise ``obj`` as stable, human-readable JSON (numpy scalars allowed)."""
    return (
        json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False, default=_json_default) + "\n"
    )


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Atomically write ``obj`` as JSON."""
    write_text(path, dumps_json(obj))


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file."""
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------- images


class UnsupportedImageError(ValueError):
    """A decodable image in a pixel format the pipeline does not read (e.g. float)."""


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read a 2D image as uint8: ``(H, W)`` for grey, ``(H, W, 3)`` for colour.

    Alpha is dropped; 16-bit images are scaled to 8 bit; palette images are expanded.

    Raises
    ------
    UnsupportedImageError
        For floating-point pixels: their range (0..1, 0..255, physical units) is not
        recorded, and converting them as integers turns a 0..1 image black.
    ValueError
        When the header declares more pixels than PIL's decompression-bomb limit.
    """
    from PIL import Image

    try:
        opened = Image.open(path)
    except Image.DecompressionBombError as exc:
        raise ValueError(f"declared image size too large: {exc}") from exc
    with opened as im:
        if im.mode.startswith("F"):
            raise UnsupportedImageError(
                f"unsupported pixel format: floating-point ({im.mode}) image; "
                "convert it to 8- or 16-bit integers"
            )
        im.load()
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            arr = np.asarray(im, dtype=np.float64)
            top = arr.max() if arr.max() > 255 else 255.0
            return np.clip(np.round(arr / top * 255.0), 0, 255).astype(np.uint8)
        if im.mode in ("L", "1"):
            return np.asarray(im.convert("L"), dtype=np.uint8)
        if im.mode == "LA":
            return np.asarray(im.convert("L"), dtype=np.uint8)
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def write_png(path: str | os.PathLike, array: np.ndarray, meta: dict | None = None) -> None:
    """Atomically write a uint8 ``(H, W)`` or ``(H, W, 3)`` array as PNG.

    ``meta`` (JSON-serialisable) is stored in a ``tEXt`` chunk so later stages can
    tell a two-phase label image from a grey one without guessing.
    """
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    arr = np.asarray(array)
    if arr.dtype != np.uint8:
        raise ValueError(f"write_png expects uint8, got {arr.dtype}")
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ValueError(f"write_png expects (H, W) or (H, W, 3), got shape {arr.shape}")
    info = PngInfo()
    if meta:
        info.add_text(PNG_META_KEY, json.dumps(meta, default=_json_default))
    with atomic_path(path) as tmp:
        Image.fromarray(arr).save(tmp, format="PNG", pnginfo=info)


def read_png_meta(path: str | os.PathLike) -> dict:
    """Return the metadata dict written by :func:`write_png` (empty if none)."""
    from PIL import Image

    with Image.open(path) as im:
        text = getattr(im, "text", {}) or {}
        raw = text.get(PNG_META_KEY)
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return {}


def write_tif(
    path: str | os.PathLike,
    volume: np.ndarray,
    voxel_size_um: float | None = None,
    meta: dict | None = None,
) -> None:
    """Atomically write a 3D ``(Z, Y, X)`` or ``(Z, Y, X, 3)`` uint8 volume as ImageJ TIFF.

    The voxel size (micrometres) goes into the resolution tags and the ImageJ
    ``spacing``/``unit`` fields so Fiji and tifffile both report it.
    """
    import tifffile

    vol = np.asarray(volume)
    if vol.dtype != np.uint8:
        raise ValueError(f"write_tif expects uint8, got {vol.dtype}")
    ij_meta: dict[str, Any] = {"axes": "ZYXS" if vol.ndim == 4 else "ZYX"}
    kwargs: dict[str, Any] = {}
    if voxel_size_um:
        ij_meta.update(spacing=float(voxel_size_um), unit="um")
        kwargs["resolution"] = (1.0 / float(voxel_size_um), 1.0 / float(voxel_size_um))
    if meta:
        ij_meta["Info"] = json.dumps(meta, default=_json_default)
    with atomic_path(path) as tmp:
        tifffile.imwrite(
            tmp,
            vol,
            imagej=True,
            metadata=ij_meta,
            photometric="rgb" if vol.ndim == 4 else "minisblack",
            **kwargs,
        )


def read_tif(path: str | os.PathLike) -> np.ndarray:
    """Read a TIFF volume (as stored)."""
    import tifffile

    return tifffile.imread(path)


def read_tif_meta(path: str | os.PathLike) -> dict:
    """Return ``{"voxel_size_um": float | None, "info": dict}`` from an ImageJ TIFF."""
    import tifffile

    out: dict[str, Any] = {"voxel_size_um": None, "info": {}}
    with tifffile.TiffFile(path) as tf:
        ij = tf.imagej_metadata or {}
        if ij.get("spacing"):
            out["voxel_size_um"] = float(ij["spacing"])
        info = ij.get("Info")
        if info:
            try:
                out["info"] = json.loads(info)
            except json.JSONDecodeError:
                out["info"] = {}
    return out


# --------------------------------------------------------------------------- names


NAME_PREFIX = "microstructure"


def entry_id(value: int | str) -> str:
    """DoITPoMS id as the 6-digit string used in file names (``237 -> '000237'``)."""
    if isinstance(value, str) and value.startswith(NAME_PREFIX):
        value = value[len(NAME_PREFIX) :]
    n = int(value)
    if not 0 <= n <= 999_999:
        raise ValueError(f"DoITPoMS id out of range: {value!r}")
    return f"{n:06d}"


def entry_name(value: int | str) -> str:
    """MicroLib entry name (``'000237' -> 'microstructure237'``, 3 digits minimum)."""
    return f"{NAME_PREFIX}{int(entry_id(value)):03d}"


def parse_id_spec(spec: str) -> list[int]:
    """Parse an id list such as ``"1-1100,1205"`` into sorted unique integers."""
    ids: set[int] = set()
    for part in str(spec).replace(" ", "").split(","):
        if not part:
            continue
        if "-" in part:
            lo_s, hi_s = part.split("-", 1)
            lo, hi = int(lo_s), int(hi_s)
            if hi < lo:
                raise ValueError(f"bad id range {part!r}: end before start")
            ids.update(range(lo, hi + 1))
        else:
            ids.add(int(part))
    if any(i < 0 or i > 999_999 for i in ids):
        raise ValueError(f"id spec {spec!r} has ids outside 0..999999")
    return sorted(ids)
