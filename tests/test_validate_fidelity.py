"""Fidelity metrics (per-axis surface area, anisotropy, checkerboard score, S2 curve
error) on cases with known answers, the calibrated flags in the metrics document, and
the calibration recomputed on the real volume."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from microlib import io as mio
from microlib import validate as V
from microlib.errors import MicrolibError
from tests.test_validate import blobs, schema_check


def stripes(shape, period: int, axis: int) -> np.ndarray:
    """Labels alternating every ``period`` voxels along ``axis`` only."""
    idx = np.indices(shape)[axis]
    return ((idx // period) % 2).astype(np.uint8)


def checker(shape) -> np.ndarray:
    return (np.indices(shape).sum(axis=0) % 2).astype(np.uint8)


# --------------------------------------------------------------------------- per axis


def test_surface_area_axes_of_stripes_exact():
    img = stripes((64, 50), 4, axis=0)
    # boundaries at y = 4, 8, ..., 60: 15 of the 63 neighbour pairs along y differ
    np.testing.assert_allclose(V.surface_area_density_axes(img), [15 / 63, 0.0])
    assert V.anisotropy(img) == math.inf
    vol = stripes((32, 40, 48), 8, axis=2)
    np.testing.assert_allclose(V.surface_area_density_axes(vol), [0.0, 0.0, 5 / 47])
    assert V.anisotropy(vol) == math.inf
    assert math.isnan(V.anisotropy(np.zeros((8, 8, 8), np.uint8)))


def test_surface_area_axes_agree_with_the_face_counts():
    vol = blobs((40, 36, 32), sigma=1.5, n_phases=3, seed=3)
    np.testing.assert_allclose(
        V.surface_area_density_axes(vol), V.surface_area_density(vol, 3)["per_axis"], atol=1e-12
    )


def test_anisotropy_isotropic_vs_stretched():
    rng = np.random.default_rng(0)
    iid = (rng.random((64, 64, 64)) < 0.5).astype(np.uint8)
    # every axis: P(neighbours differ) = 2 p (1 - p) = 0.5
    np.testing.assert_allclose(V.surface_area_density_axes(iid), 0.5, atol=0.01)
    assert V.anisotropy(iid) == pytest.approx(1.0, abs=0.02)
    assert V.anisotropy(blobs((64, 64, 64), sigma=2.0, seed=1)) < 1.1
    f = ndimage.gaussian_filter(rng.standard_normal((64, 64, 64)), (8, 2, 2))
    stretched = (f > np.median(f)).astype(np.uint8)
    sa = V.surface_area_density_axes(stretched)
    assert sa[0] < sa[1] / 2 and sa[0] < sa[2] / 2  # interfaces crossed rarely along z
    assert V.anisotropy(stretched) > 2.5


def test_grey_gradient_equals_surface_area_on_binary_and_sees_direction():
    img = blobs((50, 60), sigma=2.0, seed=4)
    np.testing.assert_allclose(V.grey_gradient_axes(img), V.surface_area_density_axes(img))
    f = ndimage.gaussian_filter(np.random.default_rng(5).standard_normal((48, 48, 48)), (2, 2, 6))
    assert V.grey_anisotropy(f) > 2
    g = ndimage.gaussian_filter(np.random.default_rng(6).standard_normal((48, 48, 48)), 2)
    assert V.grey_anisotropy(g) < 1.1


# --------------------------------------------------------------------------- checkerboard


def test_checkerboard_score_separates_artefacts_from_smooth():
    rng = np.random.default_rng(7)
    smooth = ndimage.gaussian_filter(rng.standard_normal((96, 96)), 3)
    assert V.checkerboard_score(checker((64, 64))) > 0.99
    assert V.checkerboard_score(smooth) < 1e-4
    # white noise: about the band's share of the frequency plane (~4 x 1/32)
    assert 0.08 < V.checkerboard_score(rng.standard_normal((128, 128))) < 0.2
    # a faint period-2 pattern on the smooth field: a stride-2 upsampling artefact
    art = smooth + 0.1 * smooth.std() * (2.0 * checker(smooth.shape) - 1)
    assert V.checkerboard_score(art) > 100 * V.checkerboard_score(smooth)
    assert V.checkerboard_score(art) > 0.005
    assert V.checkerboard_score(np.full((16, 16), 7.0)) == 0.0


def test_checkerboard_score_of_labels_and_volumes():
    rng = np.random.default_rng(8)
    f = ndimage.gaussian_filter(rng.standard_normal((48, 48, 48)), 2.5)
    clean = np.digitize(f, np.quantile(f, [1 / 3, 2 / 3])).astype(np.uint8)
    jag = f + 0.4 * f.std() * (2.0 * checker(f.shape) - 1)
    jagged = np.digitize(jag, np.quantile(jag, [1 / 3, 2 / 3])).astype(np.uint8)
    c, j = V.checkerboard_score(clean, n_phases=3), V.checkerboard_score(jagged, n_phases=3)
    assert j > V.THRESHOLDS["checkerboard_ratio"] * 2 * c
    # one-hot: renumbering the phases changes nothing
    perm = np.array([2, 0, 1], np.uint8)[clean]
    assert V.checkerboard_score(perm, n_phases=3) == pytest.approx(c, rel=1e-9)
    axes = V.checkerboard_score_axes(clean, n_phases=3)
    assert axes.shape == (3,) and V.checkerboard_score(clean, n_phases=3) == pytest.approx(
        axes.mean()
    )
    # period 2 along z only: invisible in slices normal to z, everything in the others
    vol = np.repeat(np.repeat(checker((24,))[:, None, None], 20, axis=1), 28, axis=2)
    axes = V.checkerboard_score_axes(vol)
    assert axes[0] == 0.0 and axes[1] > 0.99 and axes[2] > 0.99
    assert V.checkerboard_score(checker((24, 24))) > 0.99
    with pytest.raises(MicrolibError):
        V.checkerboard_score_axes(np.zeros((2, 8, 8)))


# --------------------------------------------------------------------------- S2 curve


def test_s2_curve_error_known_values():
    vf = 0.5
    a = vf**2 + (vf - vf**2) * np.exp(-np.arange(11) / 3.0)
    assert V.s2_curve_error(a, a) == 0.0
    # a constant offset of 0.025 on a curve of drop vf (1 - vf) = 0.25 -> 0.1
    assert V.s2_curve_error(a, a + 0.025) == pytest.approx(0.1)
    vf2 = 0.2
    b = vf2**2 + (vf2 - vf2**2) * np.exp(-np.arange(11) / 3.0)
    # per phase: 0.1 and 0.016 / 0.16 = 0.1 -> mean 0.1; an absent phase is skipped
    two = V.s2_curve_error(np.stack([a, b, np.zeros(11)]), np.stack([a + 0.025, b - 0.016, a]))
    assert two == pytest.approx(0.1)
    assert math.isnan(V.s2_curve_error(np.zeros(5), np.ones(5)))
    with pytest.raises(MicrolibError, match="shape"):
        V.s2_curve_error(a, a[:5])


# --------------------------------------------------------------------------- documents


def test_document_fidelity_block_and_flag_reasons():
    img = blobs((128, 128), sigma=2.0, n_phases=2, seed=20)
    vol = blobs((48, 48, 48), sigma=2.0, n_phases=2, seed=21)
    doc = V.compare(img, vol, data_type="twophase", n_phases=2, max_lag=12, tortuosity_size=None)
    schema_check(doc)
    fid = doc["fidelity"]
    assert fid["anisotropy"]["3d"] < V.THRESHOLDS["anisotropy"]
    assert set(fid["anisotropy"]["3d_axes"]) == {"z", "y", "x"}
    assert fid["checkerboard"]["ratio"] < V.THRESHOLDS["checkerboard_ratio"]
    assert fid["s2_curve_error"] < V.THRESHOLDS["s2_curve_error"]
    assert doc["summary"]["flags"] == [] and doc["summary"]["flag_reasons"] == {}
    # stretched along z: flagged anisotropic; with a period-2 texture: flagged checkerboard
    f = ndimage.gaussian_filter(np.random.default_rng(22).standard_normal((48, 48, 48)), (6, 2, 2))
    stretched = (f > np.median(f)).astype(np.uint8)
    g = ndimage.gaussian_filter(np.random.default_rng(22).standard_normal((48, 48, 48)), 2)
    g = g + 0.4 * g.std() * (2.0 * checker(g.shape) - 1)
    textured = (g > np.median(g)).astype(np.uint8)
    found = {}
    for name, bad in (("stretched", stretched), ("textured", textured)):
        doc = V.compare(
            img, bad, data_type="twophase", n_phases=2, max_lag=12, tortuosity_size=None
        )
        schema_check(doc)
        flags, reasons = doc["summary"]["flags"], doc["summary"]["flag_reasons"]
        assert set(reasons) == set(flags) and all(reasons[f] for f in flags)
        found[name] = reasons
    assert "anisotropic_3d" in found["stretched"] and "checkerboard_3d" not in found["stretched"]
    assert "checkerboard_3d" in found["textured"] and "anisotropic_3d" not in found["textured"]
    reasons = found["stretched"]
    assert "> 1.4" in reasons["anisotropic_3d"]


def test_grey_document_flags_checkerboard():
    f = ndimage.gaussian_filter(np.random.default_rng(23).standard_normal((48, 48, 48)), 2)
    vol = np.clip(f / f.std() * 40 + 120, 0, 255).astype(np.uint8)
    doc = V.compare(vol[24], vol, data_type="grayscale", n_phases=1, max_lag=10)
    assert doc["fidelity"]["anisotropy"]["measure"] == "grey_gradient_axes"
    assert "checkerboard_3d" not in doc["summary"]["flags"]
    art = np.clip(vol + 8.0 * (2.0 * checker(vol.shape) - 1), 0, 255).astype(np.uint8)
    doc = V.compare(vol[24], art, data_type="grayscale", n_phases=1, max_lag=10)
    schema_check(doc)
    assert "checkerboard_3d" in doc["summary"]["flags"]
    assert doc["summary"]["checkerboard_ratio"] > 10


# --------------------------------------------------------------------------- calibration


def test_calibration_needs_a_large_enough_volume():
    with pytest.raises(MicrolibError, match="calibration"):
        V.calibrate_thresholds(np.zeros((32, 32, 32), np.uint8))


def test_real_volume_calibration_reproduces_the_constants(realdata):
    vol = mio.read_tif(realdata / "volumes" / "threephase_128.tif")
    cal = V.calibrate_thresholds(vol)
    assert cal["thresholds"] == V.CALIBRATED
    for key, value in V.CALIBRATION_SPREAD.items():
        assert cal["spread"][key] == pytest.approx(value, rel=0.01), key
    # the README's octant volume-fraction ranges
    vf = np.array(cal["octants"]["vf"])
    np.testing.assert_allclose(vf.min(axis=0), [0.305, 0.489, 0.130], atol=0.001)
    np.testing.assert_allclose(vf.max(axis=0), [0.375, 0.558, 0.142], atol=0.001)
    # a real slice against the real volume raises no flag
    doc = V.compare(
        vol[64], vol, data_type="threephase", n_phases=3, max_lag=16, tortuosity_size=None
    )
    assert doc["summary"]["flags"] == [], doc["summary"]["flag_reasons"]


def grey_field(shape, sigma: float, seed: int) -> np.ndarray:
    """Smooth random grey levels around 128."""
    g = ndimage.gaussian_filter(np.random.default_rng(seed).normal(size=shape), sigma)
    return np.clip(128 + 40 * g / g.std(), 0, 255)


def test_grey_calibration_measures_quadrant_spread():
    even = grey_field((256, 256), 1.5, 0)
    ramp = even + np.linspace(-30, 30, 256)[None, :]  # one side brighter than the other
    cal = V.calibrate_grey_thresholds([even, ramp])
    uniform, graded = cal["images"]
    # a quadrant of the ramped image is ~15 grey levels off the whole; the even one ~2
    assert graded["grey_mean_abs_error"] > 10 > 5 > uniform["grey_mean_abs_error"]
    assert cal["volume"] is None
    assert cal["spread"]["grey_mean_abs_error"] == pytest.approx(
        (uniform["grey_mean_abs_error"] + graded["grey_mean_abs_error"]) / 2, rel=1e-4
    )
    for key, value in cal["spread"].items():
        assert cal["thresholds"][key] >= V.CALIBRATION_MARGIN * value, key


def test_grey_calibration_refuses_small_or_missing_data():
    with pytest.raises(MicrolibError, match="calibration"):
        V.calibrate_grey_thresholds([])
    with pytest.raises(MicrolibError, match="calibration"):
        V.calibrate_grey_thresholds([np.zeros((20, 20))])
    with pytest.raises(MicrolibError, match="calibration"):
        V.calibrate_grey_thresholds([grey_field((64, 64), 2.0, 0)], np.zeros((16, 16, 16)))


def real_grey_images(realdata) -> list[np.ndarray]:
    with open(realdata / "micrographs.csv", newline="") as f:
        names = [r["name"] for r in csv.DictReader(f) if r["category"] == "grayscale"]
    assert len(names) == 7
    return [
        np.asarray(Image.open(realdata / "micrographs" / n).convert("RGB"), np.float64).mean(2)
        for n in names
    ]


def test_real_grey_calibration_reproduces_the_constants(realdata):
    vol = mio.read_tif(realdata / "volumes" / "threephase_128.tif")
    cal = V.calibrate_grey_thresholds(real_grey_images(realdata), vol)
    assert cal["thresholds"] == V.GREY_THRESHOLDS
    for key, value in V.GREY_CALIBRATION_SPREAD.items():
        assert cal["spread"][key] == pytest.approx(value, rel=0.01), key
    # the real volume read as grey, against one of its own slices: no grey flag
    grey = vol.astype(np.uint8) * 127
    doc = V.compare(grey[64], grey, data_type="grayscale", n_phases=1, max_lag=32)
    grey_flags = {"grey_mean_error", "grey_histogram_error", "autocovariance_error"}
    assert not grey_flags & set(doc["summary"]["flags"]), doc["summary"]["flag_reasons"]


# --------------------------------------------------------------------------- orientation


def _streaks(shape: tuple[int, int], along: float, seed: int = 0) -> np.ndarray:
    """Two-phase streaks: noise blurred 8x more along one direction, then rotated."""
    f = ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal(shape), (1, 8))
    f = ndimage.rotate(f, along, reshape=False, mode="wrap")
    m = shape[0] // 6  # rotation corners
    return (f > 0).astype(np.uint8)[m:-m, m:-m]


def test_orientation_anisotropy_sees_diagonal_streaks_the_axis_measure_misses():
    iso = ndimage.gaussian_filter(np.random.default_rng(1).standard_normal((256, 256)), 3) > 0
    assert V.orientation_anisotropy(iso.astype(np.uint8), n_phases=2) < 1.1
    diag = _streaks((256, 256), 45)
    assert V.anisotropy(diag) < 1.1  # crosses x and y equally often
    assert V.orientation_anisotropy(diag, n_phases=2) > 5
    # along an axis both measures see it
    along_x = _streaks((256, 256), 0)
    assert V.anisotropy(along_x) > 3 and V.orientation_anisotropy(along_x, n_phases=2) > 3


def test_orientation_anisotropy_of_a_volume_is_its_worst_slicing_plane():
    rng = np.random.default_rng(2)
    iso = (ndimage.gaussian_filter(rng.standard_normal((48, 48, 48)), 2) > 0).astype(np.uint8)
    assert V.orientation_anisotropy(iso, n_phases=2) < 1.15
    # streaks along the (y + x) diagonal of every z slice, uniform along z
    f = ndimage.gaussian_filter(rng.standard_normal((48, 96, 96)), (2, 1, 8))
    f = ndimage.rotate(f, 45, axes=(1, 2), reshape=False, mode="wrap")[:, 24:72, 24:72]
    streaky = (f > 0).astype(np.uint8)
    assert V.orientation_anisotropy(streaky, n_phases=2) > 3
    # grey levels: the same measure on the values
    assert V.orientation_anisotropy(f) > 3
    assert math.isnan(V.orientation_anisotropy(np.zeros((8, 8), np.uint8), n_phases=2))


def test_diagonal_streaks_in_one_slicing_plane_are_flagged_and_named():
    rng = np.random.default_rng(3)
    image = (ndimage.gaussian_filter(rng.standard_normal((160, 160)), 2) > 0).astype(np.uint8)
    iso = (ndimage.gaussian_filter(rng.standard_normal((64, 64, 64)), 2) > 0).astype(np.uint8)
    # the isotropic volume: no streak flag (its orientation ratio is within the threshold)
    clean = V.fidelity_block(image, iso, n_phases=2)
    assert clean["orientation"]["ratio"] < V.THRESHOLDS["orientation_ratio"]
    assert "streaks_3d" not in V.fidelity_flags(clean, V.THRESHOLDS)
    # streaks along the (z + y) diagonal of every x slice: per-axis densities stay even,
    # so only the orientation measure flags it, and it names the x slices
    f = ndimage.gaussian_filter(rng.standard_normal((128, 128, 64)), (1, 8, 1.4))
    f = ndimage.rotate(f, 45, axes=(0, 1), reshape=False, mode="wrap")[32:96, 32:96]
    streaky = (f > 0).astype(np.uint8)
    fid = V.fidelity_block(image, streaky, n_phases=2)
    planes = fid["orientation"]["3d_planes"]
    assert planes["x"] > 3 * max(planes["z"], planes["y"])
    assert fid["anisotropy"]["3d"] < V.THRESHOLDS["anisotropy"]
    flags = V.fidelity_flags(fid, V.THRESHOLDS)
    assert "streaks_3d" in flags and "normal to x" in flags["streaks_3d"]
    # a metrics document written before the measure existed is read without it
    old = {k: v for k, v in fid.items() if k != "orientation"}
    assert "streaks_3d" not in V.fidelity_flags(old, V.THRESHOLDS)


# --------------------------------------------------------------------------- lattice


def _smooth_grey(shape, seed=0, sigma=3.0):
    g = ndimage.gaussian_filter(np.random.default_rng(seed).normal(size=shape), sigma)
    return 128 + 40 * g / g.std()


@pytest.mark.parametrize("period", [4, 8])
def test_lattice_score_finds_a_stride_grid_pattern_and_not_a_plain_texture(period):
    vol = _smooth_grey((96, 96, 96))
    plain = V.lattice_score(vol)
    assert 0.5 < plain < 1.4  # no periodicity: no peak over its surroundings
    z, y, x = np.indices(vol.shape)
    grid = (y % period == 0) | (x % period == 0)  # a faint lattice, as a generator paints
    latticed = vol + 6.0 * grid
    assert V.lattice_score(latticed) > 3 * plain
    # the volume against its (clean) image: flagged only with the lattice
    image = _smooth_grey((160, 160), seed=1)
    fid = V.fidelity_block(image, latticed, n_phases=None)
    assert fid["lattice"]["ratio"] > V.THRESHOLDS["lattice_ratio"]
    assert "lattice_3d" in V.fidelity_flags(fid, V.THRESHOLDS)
    clean = V.fidelity_block(image, vol, n_phases=None)
    assert "lattice_3d" not in V.fidelity_flags(clean, V.THRESHOLDS)


def test_lattice_ratio_forgives_a_periodic_image():
    # a material (or a JPEG) periodic at 8 px scores high in 2D: its volume may too
    assert V.lattice_ratio(6.0, 5.0) == pytest.approx(1.2)
    assert V.lattice_ratio(6.0, 0.7) == pytest.approx(6.0)  # 2D under 1 counts as 1
    assert V.lattice_ratio(math.nan, 1.0) is None
    assert math.isnan(V.lattice_score(np.zeros((20, 20))))  # too short to judge
    with pytest.raises(MicrolibError, match="lattice_score"):
        V.lattice_score(np.zeros(10))
