"""Curation: a person's overrides of the automatic annotation, and how they are applied.

A curation file (``config/curation.yaml``, format ``workflow/schemas/curation.schema.yaml``)
holds per-entry records; :func:`load_curation` is the one reader, used by ``microlib
annotate entry`` and by the workflow (``workflow/rules/common.smk``), so both see the
same validated records. The ``curated_*`` functions turn one record's fields into the
annotation's parts; :func:`curation_from_prelabelled` converts MicroLib's own hand
annotations into this format.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import yaml

from microlib.annotate.phases import phase_stats
from microlib.datatypes import MAX_PHASES, NPHASE_TYPES, nphase_type
from microlib.errors import MicrolibError
from microlib.image import clip_box
from microlib.io import entry_id

CURATION_SCHEMA = (
    Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "curation.schema.yaml"
)
# the fields that replace the automatic data-type decision
TYPE_FIELDS = ("data_type", "phases", "thresholds")


# --------------------------------------------------------------------------- reading


def validate_curation(
    doc: Any, source: str = "curation", schema: str | os.PathLike | None = None
) -> dict[str, dict[str, Any]]:
    """Check a parsed curation document against its schema; ``{6-digit id: record}``.

    Parameters
    ----------
    doc : Any
        The parsed YAML (None is an empty curation).
    source : str
        Names the document in error messages (normally its path).
    schema : path, optional
        The JSON schema (default ``workflow/schemas/curation.schema.yaml``).

    Raises
    ------
    MicrolibError
        Naming the first offending field, or two keys that name one entry.
    """
    doc = {} if doc is None else doc
    schema_path = Path(schema) if schema is not None else CURATION_SCHEMA
    try:
        with open(schema_path, encoding="utf-8") as fh:
            sch = yaml.safe_load(fh)
    except OSError as exc:
        raise MicrolibError(f"curation schema {schema_path} unreadable: {exc}") from exc
    err = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(sch).iter_errors(doc))
    if err is not None:
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        raise MicrolibError(f"curation file {source}: {where}: {err.message}")
    out: dict[str, dict[str, Any]] = {}
    for key, record in (doc.get("entries") or {}).items():
        ident = entry_id(key)  # the schema's key pattern guarantees a valid id
        if ident in out:
            raise MicrolibError(f"curation file {source}: two records for entry {ident}")
        out[ident] = dict(record or {})
    return out


def load_curation(
    path: str | os.PathLike, schema: str | os.PathLike | None = None
) -> dict[str, dict[str, Any]]:
    """Read and validate a curation YAML file; ``{6-digit id: record}``.

    Raises
    ------
    MicrolibError
        When the file is missing, is not YAML or does not follow the schema.
    """
    try:
        with open(path, encoding="utf-8") as fh:
            doc = yaml.safe_load(fh)
    except FileNotFoundError as exc:
        raise MicrolibError(f"curation file {path} not found") from exc
    except OSError as exc:
        raise MicrolibError(f"curation file {path} unreadable: {exc}") from exc
    except yaml.YAMLError as exc:
        reason = " ".join(str(exc).split())
        raise MicrolibError(f"curation file {path} is not valid YAML: {reason}") from exc
    return validate_curation(doc, str(path), schema)


# --------------------------------------------------------------------------- applying


def curated_crop(box: list[int], shape: tuple[int, ...], entry: str | None) -> dict[str, Any]:
    """The annotation's ``crop`` for a curated box (raw coordinates)."""
    h, w = shape[:2]
    clipped = clip_box(box, shape)
    if clipped is None:
        raise MicrolibError(f"curated crop {box} lies outside the {w}x{h} image", entry=entry)
    x0, y0, x1, y1 = clipped
    return {
        "box": clipped,
        "removed": {"top": y0, "bottom": h - y1, "left": x0, "right": w - x1},
        "info_band": None,
        "source": "manual",
    }


def no_scale_bar(source: str) -> dict[str, Any]:
    """The annotation's ``scale_bar`` when there is none to mask."""
    return {
        "present": False,
        "box": None,
        "bar_box": None,
        "label_box": None,
        "colour": None,
        "tolerance": None,
        "length_px": None,
        "source": source,
    }


def curated_scale_bar(
    record: str | dict[str, Any], shape: tuple[int, ...], entry: str | None
) -> dict[str, Any]:
    """The annotation's ``scale_bar`` for a curated ``scale_bar`` field ("none" or a box)."""
    if isinstance(record, str):  # the schema allows only "none"
        return no_scale_bar("manual")
    box = clip_box(record["box"], shape)
    if box is None:
        raise MicrolibError(
            f"curated scale-bar box {record['box']} lies outside the image", entry=entry
        )
    colour = record.get("colour")
    return {
        "present": True,
        "box": box,
        "bar_box": record.get("bar_box"),
        "label_box": None,
        "colour": None if colour is None else float(colour),
        "tolerance": float(record.get("tolerance", 40.0)),
        "length_px": record.get("length_px") or (box[2] - box[0]),
        "source": "manual",
    }


def _curated_thresholds(record: dict[str, Any]) -> list[float] | None:
    if record.get("thresholds") is not None:
        return sorted(float(t) for t in record["thresholds"])
    if record.get("phases"):
        ph = sorted(float(p) for p in record["phases"])
        # MicroLib: thresholds are the midpoints between clicked phase grey levels
        return [(a + b) / 2.0 for a, b in zip(ph[:-1], ph[1:], strict=True)]
    return None


def curated_typing(
    record: dict[str, Any],
    typed: dict[str, Any],
    grey: np.ndarray,
    mask: np.ndarray | None,
    channels: int,
    entry: str | None,
) -> dict[str, Any]:
    """The automatic type decision ``typed`` with a record's ``data_type``/``phases``/
    ``thresholds`` applied (the thresholds' phase statistics recomputed on ``grey``)."""
    out = dict(typed)
    thr = _curated_thresholds(record)
    dtype = record.get("data_type")
    if dtype is None:
        dtype = nphase_type(len(thr) + 1) if thr else typed["data_type"]
    if dtype in NPHASE_TYPES:
        if thr is None:
            thr = typed["thresholds"] or None
        if not thr:
            raise MicrolibError(
                f"curated data_type {dtype} needs phases or thresholds "
                "(the image does not split automatically)",
                entry=entry,
            )
        if any(b <= a for a, b in zip(thr[:-1], thr[1:], strict=True)):
            raise MicrolibError(
                f"curated phases/thresholds give thresholds {thr} that are not "
                "strictly ascending (two phases with one grey level?)",
                entry=entry,
            )
        n = len(thr) + 1
        want = {"twophase": 2, "threephase": 3}.get(dtype)
        if want is not None and n != want:
            raise MicrolibError(
                f"curated data_type {dtype} but {n} phases from the curated phases/thresholds",
                entry=entry,
            )
        if n > MAX_PHASES:
            raise MicrolibError(
                f"curated phases/thresholds give {n} phases; at most {MAX_PHASES}", entry=entry
            )
        out.update(
            data_type=dtype,
            n_phases=n,
            thresholds=[round(t, 3) for t in thr],
            **phase_stats(grey, thr, mask),
        )
        return out
    if dtype in ("grayscale", "colour"):
        if dtype == "colour" and channels != 3:
            raise MicrolibError(
                "curated data_type colour but the image is single-channel", entry=entry
            )
        out.update(
            data_type=dtype,
            n_phases=3 if dtype == "colour" else 1,
            thresholds=[],
            grey_values=None,
            fractions=None,
        )
        return out
    raise MicrolibError(f"unknown curated data_type {dtype!r}", entry=entry)


def curated_voxel_size(
    record: dict[str, Any], bar: dict[str, Any], entry: str | None
) -> float | None:
    """Micrometres per pixel from a curated ``voxel_size_um``, or from a curated
    ``scale_bar_um`` (the label's number) over the measured bar length; never guessed."""
    if record.get("voxel_size_um") is not None:
        return float(record["voxel_size_um"])
    if record.get("scale_bar_um") is None:
        return None
    if not bar.get("length_px"):
        raise MicrolibError("curated scale_bar_um but no scale bar length is known", entry=entry)
    return float(record["scale_bar_um"]) / float(bar["length_px"])


def curated_verdict(record: dict[str, Any]) -> dict[str, Any] | None:
    """``{include, reason}`` when the record forces the verdict, else None."""
    if record.get("include") is None:
        return None
    return {"include": bool(record["include"]), "reason": str(record.get("reason") or "curated")}


# --------------------------------------------------------------------------- MicroLib import


def curation_from_prelabelled(prelabelled: dict[str, Any]) -> dict[str, Any]:
    """Convert MicroLib's ``prelabelled_anns.json`` into this pipeline's curation format.

    MicroLib fields: ``barbox`` ``[[x0, y0], [x1, y1]]`` (col, row; used as
    ``mask[y0:y1, x0:x1]``, so half-open like our boxes), ``barcol`` ``[colour,
    threshold]`` or null (null masked the whole box), ``phases`` (red-channel grey
    levels per phase; thresholds are their midpoints), ``vox_size`` (um/px) and
    ``data_type``. MicroLib's consumer masked ``abs(red - colour/255) < threshold/2550``
    in 0..1 units, i.e. a tolerance of ``threshold / 10`` grey levels.

    Returns
    -------
    dict
        ``{"entries": {id: record}}`` with 6-digit ids taken from ``data_path``.
    """
    entries: dict[str, Any] = {}
    for key, ann in prelabelled.items():
        path = str(ann.get("data_path", ""))
        m = re.search(r"(\d+)\.\w+$", path)
        ident = entry_id(m.group(1)) if m else entry_id(key)
        rec: dict[str, Any] = {}
        bb = ann.get("barbox")
        if bb:
            (x0, y0), (x1, y1) = bb
            box = [int(min(x0, x1)), int(min(y0, y1)), int(max(x0, x1)), int(max(y0, y1))]
            bc = ann.get("barcol")
            if bc:
                rec["scale_bar"] = {
                    "box": box,
                    "colour": float(bc[0]),
                    "tolerance": float(bc[1]) / 10.0,
                }
            else:
                rec["scale_bar"] = {"box": box, "colour": None, "tolerance": 0.0}
        phases = ann.get("phases") or []
        if phases:
            rec["phases"] = [float(p) for p in phases]
            rec["data_type"] = nphase_type(len(phases))
        elif ann.get("data_type"):
            rec["data_type"] = str(ann["data_type"])
        if ann.get("vox_size"):
            rec["voxel_size_um"] = float(ann["vox_size"])
        rec["note"] = f"imported from MicroLib prelabelled_anns.json key {key}"
        entries[ident] = rec
    return {"entries": dict(sorted(entries.items()))}
