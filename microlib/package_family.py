"""Families in the dataset: the record of one family generator and ``families.json``.

A family is one AdaIN-conditioned generator trained on several included entries (its
members), each with a code. It is packaged in ``families/{family}/`` beside the entry
folders, and listed in ``families.json`` (layout: ``workflow/schemas/families.schema.yaml``)
rather than in ``data_anns.json``, whose records stay MicroLib's (one micrograph each).
Each member's record carries its own credit and licence, as the members' micrographs are
what the generator was trained on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from microlib.dataset.read import FAMILIES_DIR, FAMILIES_FILE, clean_text
from microlib.errors import MicrolibError
from microlib.io import entry_name
from microlib.package import credit_line

FAMILY_MODEL_SUFFIXES = ("_Gen.pt", "_Disc.pt", "_params.json")
FAMILY_MEDIA = ("sweep.png", "sweep.gif")

_MEMBER_FIELDS = (
    "brief_descr",
    "technique",
    "contributor",
    "organisation",
    "licence",
    "licence_url",
    "retrieved",
)


def member_record(raw_meta: Mapping[str, Any], code: float, individual: bool) -> dict[str, Any]:
    """One member of a family: which entry, its code, its credit and licence.

    Parameters
    ----------
    raw_meta : mapping
        The member's ``raw/{id}.json`` (scraped record).
    code : float
    individual : bool
        Whether the member is also packaged as an entry of its own (``data_anns.json``).
    """
    meta = clean_text(dict(raw_meta))
    name = meta.get("name") or entry_name(meta["id"])
    return {
        "name": name,
        "doitpoms_id": int(meta["id"]) if meta.get("id") is not None else None,
        "code": float(code),
        **{k: meta.get(k) for k in _MEMBER_FIELDS},
        "doitpoms_url": meta.get("record_url"),
        "original_sha256": meta.get("image_sha256"),
        "credit": credit_line(meta),
        "packaged_individually": bool(individual),
    }


def family_record(
    name: str,
    params: Mapping[str, Any],
    metrics: Mapping[str, Any],
    members_meta: Iterable[Mapping[str, Any]],
    files: Iterable[str],
    individual: bool = True,
) -> dict[str, Any]:
    """The ``families.json`` record of one family.

    Parameters
    ----------
    name : str
        Family name (the config's key).
    params : mapping
        The family generator's ``{name}_params.json`` (with its ``conditional`` block).
    metrics : mapping
        ``microlib family metrics`` output (feature size vs code).
    members_meta : iterable of mapping
        Each member's ``raw/{id}.json``; matched to its code through the training file
        names recorded in ``params`` (``training/{member}.png``).
    files : iterable of str
        File names inside ``families/{name}/``.
    individual : bool
        Whether the members are also packaged as entries of their own.

    Returns
    -------
    dict
        Name, data type, phases, code range, members (ascending code) with credit and
        licence, the generated codes, generator facts and feature size by code.
    """
    cond = params.get("conditional") or {}
    if not cond:
        raise MicrolibError("not a family generator (no conditional block)", entry=name)
    code_of = {str(m["file"]).rsplit(".", 1)[0]: float(m["code"]) for m in cond["members"]}
    members = []
    for meta in members_meta:
        member = meta.get("name") or entry_name(meta["id"])
        if member not in code_of:
            raise MicrolibError(f"{member} is not a member of this generator", entry=name)
        members.append(member_record(meta, code_of[member], individual))
    missing = sorted(set(code_of) - {m["name"] for m in members})
    if missing:
        raise MicrolibError(f"no record for member(s) {', '.join(missing)}", entry=name)
    training = params.get("training") or {}
    return {
        "name": name,
        "kind": cond.get("kind"),
        "data_type": params.get("data_type") or params.get("image_type"),
        "n_phases": params.get("nc"),
        "phase_grey_values": params.get("phase_grey_values"),
        "voxel_size_um": params.get("voxel_size_um"),
        "code_range": list(cond.get("code_range") or []),
        "members": sorted(members, key=lambda m: m["code"]),
        "codes": [row["code"] for row in metrics.get("codes", [])],
        "generator": {
            "format_version": params.get("format_version"),
            "code_dim": cond.get("code_dim"),
            "nz": params.get("nz"),
            "lz": params.get("lz"),
            "training": {
                k: training[k]
                for k in ("preset", "iterations", "seed", "device", "wall_time_s")
                if k in training
            },
        },
        "feature_size": {
            "members": [_size_row(r) for r in metrics.get("members", [])],
            "codes": [_size_row(r) for r in metrics.get("codes", [])],
            "summary": dict(metrics.get("summary") or {}),
        },
        "files": sorted(files),
    }


def _size_row(row: Mapping[str, Any]) -> dict[str, Any]:
    keep = (
        "code",
        "correlation_length_px",
        "mean_chord_length_px",
        "volume_fractions",
        "member_correlation_length_px",
        "correlation_length_error_pct",
    )
    return {k: row[k] for k in keep if k in row}


def families_index(records: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """``families.json``: family records keyed by name, sorted."""
    out: dict[str, dict[str, Any]] = {}
    for rec in records:
        if rec["name"] in out:
            raise MicrolibError(f"two families named {rec['name']!r}")
        out[rec["name"]] = clean_text(dict(rec))
    return dict(sorted(out.items()))


__all__ = [
    "FAMILIES_DIR",
    "FAMILIES_FILE",
    "FAMILY_MEDIA",
    "FAMILY_MODEL_SUFFIXES",
    "families_index",
    "family_record",
    "member_record",
]
