"""Validation metrics: analytic cases, exactness against direct reference sums,
taufactor agreement, schema, CLI, and the real three-phase volume."""

from __future__ import annotations

import contextlib
import io
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import ndimage

from microlib import io as mio
from microlib import validate as V
from microlib.cli import main
from microlib.errors import MicrolibError

SCHEMA = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "metrics.schema.yaml"


def schema_check(doc: dict) -> None:
    import jsonschema

    schema = yaml.safe_load(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    # the command adds the entry header to what compare() returns
    doc = {"name": "microstructure001", **doc}
    # round trip through JSON: what the command writes is what is validated
    jsonschema.validate(json.loads(mio.dumps_json(doc)), schema)


def blobs(shape, sigma=2.0, n_phases=2, seed=0, fractions=None) -> np.ndarray:
    f = ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal(shape), sigma)
    cuts = np.cumsum(fractions or [1.0 / n_phases] * n_phases)[:-1]
    return np.digitize(f, np.quantile(f, cuts)).astype(np.uint8)


def reference_s2(labels, k, axis, lag):
    """Straightforward P(both ends in phase k) over pairs inside the array."""
    a = np.moveaxis(labels == k, axis, 0).astype(np.float64)
    return float(np.mean(a[: a.shape[0] - lag] * a[lag:]))


def reference_faces(labels):
    """Differing neighbour pairs / all neighbour pairs, by brute force."""
    diff = total = 0
    for axis in range(labels.ndim):
        a = np.moveaxis(labels, axis, 0)
        diff += int(np.count_nonzero(a[1:] != a[:-1]))
        total += a[1:].size
    return diff / total


# --------------------------------------------------------------------------- analytic


def test_checkerboard():
    cb = (np.indices((40, 50)).sum(axis=0) % 2).astype(np.uint8)
    s2 = V.two_point_correlation(cb, 2, 6)
    for k in (0, 1):
        for axis in (0, 1):
            np.testing.assert_allclose(s2[k, axis], [0.5, 0, 0.5, 0, 0.5, 0, 0.5])
    sa = V.surface_area_density(cb, 2)
    assert sa["total"] == 1.0
    np.testing.assert_array_equal(sa["per_phase"], [1.0, 1.0])
    cb3 = (np.indices((12, 14, 16)).sum(axis=0) % 2).astype(np.uint8)
    assert V.surface_area_density(cb3, 2)["total"] == 1.0
    np.testing.assert_allclose(V.two_point_correlation(cb3, 2, 3)[1], [[0.5, 0, 0.5, 0]] * 3)


def test_stripes():
    # bands 4 rows thick: constant along x, period 8 along y
    img = ((np.arange(64)[:, None] // 4) % 2 * np.ones((1, 50))).astype(np.uint8)
    s2 = V.two_point_correlation(img, 2, 8)
    np.testing.assert_allclose(s2[1, 1], 0.5)  # along x every pair stays in its band
    assert s2[1, 0, 4] == 0.0  # 4 rows down is always the other phase
    np.testing.assert_allclose(
        s2[1, 0, :5], [0.5, 3 / 8 * 64 / 63, 2 / 8 * 64 / 62, 1 / 8 * 64 / 61, 0], rtol=0.02
    )
    sa = V.surface_area_density(img, 2)
    assert sa["per_axis"][1] == 0.0
    assert sa["per_axis"][0] == pytest.approx(15 / 63)  # 15 band boundaries in 63 row pairs
    assert V.correlation_length(s2[1, 1], 0.5) is None  # never decorrelates along x
    assert V.percolation(img, 1) == [False, True]


def test_random_field_known_fraction():
    rng = np.random.default_rng(1)
    p = 0.3
    vol = (rng.random((96, 96, 96)) < p).astype(np.uint8)
    s2 = V.two_point_correlation(vol, 2, 5)
    vf = V.volume_fractions(vol, 2)
    np.testing.assert_allclose(s2[:, :, 0], np.repeat(vf[:, None], 3, axis=1))  # S2(0) = vf
    np.testing.assert_allclose(s2[1, :, 1:], p * p, atol=0.003)  # S2(r>0) = vf^2
    np.testing.assert_allclose(s2[0, :, 1:], (1 - p) ** 2, atol=0.004)
    assert V.surface_area_density(vol, 2)["total"] == pytest.approx(2 * p * (1 - p), abs=0.003)


def test_s2_decays_to_vf_squared():
    img = blobs((400, 400), sigma=3.0, fractions=[0.7, 0.3], seed=2)
    s2 = V.two_point_correlation(img, 2, 60).mean(axis=1)
    vf = V.volume_fractions(img, 2)
    assert s2[1, 0] == pytest.approx(vf[1])
    assert abs(s2[1, 60] - vf[1] ** 2) < 0.01
    assert np.all(np.diff(s2[1, :8]) < 0)  # monotone decay at short range
    cl = V.correlation_length(s2[1], vf[1])
    assert 2.0 < cl < 10.0


def test_correlation_length_of_an_exponential():
    vf, xi = 0.4, 5.0
    r = np.arange(40)
    s2 = vf * vf + (vf - vf * vf) * np.exp(-r / xi)
    assert V.correlation_length(s2, vf) == pytest.approx(xi, abs=0.05)
    assert V.correlation_length(s2, 0.0) is None


# --------------------------------------------------------------------------- exactness


@pytest.mark.parametrize("shape", [(37, 41), (13, 17, 19)])
def test_s2_and_surface_equal_direct_sums(shape):
    lab = np.random.default_rng(3).integers(0, 3, shape).astype(np.uint8)
    lab[: shape[0] // 2] = blobs(lab[: shape[0] // 2].shape, sigma=1.5, n_phases=3, seed=4)
    s2 = V.two_point_correlation(lab, 3, 9)
    for k in range(3):
        for axis in range(lab.ndim):
            for lag in range(10):
                assert s2[k, axis, lag] == pytest.approx(reference_s2(lab, k, axis, lag), abs=1e-12)
    sa = V.surface_area_density(lab, 3)
    assert sa["total"] == pytest.approx(reference_faces(lab), abs=1e-12)
    for k in range(3):  # faces with phase k on exactly one side
        ref = sum(
            int(
                np.count_nonzero(
                    (np.moveaxis(lab, a, 0)[1:] == k) != (np.moveaxis(lab, a, 0)[:-1] == k)
                )
            )
            for a in range(lab.ndim)
        )
        total = sum(np.moveaxis(lab, a, 0)[1:].size for a in range(lab.ndim))
        assert sa["per_phase"][k] == pytest.approx(ref / total, abs=1e-12)


def test_grey_autocovariance_equals_direct_sum():
    g = np.random.default_rng(5).integers(0, 256, (20, 23, 26)).astype(np.uint8)
    g = ndimage.uniform_filter(g, 3)
    ac = V.grey_autocovariance(g, 7)
    x = g.astype(np.float64) - g.mean()
    for axis in range(3):
        a = np.moveaxis(x, axis, 0)
        for lag in range(8):
            ref = np.mean(a[: a.shape[0] - lag] * a[lag:]) / x.var()
            assert ac[axis, lag] == pytest.approx(ref, abs=1e-5)
    assert ac[0, 0] == pytest.approx(1.0, abs=1e-6)


def test_wasserstein_of_shifted_histograms():
    a = np.zeros(256)
    a[100] = 1
    b = np.zeros(256)
    b[112] = 1
    assert V.wasserstein_1(a, b) == pytest.approx(12.0)
    assert V.wasserstein_1(a, a) == 0.0


def test_tpb_matches_taufactor():
    import taufactor.metrics as tm

    vol = blobs((18, 22, 25), sigma=1.2, n_phases=3, seed=6)
    with contextlib.redirect_stdout(io.StringIO()):  # taufactor prints the edge count
        ref = float(tm.triple_phase_boundary(vol.astype(np.int64)))
    assert ref > 0
    assert V.triple_phase_boundary_density(vol) == pytest.approx(ref, rel=1e-6)
    with pytest.raises(MicrolibError, match="exactly 3 phases"):
        V.triple_phase_boundary_density((vol > 0).astype(np.uint8))


def test_percolation_per_axis():
    vol = np.zeros((20, 20, 20), np.uint8)
    vol[:, 5:8, 5:8] = 1  # a column along z
    assert V.percolation(vol, 1) == [True, False, False]
    assert V.percolation(vol, 0) == [True, True, True]
    assert V.percolation(vol, 2) == [False, False, False]  # absent phase
    diag = np.zeros((10, 10), np.uint8)
    diag[np.arange(10), np.arange(10)] = 1  # corner contacts do not conduct
    assert V.percolation(diag, 1) == [False, False]


def test_tortuosity_straight_channels_and_blocked_phase():
    vol = np.zeros((32, 32, 32), np.uint8)
    vol[:, 8:16, 8:16] = 1
    vol[:, 20:28, 4:12] = 1
    open_ = V.tortuosity(vol, 1)
    assert open_["percolates"] and open_["tau"] == pytest.approx(1.0, abs=0.02)
    assert open_["vf"] == pytest.approx(128 / 1024)
    blocked = vol.copy()
    blocked[16] = 0  # a wall across z
    res = V.tortuosity(blocked, 1)
    assert res == {**res, "percolates": False, "tau": None, "d_eff": None}


# --------------------------------------------------------------------------- documents


def test_nphase_document_identical_statistics_no_flags():
    vol = blobs((64, 64, 64), sigma=2.0, n_phases=3, seed=7)
    doc = V.compare(
        vol[32], vol, data_type="threephase", n_phases=3, max_lag=16, tortuosity_size=32
    )
    schema_check(doc)
    assert doc["max_lag"] == 16 and len(doc["phases"]) == 3
    for ph in doc["phases"]:
        assert ph["vf_abs_error"] < 0.03
        assert len(ph["s2_3d"]) == 17 and ph["s2_3d"][0] == ph["vf_3d"]
        assert ph["tortuosity"]["shape"] == [32, 32, 32]
    assert doc["tpb_density_3d"] > 0
    assert doc["summary"]["s2_mean_abs_error"] < 0.01
    assert (
        "vf_error" not in doc["summary"]["flags"]
        and "anisotropic_3d" not in doc["summary"]["flags"]
    )


def test_nphase_flags_catch_bad_volumes():
    img = blobs((128, 128), sigma=2.0, seed=8)
    # volume with another phase balance: MicroLib's outlier criterion
    shifted = blobs((48, 48, 48), sigma=2.0, fractions=[0.6, 0.4], seed=9)
    doc = V.compare(
        img, shifted, data_type="twophase", n_phases=2, max_lag=12, tortuosity_size=None
    )
    assert doc["summary"]["vf_max_abs_pct_error"] > 15
    assert "vf_error" in doc["summary"]["flags"]
    assert all(ph["tortuosity"] is None for ph in doc["phases"])
    # stretched along z: elongated features, an artefact the per-axis S2 exposes
    f = ndimage.gaussian_filter(np.random.default_rng(10).standard_normal((48, 48, 48)), (8, 2, 2))
    stretched = (f > np.median(f)).astype(np.uint8)
    doc = V.compare(
        img, stretched, data_type="twophase", n_phases=2, max_lag=20, tortuosity_size=None
    )
    assert doc["summary"]["anisotropy_3d"] > 2
    assert "anisotropic_3d" in doc["summary"]["flags"]
    # a phase that never appears in 3D
    doc = V.compare(
        img,
        np.zeros((24, 24, 24), np.uint8),
        data_type="twophase",
        n_phases=2,
        max_lag=8,
        tortuosity_size=16,
    )
    flags = doc["summary"]["flags"]
    assert "phase_missing_3d" in flags and "percolation_lost_3d" in flags
    assert doc["phases"][1]["tortuosity"]["percolates"] is False
    schema_check(doc)


def _blocks(shape, edge, fraction, seed):
    """Two-phase random blocks of ``edge`` px: features as large as a cube holds few of."""
    rng = np.random.default_rng(seed)
    cells = [-(-n // edge) for n in shape]
    coarse = (rng.random(cells) < fraction).astype(np.uint8)
    for axis in range(len(shape)):
        coarse = np.repeat(coarse, edge, axis=axis)
    return np.ascontiguousarray(coarse[tuple(slice(0, n) for n in shape)])


def test_thresholds_follow_the_images_own_spread_only_for_coarse_features():
    from microlib.validate.calibrate import THRESHOLDS, entry_thresholds, sampling_spread

    fine = blobs((256, 256), sigma=1.5, seed=21)
    coarse = _blocks((360, 440), 48, 0.45, seed=22)
    sf, sc = sampling_spread(fine, 2, 96, 24), sampling_spread(coarse, 2, 96, 24)
    assert sf["edge"] == sc["edge"] == 96 and sf["windows"] >= 9 and sc["windows"] >= 20
    assert sc["finest_chord_px"] > 40 > 10 > sf["finest_chord_px"]
    assert sc["vf_error_points"] > 5 * sf["vf_error_points"]
    keys = ("vf_error_points", "surface_pct_error", "s2_curve_error", "orientation_ratio")
    assert {k: entry_thresholds(THRESHOLDS, sf)[k] for k in keys} == {
        k: THRESHOLDS[k] for k in keys
    }
    raised = entry_thresholds(THRESHOLDS, sc)
    assert raised["vf_error_points"] > THRESHOLDS["vf_error_points"]
    assert raised["vf_error_points"] >= 1.5 * sc["vf_error_points"]
    assert raised["anisotropy"] == THRESHOLDS["anisotropy"]
    # the orientation ratio is a ratio: its excess over 1 takes the margin
    own = {"orientation_ratio": 1.5}
    assert entry_thresholds(THRESHOLDS, own)["orientation_ratio"] == 1.8
    own = {"orientation_ratio": 1.05}
    assert entry_thresholds(THRESHOLDS, own)["orientation_ratio"] == THRESHOLDS["orientation_ratio"]
    assert sampling_spread(fine[:100, :100], 2, 96, 24) is None  # one window: no spread
    # interfaces one way only: orientation undefined in every window, reported as such
    bands = np.zeros((300, 300), np.uint8)
    bands[:, 200:] = 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sampling_spread(bands, 2, 96, 24)["orientation_ratio"] is None

    # the same coarse structure in 3D: an independent cube of it differs from the image
    # by sampling alone, judged against the raised thresholds, which the document records
    vol = _blocks((96, 96, 96), 48, 0.45, seed=23)
    doc = V.compare(coarse, vol, data_type="twophase", n_phases=2, max_lag=24, tortuosity_size=None)
    schema_check(doc)
    assert doc["sampling_spread"]["edge"] == 96
    assert doc["thresholds"]["vf_error_points"] == raised["vf_error_points"]
    # a fine image against a cube with another balance is still flagged at the calibrated
    # threshold, and the reason does not blame the image
    shifted = blobs((64, 64, 64), sigma=1.5, fractions=[0.65, 0.35], seed=24)
    doc = V.compare(
        fine, shifted, data_type="twophase", n_phases=2, max_lag=16, tortuosity_size=None
    )
    assert doc["thresholds"]["vf_error_points"] == THRESHOLDS["vf_error_points"]
    assert "vf_error" in doc["summary"]["flags"]
    assert "own spread" not in doc["summary"]["flag_reasons"]["vf_error"]
    # a cube with no second phase at all: flagged as such whatever the spread; its volume
    # fraction only where the image's 96 px windows do not reach it themselves (48 px
    # blocks: some windows are one phase; 16 px blocks: up to 11 points), naming the spread
    empty = np.zeros((96, 96, 96), np.uint8)
    args = dict(data_type="twophase", n_phases=2, max_lag=24, tortuosity_size=None)
    doc = V.compare(coarse, empty, **args)
    assert "phase_missing_3d" in doc["summary"]["flags"]
    assert "vf_error" not in doc["summary"]["flags"]
    doc = V.compare(_blocks((360, 440), 16, 0.45, seed=22), empty, **args)
    assert "phase_missing_3d" in doc["summary"]["flags"]
    assert "own spread at 96 px" in doc["summary"]["flag_reasons"]["vf_error"]


@pytest.mark.parametrize("colour", [False, True])
def test_grey_document(colour):
    f = ndimage.gaussian_filter(np.random.default_rng(11).standard_normal((48, 48, 48)), 2)
    vol = np.clip(f / f.std() * 40 + 120, 0, 255).astype(np.uint8)
    if colour:
        vol = np.stack([vol, 255 - vol, vol // 2], axis=-1)
    img = vol[24]
    doc = V.compare(
        img,
        vol,
        data_type="colour" if colour else "grayscale",
        n_phases=3 if colour else 1,
        max_lag=10,
    )
    schema_check(doc)
    assert set(doc["channels"]) == ({"r", "g", "b"} if colour else {"grey"})
    ch = next(iter(doc["channels"].values()))
    assert ch["mean_abs_error"] < 5 and ch["w1"] < 5
    assert doc["autocovariance"]["3d"][0] == pytest.approx(1.0, abs=1e-4)
    assert doc["summary"]["autocov_mean_abs_error"] < 0.1
    brighter = np.clip(vol.astype(int) + 40, 0, 255).astype(np.uint8)
    doc = V.compare(
        img,
        brighter,
        data_type="colour" if colour else "grayscale",
        n_phases=3 if colour else 1,
        max_lag=10,
    )
    assert (
        "grey_mean_error" in doc["summary"]["flags"]
        and "grey_histogram_error" in doc["summary"]["flags"]
    )


def test_bad_inputs_raise():
    img = np.zeros((32, 32), np.uint8)
    with pytest.raises(MicrolibError, match="label 2"):
        V.compare(
            img, np.full((16, 16, 16), 2, np.uint8), data_type="twophase", n_phases=2, max_lag=4
        )
    with pytest.raises(MicrolibError, match="max_lag"):
        V.compare(
            img, np.zeros((16, 16, 16), np.uint8), data_type="twophase", n_phases=2, max_lag=16
        )


# --------------------------------------------------------------------------- CLI


def test_cli_writes_schema_valid_metrics(tmp_path):
    vol = blobs((40, 40, 40), sigma=1.5, n_phases=2, seed=12)
    meta = {
        "id": "000123",
        "data_type": "twophase",
        "n_phases": 2,
        "phase_grey_values": [10.0, 200.0],
        "voxel_size_um": 0.5,
    }
    img_p, vol_p = (
        tmp_path / "training" / "microstructure123.png",
        tmp_path / "volumes" / "microstructure123.tif",
    )
    mio.write_png(img_p, blobs((100, 120), sigma=1.5, seed=13), meta)
    mio.write_tif(vol_p, vol, 0.5, meta)
    out = tmp_path / "metrics" / "microstructure123.json"
    rc = main(
        [
            "validate",
            "--image",
            str(img_p),
            "--volume",
            str(vol_p),
            "--out",
            str(out),
            "--tau-size",
            "24",
            "--threads",
            "1",
        ]
    )
    assert rc == 0
    doc = mio.read_json(out)
    schema_check(doc)
    assert (
        doc["name"] == "microstructure123" and doc["id"] == "000123" and doc["voxel_size_um"] == 0.5
    )
    assert doc["max_lag"] == 20  # min(64, 40 // 2)
    assert doc["phases"][0]["tortuosity"]["shape"] == [24, 24, 24]
    assert doc["summary"]["vf_mean_abs_pct_error"] < 10
    rc = main(
        [
            "validate",
            "--image",
            str(img_p),
            "--volume",
            str(vol_p),
            "--out",
            str(out),
            "--no-tortuosity",
            "--max-lag",
            "8",
        ]
    )
    assert rc == 0
    doc = mio.read_json(out)
    assert doc["max_lag"] == 8 and all(p["tortuosity"] is None for p in doc["phases"])


def test_cli_mismatched_labels_one_error_line(tmp_path, capsys):
    meta = {"id": "000124", "data_type": "twophase", "n_phases": 2}
    img_p, vol_p = tmp_path / "t.png", tmp_path / "v.tif"
    mio.write_png(img_p, np.zeros((30, 30), np.uint8), meta)
    mio.write_tif(vol_p, np.full((10, 10, 10), 3, np.uint8))
    out = tmp_path / "m.json"
    assert main(["validate", "--image", str(img_p), "--volume", str(vol_p), "--out", str(out)]) == 2
    assert not out.exists()
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "microlib validate: error: microstructure124: volume holds label 3 but the entry has 2 phases"
    )


# --------------------------------------------------------------------------- real data


def _real_volume(realdata: Path) -> np.ndarray:
    return mio.read_tif(realdata / "volumes" / "threephase_128.tif")


def test_real_volume_slices_agree_with_3d(realdata):
    vol = _real_volume(realdata)
    vf3 = V.volume_fractions(vol, 3)
    np.testing.assert_allclose(vf3, [0.344, 0.519, 0.137], atol=0.001)  # README figures
    sa3 = V.surface_area_density(vol, 3)["total"]
    for axis in range(3):
        sl = np.take(vol, 64, axis=axis)
        doc = V.compare(
            sl, vol, data_type="threephase", n_phases=3, max_lag=24, tortuosity_size=None
        )
        for ph in doc["phases"]:
            assert ph["vf_abs_error"] < 0.03, (axis, ph["label"])
        assert doc["surface_area_density"]["pct_error"] < 10
        assert doc["surface_area_density"]["3d"] == pytest.approx(sa3, abs=1e-6)
        assert doc["summary"]["s2_mean_abs_error"] < 0.02
    assert V.triple_phase_boundary_density(vol) == pytest.approx(0.0089, abs=0.00005)


def test_real_octant_tortuosity_in_published_range(realdata):
    """README: over the eight 64^3 octants tau is 1.94-2.89 / 1.75-3.14 / 4.08-5.40."""
    octant = _real_volume(realdata)[:64, :64, :64]
    ranges = [(1.94, 2.89), (1.75, 3.14), (4.08, 5.40)]
    for k, (lo, hi) in enumerate(ranges):
        res = V.tortuosity(octant, k)
        assert res["percolates"] and lo - 0.01 <= res["tau"] <= hi + 0.01, (k, res)


@pytest.mark.slow
def test_real_volume_taufactor_reference_figures(realdata):
    """README reference: tau 2.25 / 2.27 / 4.40, D_eff 0.153 / 0.229 / 0.031 (axis 0)."""
    vol = _real_volume(realdata)
    for k, (tau, deff) in enumerate([(2.25, 0.153), (2.27, 0.229), (4.40, 0.031)]):
        res = V.tortuosity(vol, k)
        assert res["tau"] == pytest.approx(tau, abs=0.02)
        assert res["d_eff"] == pytest.approx(deff, abs=0.002)
        assert math.isfinite(res["seconds"])
