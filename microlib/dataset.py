"""Use a packaged MicroLib-style dataset: list entries, load them, synthesise new volumes.

Works on the folder (``data/microlibDataset``) or the downloaded zip; a zip is read in
place and model files are extracted (safely) only when a generator is loaded.

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
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from microlib.errors import MicrolibError
from microlib.package import DATASET_DIR, safe_extract

MODEL_SUFFIXES = ("_Gen.pt", "_params.data", "_params.json")


class Dataset:
    """A packaged dataset, from its folder or its zip.

    Parameters
    ----------
    path : str or PathLike
        ``microlibDataset/`` folder, a folder containing it, or ``microlibDataset.zip``.
    cache_dir : str or PathLike, optional
        Where model files of a zip are extracted when a generator is loaded (default: a
        temporary folder removed when the object is garbage-collected).
    """

    def __init__(self, path: str | os.PathLike, cache_dir: str | os.PathLike | None = None):
        path = Path(path)
        self._zip: zipfile.ZipFile | None = None
        self._prefix = ""
        if path.is_file() and zipfile.is_zipfile(path):
            self._zip = zipfile.ZipFile(path)
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
        else:
            raise MicrolibError(f"{path}: no such dataset folder or zip")
        self.path = path
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._cache_dir = Path(cache_dir) if cache_dir else None
        self.annotations: dict[str, dict[str, Any]] = json.loads(self.read_bytes("data_anns.json"))
        self._by_name = {rec["name"]: rec for rec in self.annotations.values()}

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

    def read_bytes(self, relpath: str) -> bytes:
        """Bytes of a file given relative to the dataset root (``name/name.tif``)."""
        if self._zip is not None:
            try:
                return self._zip.read(self._prefix + relpath)
            except KeyError:
                raise MicrolibError(f"{relpath} is not in {self.path}") from None
        target = self.path / relpath
        if not target.is_file():
            raise MicrolibError(f"{relpath} is not in {self.path}")
        return target.read_bytes()

    def excluded(self) -> dict[str, Any]:
        """ids left out of the dataset with their reasons (excluded.json)."""
        return json.loads(self.read_bytes("excluded.json"))

    def load_volume(self, name: str) -> np.ndarray:
        """The example cube of ``name`` as a numpy array (uint8)."""
        import tifffile

        self.entry(name)
        return tifffile.imread(_io.BytesIO(self.read_bytes(f"{name}/{name}.tif")))

    def load_image(self, name: str) -> np.ndarray:
        """The 2D training image (in-painted) of ``name``."""
        from PIL import Image

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

    def load_generator(self, name: str, device: str = "cpu"):
        """``(generator, params)`` of ``name`` (weights loaded with ``weights_only=True``)."""
        from microlib.generate import load_generator

        return load_generator(self.model_dir(name), device=device)

    def synthesise(
        self,
        name: str,
        size: int | tuple[int, int, int] = 320,
        seed: int = 0,
        periodic: tuple[bool, bool, bool] = (False, False, False),
        device: str = "cpu",
    ) -> np.ndarray:
        """A new volume of ``name``'s microstructure from its trained generator."""
        from microlib.generate import synthesise

        net, params = self.load_generator(name, device=device)
        return synthesise(net, params, size, seed=seed, periodic=periodic, device=device)

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> Dataset:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
