"""The demo site as files: imaged entries, record pages and the ground truth."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np

from microlib.demo_site.catalogue import build_entries
from microlib.demo_site.records import record_fields, record_html
from microlib.demo_site.scale_bar import add_frame, encode_jpeg, render_scale_bar
from microlib.demo_site.structures import to_uint8

EMPTY_RECORDS = (12,)


def _phase_fractions(labels: np.ndarray, n: int, exclude: np.ndarray | None = None) -> list[float]:
    lab = labels if exclude is None else labels[~exclude]
    counts = np.bincount(lab.ravel(), minlength=n).astype(np.float64)
    return [round(float(c / counts.sum()), 5) for c in counts]


def render_entry(spec: dict[str, Any]) -> tuple[bytes, dict[str, Any], dict[str, np.ndarray]]:
    """Image an entry: scale bar, frame, JPEG; return (jpeg bytes, truth, truth arrays)."""
    img = to_uint8(spec["img"])
    if spec.get("rgb") and img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    h, w = img.shape[:2]
    out, overlay, bar = render_scale_bar(img, spec["bar"])
    frame_w = 0
    if spec.get("frame"):
        frame_w, value = spec["frame"]
        out = add_frame(out, frame_w, value)
        overlay = np.pad(overlay, frame_w)
        for k in ("bar_box", "label_box", "box"):
            if bar.get(k):
                bar[k] = [v + frame_w for v in bar[k]]
    crop = [frame_w, frame_w, frame_w + w, frame_w + h]
    jpeg = encode_jpeg(out, quality=88 if spec["number"] % 2 else 85)
    labels = spec.get("labels")
    in_crop = overlay[crop[1] : crop[3], crop[0] : crop[2]]
    voxel = spec["bar"].voxel_size_um if spec["bar"].placement != "none" else None
    truth = {
        "id": f"{spec['number']:06d}",
        "kind": spec["kind"],
        "data_type": spec["data_type"],
        "n_phases": (
            len(spec["grey_levels"])
            if spec.get("grey_levels")
            else (3 if spec["data_type"] == "colour" else 1)
        ),
        "included": bool(spec["included"]),
        "criterion": spec.get("criterion"),
        "duplicate_of": (f"{spec['duplicate_of']:06d}" if spec.get("duplicate_of") else None),
        "image_size": [int(out.shape[0]), int(out.shape[1])],
        "channels": 3 if out.ndim == 3 else 1,
        "crop_box": crop,
        "scale_bar": bar,
        "scale_bar_in_crop": bool(in_crop.any()),
        "voxel_size_um": voxel,
        "phase_grey_levels": spec.get("grey_levels"),
        "phase_fractions": (
            _phase_fractions(labels, len(spec["grey_levels"]), in_crop)
            if labels is not None
            else None
        ),
        "labels": f"truth/{spec['number']:06d}_labels.png" if labels is not None else None,
        "bar_mask": f"truth/{spec['number']:06d}_barmask.png",
        "record": record_fields(spec["record"]),
        "family": spec.get("family"),
    }
    arrays = {"barmask": (overlay * 255).astype(np.uint8)}
    if labels is not None:
        arrays["labels"] = labels.astype(np.uint8)
    return jpeg, truth, arrays


def build_site(seed: int = 0) -> tuple[dict[str, bytes], dict[str, Any]]:
    """Every file of the demo site, and its ground truth.

    Parameters
    ----------
    seed : int
        Seeds every random choice; the same seed gives byte-identical files.

    Returns
    -------
    files : dict
        Relative path -> bytes (``robots.txt``, ``miclib/full_record/{N}.html``,
        ``miclib/micrographs/large/{N:06d}.jpg``, ``truth/*.png``, ``ground_truth.json``).
    truth : dict
        The ground truth written to ``ground_truth.json``.
    """
    from PIL import Image

    files: dict[str, bytes] = {"robots.txt": b"User-agent: *\nAllow: /\n"}
    entries: dict[str, Any] = {}
    for spec in build_entries(seed):
        n = spec["number"]
        jpeg, truth, arrays = render_entry(spec)
        files[f"miclib/micrographs/large/{n:06d}.jpg"] = jpeg
        files[f"miclib/full_record/{n}.html"] = record_html(n, spec["record"]).encode("utf-8")
        for key, arr in arrays.items():
            buf = io.BytesIO()
            Image.fromarray(arr).save(buf, format="PNG")
            name = "labels" if key == "labels" else "barmask"
            files[f"truth/{n:06d}_{name}.png"] = buf.getvalue()
        entries[truth["id"]] = truth
    for n in EMPTY_RECORDS:
        files[f"miclib/full_record/{n}.html"] = record_html(n, None).encode("utf-8")
    present = sorted(int(k) for k in entries)
    truth_doc = {
        "seed": int(seed),
        "id_range": [1, 40],
        "present": [f"{n:06d}" for n in present],
        "missing": [f"{n:06d}" for n in EMPTY_RECORDS],
        "included": sorted(k for k, v in entries.items() if v["included"]),
        "excluded": {k: v["criterion"] for k, v in sorted(entries.items()) if not v["included"]},
        "conventions": {
            "boxes": "[x0, y0, x1, y1] half-open, raw image pixels (x = column)",
            "labels": "truth/{id}_labels.png: phase labels 0..n-1 (ascending grey) of the cropped data "
            "region, the structure before imaging (blur, noise, scale bar, JPEG)",
            "bar_mask": "truth/{id}_barmask.png: raw image size, 255 where the scale bar or its label "
            "touched a pixel (antialiasing included)",
        },
        "entries": dict(sorted(entries.items())),
    }
    files["ground_truth.json"] = (
        json.dumps(truth_doc, indent=2, ensure_ascii=False) + "\n"
    ).encode("utf-8")
    return files, truth_doc
