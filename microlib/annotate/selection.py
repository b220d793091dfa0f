"""The selection checkpoint: per-image verdicts re-decided, then uniqueness across entries.

Works on stored annotations only (scores, thresholds, fingerprints, metadata), so a
changed threshold re-decides the dataset without re-annotating any image.
"""

from __future__ import annotations

from typing import Any

from microlib.annotate.filters import (
    FILTERS,
    evaluate_filters,
    scores_from_filters,
    thresholds_from_filters,
)
from microlib.annotate.metadata import metadata_similarity
from microlib.annotate.params import SCHEMA_VERSION, FilterThresholds
from microlib.annotate.uniqueness import fingerprint_distance
from microlib.io import entry_name


def reevaluate(
    annotation: dict[str, Any], overrides: dict[str, Any] | None = None
) -> tuple[bool, list[str], list[str]]:
    """Re-decide one annotation's per-image verdict, optionally with other thresholds.

    Thresholds not overridden stay those the annotation was made with, so a bare
    ``select`` reproduces ``annotate``'s verdicts; curated include/exclude always wins.

    Returns
    -------
    included : bool
    reasons : list of str
    criteria : list of str
        The failed criteria (``isotropy``, ..., ``unreadable``, ``curation``).
    """
    if not annotation.get("readable", True):
        return False, list(annotation.get("reasons") or ["unreadable image"]), ["unreadable"]
    base = thresholds_from_filters(
        annotation.get("filters") or {}, FilterThresholds().updated(annotation.get("thresholds"))
    )
    th = base.updated(overrides)
    filters, reasons = evaluate_filters(scores_from_filters(annotation.get("filters") or {}), th)
    criteria = [name for name in FILTERS if filters[name]["passed"] is False]
    forced = annotation.get("forced")
    if forced is not None:
        if forced.get("include"):
            return True, [], []
        return (
            False,
            [f"curation: {forced.get('reason') or 'excluded by hand'}"] + reasons,
            ["curation"] + criteria,
        )
    return not reasons, reasons, criteria


def select_entries(
    annotations: dict[str, dict[str, Any]], overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Decide the dataset: per-image verdicts, then uniqueness across entries.

    Two entries are near-duplicates when their metadata describe the same material
    (:func:`metadata_similarity` >= ``dup_meta_min``) and their fingerprints are close
    (:func:`fingerprint_distance` <= ``dup_distance_max``). Groups are formed
    transitively; per group one entry is kept, chosen by (1) passing the per-image
    filters, (2) the larger field of view (more pixels of microstructure to train on),
    (3) the lower id. The others are excluded, naming the entry they duplicate. As in
    MicroLib, different magnifications of one material are not duplicates: their
    autocorrelations differ, so their fingerprints do.

    Parameters
    ----------
    annotations : dict
        ``{id: annotation}`` (6-digit ids).
    overrides : dict, optional
        :class:`FilterThresholds` field values replacing those stored in the annotations.

    Returns
    -------
    dict
        ``included`` (sorted ids), ``excluded`` ``{id: {name, reasons, criteria}}``,
        ``duplicates`` (groups with the kept id and pairwise evidence) and ``thresholds``.
    """
    th = FilterThresholds().updated(overrides)
    verdicts: dict[str, tuple[bool, list[str], list[str]]] = {}
    for ident, ann in sorted(annotations.items()):
        verdicts[ident] = reevaluate(ann, overrides)

    ids = sorted(
        i for i, a in annotations.items() if a.get("readable", True) and a.get("fingerprint")
    )
    parent = {i: i for i in ids}

    def find(i: str) -> str:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    pairs = []
    for a_i, a in enumerate(ids):
        for b in ids[a_i + 1 :]:
            ma = annotations[a].get("metadata") or {}
            mb = annotations[b].get("metadata") or {}
            sim = metadata_similarity(ma, mb)
            if sim < th.dup_meta_min:
                continue
            dist = fingerprint_distance(
                annotations[a]["fingerprint"], annotations[b]["fingerprint"]
            )
            if dist <= th.dup_distance_max:
                pairs.append(
                    {"a": a, "b": b, "fingerprint_distance": dist, "metadata_similarity": sim}
                )
                parent[find(b)] = find(a)

    groups: dict[str, list[str]] = {}
    for i in ids:
        groups.setdefault(find(i), []).append(i)

    def area(i: str) -> int:
        box = (annotations[i].get("crop") or {}).get("box") or [0, 0, 0, 0]
        return (box[2] - box[0]) * (box[3] - box[1])

    duplicates = []
    dup_reason: dict[str, tuple[str, float]] = {}
    for members in groups.values():
        if len(members) < 2:
            continue
        kept = sorted(members, key=lambda i: (not verdicts[i][0], -area(i), i))[0]
        group_pairs = [p for p in pairs if p["a"] in members and p["b"] in members]
        for m in members:
            if m == kept:
                continue
            ds = [p["fingerprint_distance"] for p in group_pairs if {p["a"], p["b"]} == {m, kept}]
            dist = (
                ds[0]
                if ds
                else min(p["fingerprint_distance"] for p in group_pairs if m in (p["a"], p["b"]))
            )
            dup_reason[m] = (kept, dist)
        duplicates.append({"kept": kept, "members": sorted(members), "pairs": group_pairs})

    included: list[str] = []
    excluded: dict[str, Any] = {}
    for ident in sorted(annotations):
        ok, reasons, criteria = verdicts[ident]
        forced = annotations[ident].get("forced")
        forced_in = bool(forced and forced.get("include"))
        if ident in dup_reason and not forced_in:
            kept, dist = dup_reason[ident]
            reasons = reasons + [
                f"uniqueness: near-duplicate of {kept} ({entry_name(kept)}), same material, "
                f"fingerprint distance {dist:.3f} <= {th.dup_distance_max:.3f}"
            ]
            criteria = criteria + ["uniqueness"]
            ok = False
        if ok:
            included.append(ident)
        else:
            excluded[ident] = {"name": entry_name(ident), "reasons": reasons, "criteria": criteria}
    return {
        "schema_version": SCHEMA_VERSION,
        "thresholds": th.as_dict(),
        "included": included,
        "excluded": excluded,
        "duplicates": duplicates,
    }
