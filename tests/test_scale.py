"""Training at a lower resolution: the coarseness measure and its rule, the downscaling,
generation that upsamples the logits (exact across tiles, periodic, streamed), the
params.json record and the train -> generate round trip."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

import microlib.generate as gen
from microlib.cli import main
from microlib.errors import MicrolibError
from microlib.generate import generate_to_tif, load_generator, plan_generation, synthesise
from microlib.io import read_tif, write_png
from microlib.slicegan.params import ModelParams
from microlib.train.scale import auto_scale, downscale, resolve_scale
from microlib.validate import finest_chord
from tests.test_generate import assert_same_volume, make_net, make_params, save_model


def stripes(width: int, other: int, n: int = 256) -> np.ndarray:
    """Vertical stripes: ``width`` px of phase 1, then ``other`` px of phase 0."""
    row = (np.arange(n) % (width + other) < width).astype(np.uint8)
    return np.tile(row, (n, 1))


def test_finest_chord_is_the_mean_run_of_the_finest_phase():
    # chords are measured along both axes; along y the stripes have no boundary, so the
    # mean over all pairs doubles the per-axis run
    assert finest_chord(stripes(4, 12), 2) == pytest.approx(2 * 4, rel=0.05)
    assert finest_chord(stripes(20, 20), 2) == pytest.approx(2 * 20, rel=0.1)
    assert finest_chord(np.zeros((64, 64), np.uint8), 2) == float("inf")


def test_auto_scale_halves_coarse_images_only():
    rng = np.random.default_rng(0)
    # large blobs: both phases' chords longer than a 32 px crop
    blobs = np.kron(rng.integers(0, 2, (8, 8)), np.ones((40, 40), np.int64)).astype(np.uint8)
    assert finest_chord(blobs, 2) > 32
    assert auto_scale(blobs, 2, 32) == 2
    # sparse small particles far apart: the matrix is coarse, the particles are not
    sparse = np.zeros((320, 320), np.uint8)
    sparse[10::50, 10::50] = 1
    sparse = np.maximum(sparse, np.roll(sparse, 1, 0))
    sparse = np.maximum(sparse, np.roll(sparse, 1, 1))
    assert auto_scale(sparse, 2, 32) == 1
    assert auto_scale(stripes(3, 3), 2, 32) == 1
    # too small to halve and still hold two crops per side
    assert auto_scale(blobs[:120, :120], 2, 32) == 1


def test_resolve_scale_applies_auto_to_one_nphase_image_and_checks_explicit_factors():
    rng = np.random.default_rng(1)
    blobs = np.kron(rng.integers(0, 2, (8, 8)), np.ones((40, 40), np.int64)).astype(np.uint8)
    assert resolve_scale("auto", [blobs], "nphase", 2, 32, False) == 2
    assert resolve_scale("auto", [blobs * 255], "grayscale", 1, 32, False) == 1
    assert resolve_scale("auto", [blobs] * 3, "nphase", 2, 32, False) == 1
    assert resolve_scale(2, [blobs * 255], "grayscale", 1, 32, False) == 2
    with pytest.raises(MicrolibError, match="smaller than the 32 px"):
        resolve_scale(4, [blobs[:100, :100]], "nphase", 2, 32, False)
    with pytest.raises(MicrolibError, match="volume"):
        resolve_scale(2, [np.zeros((64, 64, 64), np.uint8)], "nphase", 2, 32, True)
    with pytest.raises(MicrolibError, match="positive integer"):
        resolve_scale(0, [blobs], "nphase", 2, 32, False)


def test_downscale_keeps_phase_fractions_and_grey_means():
    rng = np.random.default_rng(2)
    noise = rng.integers(0, 3, (200, 301)).astype(np.uint8)
    half = downscale(noise, 2, 3)
    assert half.shape == (100, 150) and half.dtype == np.uint8
    # 2x2 ties are frequent in noise: a fixed tie-break would skew the fractions
    assert np.bincount(half.ravel(), minlength=3) / half.size == pytest.approx(
        np.bincount(noise.ravel(), minlength=3) / noise.size, abs=0.02
    )
    assert np.array_equal(downscale(np.kron(half, np.ones((2, 2), np.uint8)), 2, 3), half)
    # a 2-2 tie goes to the block's top-left pixel
    tie = np.array([[1, 0], [0, 1]], np.uint8)
    assert downscale(tie, 2, 2)[0, 0] == 1 and downscale(1 - tie, 2, 2)[0, 0] == 0
    grey = rng.integers(0, 256, (64, 64, 3)).astype(np.uint8)
    g2 = downscale(grey, 4)
    assert g2.shape == (16, 16, 3)
    assert g2[3, 5, 1] == round(grey[12:16, 20:24, 1].mean())
    assert downscale(grey, 1) is grey


def _reference(net, params: ModelParams, size: int, seed: int) -> np.ndarray:
    """The upsampling done in one piece: the generator's whole low-resolution output,
    interpolated at once, cropped past the first low-resolution voxel."""
    f = params.scale
    low = plan_generation(params, size).inner
    cap = {}
    orig = gen._decode

    def grab(x, p):
        cap["x"] = x.clone()
        return orig(x, p)

    gen._decode = grab
    try:
        synthesise(net, dataclasses.replace(params, scale=1), low.size, seed=seed)
    finally:
        gen._decode = orig
    up = torch.nn.functional.interpolate(
        cap["x"].float(), scale_factor=f, mode="trilinear", align_corners=False
    )
    up = up[:, :, f : f + size, f : f + size, f : f + size]
    return orig(up, params).numpy()


@pytest.mark.parametrize("kind,nc", [("nphase", 3), ("grayscale", 1)])
def test_scaled_generator_upsamples_its_logits_exactly_across_tiles(kind, nc):
    params = make_params(kind, nc, preset="demo", scale=2)
    net = make_net(params)
    whole = synthesise(net, params, 60, seed=5)
    assert whole.shape == (60, 60, 60)
    assert_same_volume(whole, _reference(net, params, 60, seed=5), kind)
    for tile in (16, (32, 16, 48)):
        assert_same_volume(synthesise(net, params, 60, seed=5, tile=tile), whole, kind)


def test_scaled_generator_periodic_and_streamed(tmp_path):
    params = make_params(preset="demo", scale=2, voxel_size_um=0.5)
    net = make_net(params)
    plan = plan_generation(params, 50, "z")
    assert plan.size[0] % (2 * plan.inner.geometry.stride) == 0 and plan.size[1:] == (50, 50)
    assert plan.notes and "scale 2" in plan.notes[0]
    vol = synthesise(net, params, 50, seed=2, periodic="z")
    assert vol.shape == plan.size
    # across the wrap the labels change no more often than between inner slices
    seam = (vol[0] != vol[-1]).mean()
    inside = np.mean([(vol[i] != vol[i + 1]).mean() for i in range(vol.shape[0] - 1)])
    assert seam <= 3 * inside + 0.01
    assert_same_volume(synthesise(net, params, 50, seed=2, periodic="z", tile=16), vol)
    out = tmp_path / "v.tif"
    info = generate_to_tif(out, net, params, 50, seed=2, periodic="z", tile=16)
    assert np.array_equal(read_tif(out), synthesise(net, params, 50, seed=2, periodic="z", tile=16))
    assert info["meta"]["generator"]["scale"] == 2


def test_scale_is_recorded_in_params_json_and_refused_when_bad(tmp_path):
    params = make_params(preset="demo", scale=2)
    d = params.to_json()
    assert d["scale"] == 2 and d["format_version"] == 7
    assert ModelParams.from_json(d).scale == 2
    assert "scale" not in make_params(preset="demo").to_json()
    with pytest.raises(MicrolibError, match="scale"):
        make_params(preset="demo", scale=0)
    net = make_net(params)
    save_model(tmp_path / "m", params, net)
    g, p = load_generator(tmp_path / "m")
    assert p.scale == 2
    assert np.array_equal(synthesise(g, p, 40, seed=1), synthesise(net, params, 40, seed=1))


def test_train_at_half_resolution_then_generate_full_size(tmp_path):
    rng = np.random.default_rng(3)
    img = np.kron(rng.integers(0, 2, (6, 6)), np.ones((24, 24), np.int64)).astype(np.uint8)
    write_png(tmp_path / "img.png", img * 255)
    out = tmp_path / "m"
    args = ["train", str(tmp_path / "img.png"), "--out", str(out), "--name", "m"]
    args += ["--preset", "demo", "--iterations", "2", "--threads", "1", "--train-scale", "2"]
    args += ["--monitor-every", "0", "--no-calibrate-phases"]
    assert main(args) == 0
    meta = json.loads((out / "m_params.json").read_text())
    assert meta["scale"] == 2 and meta["training"]["scale"] == 2
    vol_path = tmp_path / "v.tif"
    assert main(["generate", str(out), "--size", "40", "--out", str(vol_path)]) == 0
    assert read_tif(vol_path).shape == (40, 40, 40)
