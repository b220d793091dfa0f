"""Read a packaged MicroLib-style dataset: list entries, load them, synthesise new volumes.

Works on the folder (``data/microlibDataset``) or the downloaded zip; a zip is read in
place and model files are extracted (safely) only when a generator is loaded. The JSON
indexes are read with a size cap, so a hostile download cannot exhaust memory, and are
checked for shape before use, so a malformed one fails with one line. Families (one
conditional generator for several entries) are read from ``families.json`` when the
dataset has one (:attr:`Dataset.families`, :meth:`Dataset.synthesise_family`).

Examples
--------
>>> ds = Dataset("data/microlibDataset.zip")                  # doctest: +SKIP
>>> ds.names                                                    # doctest: +SKIP
['microstructure003', 'microstructure007', ...]
>>> vol = ds.synthesise("microstructure003", size=256, seed=1)   # doctest: +SKIP
"""

from __future__ import annotations

import io as _io
import json
import os
import re
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

import numpy as np
import tifffile
from PIL import Image

from microlib.dataset.extract import safe_extract
from microlib.errors import MicrolibError
from microlib.lazy import lazy_module

# synthesis needs torch; listing, reading and extracting entries do not
generate = lazy_module("microlib.generate")
adain = lazy_module("microlib.slicegan.adain")

DATASET_DIR = "microlibDataset"
MODEL_SUFFIXES = ("_Gen.pt", "_params.data", "_params.json")
# families (one conditional generator for several entries): families.json + families/{f}/
FAMILIES_FILE = "families.json"
FAMILIES_DIR = "families"
FAMILY_MODEL_SUFFIXES = ("_Gen.pt", "_params.json")
MAX_JSON_BYTES = 64 * 1024**2

# C0 (but tab and newline), DEL, C1 and the bidirectional overrides: scraped text holding
# them could move the cursor, ring the bell or reorder what a terminal or browser shows
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def clean_text(value: Any) -> Any:
    """``value`` with control characters removed from every string inside it.

    Examples
    --------
    >>> clean_text({"a": ["x\x1b[31my\x07"]})
    {'a': ['x[31my']}
    """
    if isinstance(value, str):
        return _CONTROL.sub("", value)
    if isinstance(value, Mapping):
        return {k: clean_text(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_text(v) for v in value]
    return value


def read_json_capped(fh: BinaryIO, what: str, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Parse JSON from ``fh``, reading at most ``max_bytes`` (refuse larger files).

    Raises
    ------
    MicrolibError
        When the stream is larger than ``max_bytes`` or is not valid JSON.
    """
    data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise MicrolibError(f"{what} is larger than {max_bytes / 1e6:.0f} MB; refused")
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MicrolibError(f"{what} is not valid JSON ({exc})") from None


def _check_anns(anns: Any, what: str) -> dict[str, dict[str, Any]]:
    if not isinstance(anns, dict):
        raise MicrolibError(f"{what} is not a JSON object keyed 1, 2, ...")
    for key, rec in anns.items():
        if not isinstance(rec, dict) or not isinstance(rec.get("name"), str):
            raise MicrolibError(f"{what}: record {key!r} has no name")
    return anns


def _check_families(fams: Any, what: str) -> dict[str, dict[str, Any]]:
    if not isinstance(fams, dict):
        raise MicrolibError(f"{what} is not a JSON object keyed by family name")
    for key, rec in fams.items():
        if not isinstance(rec, dict) or rec.get("name") != key:
            raise MicrolibError(f"{what}: record {key!r} does not carry its own name")
        if not isinstance(rec.get("members"), list):
            raise MicrolibError(f"{what}: record {key!r} has no members list")
    return fams


class Dataset:
    """A packaged dataset, from its folder or its zip.

    Parameters
    ----------
    path : str or PathLike
        ``microlibDataset/`` folder, a folder containing it, or ``microlibDataset.zip``.
    cache_dir : str or PathLike, optional
        Where model files of a zip are extracted when a generator is loaded (default: a
        temporary folder removed when the object is garbage-collected).
    max_json_bytes : int
        Refuse a ``data_anns.json`` or ``excluded.json`` larger than this (bounded memory).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        cache_dir: str | os.PathLike | None = None,
        max_json_bytes: int = MAX_JSON_BYTES,
    ):
        self._zip: zipfile.ZipFile | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._cache_dir = Path(cache_dir) if cache_dir else None
        self._max_json = max_json_bytes
        try:
            self._open(Path(path))
        except BaseException:
            self.close()
            raise

    def _open(self, path: Path) -> None:
        self._prefix = ""
        if path.is_file():
            try:
                self._zip = zipfile.ZipFile(path)
            except (zipfile.BadZipFile, OSError) as exc:
                raise MicrolibError(f"{path} is not a readable zip archive ({exc})") from None
            names = self._zip.namelist()
            anns = [n for n in names if PurePosixPath(n).name == "data_anns.json"]
            if not anns:
                raise MicrolibError(f"{path} has no data_anns.json: not a MicroLib dataset")
            self._prefix = str(PurePosixPath(min(anns, key=len)).parent)
            self._prefix = "" if self._prefix == "." else self._prefix + "/"
        elif path.is_dir():
            if not (path / "data_anns.json").is_file() and (path / DATASET_DIR).is_dir():
                path = path / DATASET_DIR
            if not (path / "data_anns.json").is_file():
                raise MicrolibError(f"{path} has no data_anns.json: not a MicroLib dataset")
        elif path.exists():
            raise MicrolibError(f"{path} is neither a dataset folder nor a zip file")
        else:
            raise MicrolibError(f"{path}: no such dataset folder or zip")
        self.path = path
        self.annotations = _check_anns(self.read_json("data_anns.json"), "data_anns.json")
        self._by_name = {rec["name"]: rec for rec in self.annotations.values()}
        self.families = (
            _check_families(self.read_json(FAMILIES_FILE), FAMILIES_FILE)
            if self.exists(FAMILIES_FILE)
            else {}
        )

    # ------------------------------------------------------------------ reading
    @property
    def names(self) -> list[str]:
        """Entry names in data_anns.json order."""
        return [rec["name"] for rec in self.annotations.values()]

    def entry(self, name: str) -> dict[str, Any]:
        """The data_anns.json record of ``name``."""
        try:
            return self._by_name[name]
        except KeyError:
            raise MicrolibError("not in this dataset", entry=name) from None

    def family(self, name: str) -> dict[str, Any]:
        """The families.json record of family ``name``."""
        try:
            return self.families[name]
        except KeyError:
            raise MicrolibError("not a family of this dataset", entry=name) from None

    def exists(self, relpath: str) -> bool:
        """Whether a file given relative to the dataset root is there."""
        if self._zip is not None:
            return (self._prefix + relpath) in set(self._zip.namelist())
        return (self.path / relpath).is_file()

    def open(self, relpath: str) -> BinaryIO:
        """A binary stream of a file given relative to the dataset root."""
        if self._zip is not None:
            try:
                return self._zip.open(self._prefix + relpath)
            except KeyError:
                raise MicrolibError(f"{relpath} is not in {self.path}") from None
        target = self.path / relpath
        if not target.is_file():
            raise MicrolibError(f"{relpath} is not in {self.path}")
        return open(target, "rb")

    def read_bytes(self, relpath: str) -> bytes:
        """Bytes of a file given relative to the dataset root (``name/name.tif``)."""
        try:
            with self.open(relpath) as fh:
                return fh.read()
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise MicrolibError(f"{relpath} in {self.path} is unreadable ({exc})") from None

    def read_json(self, relpath: str, max_bytes: int | None = None) -> Any:
        """A JSON file of the dataset, read with a size cap (bounded memory)."""
        try:
            with self.open(relpath) as fh:
                return read_json_capped(fh, relpath, max_bytes or self._max_json)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise MicrolibError(f"{relpath} in {self.path} is unreadable ({exc})") from None

    def excluded(self) -> dict[str, dict[str, Any]]:
        """ids left out of the dataset with their reasons (excluded.json)."""
        excluded = self.read_json("excluded.json")
        if not isinstance(excluded, dict):
            raise MicrolibError("excluded.json is not a JSON object keyed by id")
        for ident, info in excluded.items():
            if not isinstance(info, dict) or not isinstance(info.get("name"), str):
                raise MicrolibError(f"excluded.json: record {ident!r} has no name")
        return excluded

    def load_volume(self, name: str) -> np.ndarray:
        """The example cube of ``name`` as a numpy array (uint8)."""
        self.entry(name)
        return tifffile.imread(_io.BytesIO(self.read_bytes(f"{name}/{name}.tif")))

    def load_image(self, name: str) -> np.ndarray:
        """The 2D training image (in-painted) of ``name``."""
        self.entry(name)
        with Image.open(_io.BytesIO(self.read_bytes(f"{name}/{name}_inpainted.png"))) as im:
            return np.asarray(im)

    # ------------------------------------------------------------------ models
    def model_dir(self, name: str) -> Path:
        """A folder holding ``name``'s generator files (extracted from a zip if needed)."""
        self.entry(name)
        if self._zip is None:
            return self.path / name
        if self._cache_dir is None:
            self._tmp = self._tmp or tempfile.TemporaryDirectory(prefix="microlib-")
            self._cache_dir = Path(self._tmp.name)
        members = [f"{self._prefix}{name}/{name}{s}" for s in MODEL_SUFFIXES]
        present = set(self._zip.namelist())
        safe_extract(self._zip.filename, self._cache_dir, [m for m in members if m in present])
        return self._cache_dir / self._prefix / name

    def family_model_dir(self, name: str) -> Path:
        """A folder holding family ``name``'s generator files (extracted from a zip if needed)."""
        self.family(name)
        rel = f"{FAMILIES_DIR}/{name}"
        if self._zip is None:
            return self.path / rel
        if self._cache_dir is None:
            self._tmp = self._tmp or tempfile.TemporaryDirectory(prefix="microlib-")
            self._cache_dir = Path(self._tmp.name)
        members = [f"{self._prefix}{rel}/{name}{s}" for s in FAMILY_MODEL_SUFFIXES]
        present = set(self._zip.namelist())
        safe_extract(self._zip.filename, self._cache_dir, [m for m in members if m in present])
        return self._cache_dir / self._prefix / rel

    def synthesise_family(
        self,
        name: str,
        code: float,
        size: int | tuple[int, int, int] = 320,
        seed: int = 0,
        periodic: tuple[bool, bool, bool] = (False, False, False),
        device: str = "cpu",
        extrapolate: bool = False,
    ) -> np.ndarray:
        """A new volume from family ``name``'s generator at ``code``.

        A code outside the trained range is refused unless ``extrapolate``.
        """
        net, params = adain.load_conditional_generator(self.family_model_dir(name), device=device)
        adain.check_code(params, code, extrapolate)
        at_code = adain.generator_at_code(net, code, params.lz)
        return generate.synthesise(
            at_code, params, size, seed=seed, periodic=periodic, device=device
        )

    def load_generator(self, name: str, device: str = "cpu"):
        """``(generator, params)`` of ``name`` (weights loaded with ``weights_only=True``)."""
        return generate.load_generator(self.model_dir(name), device=device)

    def synthesise(
        self,
        name: str,
        size: int | tuple[int, int, int] = 320,
        seed: int = 0,
        periodic: tuple[bool, bool, bool] = (False, False, False),
        device: str = "cpu",
    ) -> np.ndarray:
        """A new volume of ``name``'s microstructure from its trained generator."""
        net, params = self.load_generator(name, device=device)
        return generate.synthesise(net, params, size, seed=seed, periodic=periodic, device=device)

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> Dataset:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
