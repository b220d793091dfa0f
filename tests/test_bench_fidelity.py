"""``microlib bench fidelity`` end to end on two tiny synthetic "real" micrographs."""

from __future__ import annotations

import argparse
import csv
import math
import re

import numpy as np
import pytest
from scipy import ndimage

from microlib import io as mio
from microlib.benchmarks.fidelity import Entry, build_candidates, compare
from microlib.cli import main

_FIELDS = ["name", "entry", "category", "corr_len_x_px", "corr_len_y_px", "notes"]


def _realdata(root):
    rng = np.random.default_rng(0)
    (root / "micrographs").mkdir(parents=True)
    field = ndimage.gaussian_filter(rng.standard_normal((2, 64, 64)), (0, 3, 3))
    two = np.where(field[0] > 0, 255, 0).astype(np.uint8)
    grey = np.clip(128 + 400 * field[1], 0, 255).astype(np.uint8)
    rows = []
    for entry, img, category in (("001", two, "two-phase"), ("002", grey, "grayscale")):
        mio.write_png(root / "micrographs" / f"micro{entry}.png", np.stack([img] * 3, axis=-1))
        rows.append([f"micro{entry}.png", entry, category, "3.0", "3.0", ""])
    with (root / "micrographs.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(_FIELDS)
        w.writerows(rows)
    return root


def test_bench_fidelity_prints_per_entry_rows_means_and_writes_a_montage(tmp_path, capsys):
    real = _realdata(tmp_path / "realdata")
    out = tmp_path / "out"
    args = ["bench", "fidelity", "--realdata", str(real), "--out", str(out), "--size", "32"]
    args += ["--preset", "tiny", "--iterations", "2", "--baseline-iterations", "2"]
    args += ["--demo-iterations", "2", "--threads", "1"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "transpose/transpose stages, no EMA" in text, text
    assert "transpose/resize_trilinear stages, EMA 0.99" in text, text
    for cand in ("baseline", "demo", "preset"):
        assert len(re.findall(rf"^\s+{cand}\s+[\d.]+", text, re.M)) == 3, text  # 2 rows + mean
    assert "means over 2 entries" in text and "MicroLib reported" in text, text
    montage = mio.read_image(out / "montage.png")
    assert montage.shape[0] == 2 * 36 and montage.shape[1] == 10 * 36, montage.shape
    doc = mio.read_json(out / "results.json")
    assert set(doc["means"]) == {"baseline", "demo", "preset"}
    assert [r["entry"] for r in doc["results"]["demo"]] == ["001", "002"]


def test_bench_fidelity_named_entries_only(tmp_path, capsys):
    real = _realdata(tmp_path / "realdata")
    args = ["bench", "fidelity", "--realdata", str(real), "--out", str(tmp_path / "out")]
    args += ["--size", "32", "--entries", "002", "--candidates", "demo", "--demo-iterations", "1"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "\n002 (grayscale" in text and "\n001 (" not in text, text
    assert len(re.findall(r"^\s+demo\s+[\d.]+", text, re.M)) == 2, text


def test_bench_fidelity_seeds_give_per_entry_means_over_training_runs(tmp_path, capsys):
    real = _realdata(tmp_path / "realdata")
    out = tmp_path / "out"
    args = ["bench", "fidelity", "--realdata", str(real), "--out", str(out), "--size", "32"]
    args += ["--entries", "001", "--candidates", "demo", "--demo-iterations", "1"]
    assert main(args + ["--seeds", "2", "--seed", "3"]) == 0
    text = capsys.readouterr().out
    assert re.search(r"^\s+demo seed 3\s+[\d.]+", text, re.M), text
    assert re.search(r"^\s+demo seed 4\s+[\d.]+", text, re.M), text
    assert re.search(r"^\s+demo mean\s+[\d.]+", text, re.M), text
    (rec,) = mio.read_json(out / "results.json")["results"]["demo"]
    runs = rec["seeds"]
    assert [r["seed"] for r in runs] == [3, 4]
    for key in ("vf_pts", "sa_pct", "aniso_3d"):
        assert rec[key] == pytest.approx((runs[0][key] + runs[1][key]) / 2)
    worst = max(runs, key=lambda r: r["aniso_3d"])
    assert f"single run {worst['aniso_3d']:.3f} (001, seed {worst['seed']})" in text, text


def test_bench_fidelity_without_realdata_says_so(tmp_path, capsys):
    assert main(["bench", "fidelity", "--realdata", str(tmp_path / "none")]) == 0
    assert "no real data" in capsys.readouterr().out


def test_baseline_keeps_the_first_demo_net_for_every_image_type():
    args = argparse.Namespace(
        baseline_iterations=300,
        demo_iterations=None,
        preset=None,
        iterations=None,
        candidates="baseline,demo",
    )
    base, demo = (c.preset for c in build_candidates(args))
    for kind in ("nphase", "grayscale", "colour"):
        b = base.for_image_type(kind)
        assert (b.g_hidden_stage, b.gp, b.l, b.g_output_stage) == (
            "transpose",
            (2, 2, 2, 3),
            32,
            "transpose",
        )
    assert demo.for_image_type("grayscale").g_hidden_stage == "blur"


def test_grey_entries_are_compared_on_structure_not_pixel_noise():
    """A noise-free volume of the same grains as a noisy micrograph: the raw threshold
    counts the noise as interfaces, the denoised comparison does not."""
    rng = np.random.default_rng(1)
    grains = ndimage.gaussian_filter(rng.standard_normal((48, 96, 96)), 4)
    grains = np.where(grains > 0, 170.0, 80.0)
    clean = ndimage.gaussian_filter(grains, 0.7)
    noisy = np.clip(clean[24] + rng.normal(0, 25, clean[24].shape), 0, 255).astype(np.uint8)
    entry = Entry("g", "grayscale", noisy)
    rec = compare(entry, np.round(clean).astype(np.uint8))
    assert rec["sa_raw_pct"] > 40, rec
    assert rec["sa_pct"] < 15, rec
    # one slice's fraction differs from the volume's by sampling alone; noise adds little
    truth = 100 * abs((grains[24] > 125).mean() - (grains > 125).mean())
    assert abs(rec["vf_pts"] - truth) < 1.0, (rec, truth)
    # the n-phase comparison is untouched: labels as they are, no raw column
    two = (grains[24] > 100).astype(np.uint8)
    rec2 = compare(Entry("t", "nphase", two), (grains > 100).astype(np.uint8))
    assert math.isnan(rec2["sa_raw_pct"]) and rec2["sa_pct"] < 15, rec2
