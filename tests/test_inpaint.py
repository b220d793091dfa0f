"""Scale-bar in-painting: contracts (pixels outside the mask, labels, metadata), the
integral-image patch sampler, region grouping, and fill quality on a synthetic texture."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from scipy import ndimage

from microlib import inpaint as ip
from microlib import io as mio
from microlib.cli import main
from microlib.device import resolve_device
from microlib.errors import MicrolibError

# small but real settings: a few seconds per GAN run on one core
FAST = {
    "iterations": 12,
    "opt_steps": 15,
    "critic_iters": 2,
    "batch_size": 8,
    "width": 32,
    "opt_restarts": 2,
}


def texture(shape=(160, 160), sigma=2.5, vf=0.4, seed=0, n_phases=2) -> np.ndarray:
    """Thresholded smoothed noise: a blobby n-phase microstructure with known statistics."""
    f = ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal(shape), sigma)
    if n_phases == 2:
        return (f > np.quantile(f, 1 - vf)).astype(np.uint8)
    qs = np.quantile(f, np.linspace(0, 1, n_phases + 1)[1:-1])
    return np.digitize(f, qs).astype(np.uint8)


def bar_mask(shape, y=120, h=8, x0=30, x1=130) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[y : y + h, x0:x1] = True
    return m


def brute_corners(mask: np.ndarray, p: int) -> np.ndarray:
    h, w = mask.shape
    return np.array(
        [
            (r, c)
            for r in range(h - p + 1)
            for c in range(w - p + 1)
            if not mask[r : r + p, c : c + p].any()
        ]
    ).reshape(-1, 2)


# --------------------------------------------------------------------------- pieces


def test_eligible_corners_match_brute_force():
    rng = np.random.default_rng(3)
    mask = np.zeros((37, 45), bool)
    mask[rng.integers(0, 37, 6), rng.integers(0, 45, 6)] = True
    mask[30:33, 5:20] = True
    got = ip.eligible_corners(mask, 8)
    np.testing.assert_array_equal(got, brute_corners(mask, 8))
    assert len(got) > 0
    assert len(ip.eligible_corners(np.zeros((7, 50), bool), 8)) == 0  # image smaller than a patch


def test_mask_regions_group_close_components():
    m = np.zeros((60, 80), bool)
    m[50:54, 10:40] = True  # bar
    m[40:47, 20:24] = True  # letter 3 px above the bar
    m[5:8, 70:75] = True  # far away
    assert len(ip.mask_regions(m, group_gap=8)) == 2
    assert len(ip.mask_regions(m, group_gap=0)) == 3
    regions = ip.mask_regions(m, group_gap=8)
    assert sum(int(r.sum()) for r in regions) == int(m.sum())
    assert not (regions[0] & regions[1]).any()


@pytest.mark.parametrize(
    "data_type,n", [("twophase", 2), ("threephase", 3), ("grayscale", 1), ("colour", 3)]
)
def test_encode_decode_round_trip(data_type, n):
    rng = np.random.default_rng(0)
    if data_type == "colour":
        img = rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    elif data_type == "grayscale":
        img = rng.integers(0, 256, (9, 11), dtype=np.uint8)
    else:
        img = rng.integers(0, n, (9, 11), dtype=np.uint8)
    enc = ip.encode(img, data_type, n)
    assert enc.shape == (ip.n_channels(data_type, n), 9, 11)
    np.testing.assert_array_equal(ip.decode(enc, data_type), img)


def test_check_inputs_rejects_bad_pairs():
    img = np.zeros((20, 20), np.uint8)
    with pytest.raises(MicrolibError, match="label 3"):
        ip.check_inputs(img + 3, np.zeros((20, 20)), "threephase", 3)
    with pytest.raises(MicrolibError, match="does not match"):
        ip.check_inputs(img, np.zeros((20, 21)), "twophase", 2)
    with pytest.raises(MicrolibError, match="colour image"):
        ip.check_inputs(img, np.zeros((20, 20)), "colour", 3)
    assert ip.check_inputs(img, np.full((20, 20), 255), "twophase", 2).all()


def test_infer_data_type():
    assert ip.infer_data_type(np.array([[0, 1], [1, 0]], np.uint8)) == ("twophase", 2)
    assert ip.infer_data_type(np.array([[0, 1], [2, 0]], np.uint8)) == ("threephase", 3)
    assert ip.infer_data_type(np.array([[0, 255], [128, 7]], np.uint8)) == ("grayscale", 1)
    assert ip.infer_data_type(np.zeros((2, 2, 3), np.uint8)) == ("colour", 3)


# --------------------------------------------------------------------------- contracts


@pytest.mark.parametrize("method", ["telea", "gan", "exemplar", "ns", "biharmonic"])
def test_outside_mask_identical_and_labels_valid(method):
    img = texture((96, 112), n_phases=3, seed=1)
    mask = bar_mask(img.shape, y=70, h=6, x0=20, x1=90)
    mask[60:66, 40:44] = True
    out, info = ip.inpaint(
        img,
        mask,
        data_type="threephase",
        n_phases=3,
        method=method,
        **(FAST if method == "gan" else {}),
    )
    assert out.dtype == np.uint8 and out.shape == img.shape
    np.testing.assert_array_equal(out[~mask], img[~mask])
    assert set(np.unique(out)) <= {0, 1, 2}
    assert info["method"] == method and info["masked_pixels"] == int(mask.sum())


@pytest.mark.parametrize("data_type", ["grayscale", "colour"])
def test_grey_and_colour_keep_outside_pixels(data_type):
    rng = np.random.default_rng(5)
    base = (ndimage.gaussian_filter(rng.standard_normal((80, 96)), 2) * 60 + 128).clip(0, 255)
    img = base.astype(np.uint8)
    if data_type == "colour":
        img = np.stack([img, 255 - img, img // 2], axis=-1)
    mask = bar_mask(img.shape[:2], y=60, h=5, x0=10, x1=70)
    for method in ("telea", "gan", "exemplar", "ns", "biharmonic"):
        out, _ = ip.inpaint(
            img,
            mask,
            data_type=data_type,
            n_phases=3 if data_type == "colour" else 1,
            method=method,
            **(FAST if method == "gan" else {}),
        )
        assert out.shape == img.shape
        np.testing.assert_array_equal(out[~mask], img[~mask])
        # the fill is a plausible grey, not a hole: its mean is that of the hidden truth
        # within half a standard deviation of the image
        assert abs(out[mask].astype(float).mean() - img[mask].mean()) < 0.5 * img.std()


def test_empty_mask_is_a_copy():
    img = texture((64, 64))
    out, info = ip.inpaint(img, np.zeros((64, 64), np.uint8), data_type="twophase", n_phases=2)
    np.testing.assert_array_equal(out, img)
    assert info == {"method": "none", "requested": "auto", "masked_pixels": 0}


def test_gan_is_deterministic_on_cpu_for_a_seed():
    img = texture((96, 96), seed=4)
    mask = bar_mask(img.shape, y=60, h=6, x0=10, x1=80)
    a, ia = ip.inpaint(img, mask, data_type="twophase", n_phases=2, method="gan", seed=7, **FAST)
    b, ib = ip.inpaint(img, mask, data_type="twophase", n_phases=2, method="gan", seed=7, **FAST)
    np.testing.assert_array_equal(a, b)
    assert ia["training"]["wasserstein"] == ib["training"]["wasserstein"]
    c, _ = ip.inpaint(img, mask, data_type="twophase", n_phases=2, method="gan", seed=8, **FAST)
    assert not np.array_equal(a[mask], c[mask])  # the seed matters


def test_latent_optimisation_fits_known_pixels():
    """More optimisation steps fit the context better, and the generator is untouched."""
    import torch

    img = texture((96, 96), seed=6)
    mask = bar_mask(img.shape, y=40, h=8, x0=10, x1=86)
    ch = ip.encode(img, "twophase", 2)
    gen, _ = ip.train_patch_gan(
        ch,
        mask,
        activation="softmax",
        iterations=10,
        critic_iters=2,
        batch_size=8,
        width=32,
        seed=0,
    )
    before = {k: v.clone() for k, v in gen.state_dict().items()}
    win = ch[:, 24:64, :]
    known = ~mask[24:64, :]
    _, fit0 = ip.optimise_latent(
        gen, win, known, nz=ip.GAN_DEFAULTS["nz"], opt_steps=0, opt_restarts=1
    )
    _, fit = ip.optimise_latent(
        gen, win, known, nz=ip.GAN_DEFAULTS["nz"], opt_steps=60, opt_restarts=1
    )
    assert fit < 0.8 * fit0
    for k, v in gen.state_dict().items():  # eval mode: batch-norm statistics did not drift
        assert torch.equal(v, before[k]), k


def test_no_mask_free_patch_raises():
    img = texture((40, 40))
    mask = np.zeros((40, 40), bool)
    mask[::20, :] = True
    with pytest.raises(MicrolibError, match="avoids the mask"):
        ip.inpaint(img, mask, data_type="twophase", n_phases=2, method="gan", **FAST)


# --------------------------------------------------------------------------- quality


def test_fill_matches_surroundings_statistics():
    """On a synthetic two-phase texture with a bar-shaped mask, the GAN fill has the phase
    fraction and two-point correlation of the hidden truth; Telea, the baseline, smears
    the bar (its interface density falls well below the texture's)."""
    img = texture((192, 192), sigma=2.0, vf=0.4, seed=11)
    mask = bar_mask(img.shape, y=150, h=10, x0=20, x1=172)
    params = {"iterations": 60, "opt_steps": 80, "critic_iters": 3, "batch_size": 12, "width": 48}
    gan, _ = ip.inpaint(img, mask, data_type="twophase", n_phases=2, method="gan", seed=0, **params)
    tel, _ = ip.inpaint(img, mask, data_type="twophase", n_phases=2, method="telea")

    def stats(a):
        return ip.region_statistics(a, mask, data_type="twophase", n_phases=2, max_lag=10)

    truth, s_gan, s_tel = stats(img), stats(gan), stats(tel)
    surround = ip.region_statistics(img, ~mask, data_type="twophase", n_phases=2, max_lag=10)
    e_gan = ip.statistics_error(s_gan, truth)
    e_tel = ip.statistics_error(s_tel, truth)
    # phase fraction of the filled bar within 8 points of the truth / the surroundings
    assert e_gan["phase_fraction"] < 0.08
    assert abs(s_gan["phase_fractions"][1] - surround["phase_fractions"][1]) < 0.08
    # two-point correlation of the bar (pairs touching it) close to the truth
    assert e_gan["s2"] < 0.05
    # texture: interface density within 35 % of the truth, and closer than Telea's
    assert e_gan["interface_density"] < 0.35 * truth["interface_density"]
    assert e_gan["interface_density"] < e_tel["interface_density"]


# --------------------------------------------------------------------------- CLI


META = {
    "id": "000042",
    "data_type": "twophase",
    "n_phases": 2,
    "phase_grey_values": [40.0, 210.0],
    "voxel_size_um": 0.25,
}


def _write_inputs(tmp_path, img, mask, meta=META):
    seg, msk = tmp_path / "segmented" / "000042.png", tmp_path / "masks" / "000042.png"
    mio.write_png(seg, img, meta)
    mio.write_png(msk, (np.asarray(mask, bool) * 255).astype(np.uint8))
    return seg, msk


def test_cli_keeps_metadata_and_outside_pixels(tmp_path):
    img = texture((80, 96), seed=2)
    mask = bar_mask(img.shape, y=60, h=5, x0=10, x1=70)
    seg, msk = _write_inputs(tmp_path, img, mask)
    out = tmp_path / "training" / "microstructure042.png"
    rc = main(
        [
            "inpaint",
            "--image",
            str(seg),
            "--mask",
            str(msk),
            "--out",
            str(out),
            "--threads",
            "1",
            "--iterations",
            "4",
            "--opt-steps",
            "4",
            "--critic-iters",
            "1",
            "--batch-size",
            "4",
            "--width",
            "16",
            "--seed",
            "3",
            "--method",
            "gan",
        ]
    )
    assert rc == 0
    res = mio.read_image(out)
    np.testing.assert_array_equal(res[~mask], img[~mask])
    meta = mio.read_png_meta(out)
    assert {k: meta[k] for k in META} == META
    rec = meta["inpaint"]
    assert rec["method"] == "gan" and rec["iterations"] == 4 and rec["opt_steps"] == 4
    assert meta["inpaint_method"] == "gan" and rec["requested"] == "gan"
    assert rec["masked_pixels"] == int(mask.sum()) and rec["seed"] == 3 and rec["regions"] == 1
    assert not list(out.parent.glob(".*.part"))  # atomic write left no temp file


def test_cli_empty_mask_copies_through(tmp_path):
    img = texture((50, 60), seed=9)
    seg, msk = _write_inputs(tmp_path, img, np.zeros(img.shape, bool))
    out = tmp_path / "training" / "microstructure042.png"
    assert main(["inpaint", "--image", str(seg), "--mask", str(msk), "--out", str(out)]) == 0
    np.testing.assert_array_equal(mio.read_image(out), img)
    meta = mio.read_png_meta(out)
    assert {k: meta[k] for k in META} == META
    assert meta["inpaint"]["method"] == "none" and meta["inpaint"]["masked_pixels"] == 0


def test_cli_falls_back_to_telea_when_no_patch_fits(tmp_path, capsys):
    img = texture((24, 120), seed=1)  # shorter than a 32 px training patch
    mask = bar_mask(img.shape, y=10, h=4, x0=10, x1=60)
    seg, msk = _write_inputs(tmp_path, img, mask)
    out = tmp_path / "training" / "microstructure042.png"
    cmd = ["inpaint", "--image", str(seg), "--mask", str(msk), "--out", str(out), "--method"]
    assert main([*cmd, "gan"]) == 0
    rec = mio.read_png_meta(out)["inpaint"]
    assert (
        rec["method"] == "telea"
        and rec["requested"] == "gan"
        and rec["fallback_from"] == "gan"
        and "avoids the mask" in rec["fallback_reason"]
    )
    np.testing.assert_array_equal(mio.read_image(out)[~mask], img[~mask])
    out.unlink()
    rc = main([*cmd, "gan", "--no-fallback"])
    assert rc == 2 and not out.exists()
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert (
        err.startswith("microlib inpaint: error: microstructure042:") and "avoids the mask" in err
    )


def test_cli_bad_mask_is_one_error_line(tmp_path, capsys):
    img = texture((50, 60))
    seg, _ = _write_inputs(tmp_path, img, np.zeros(img.shape, bool))
    msk = tmp_path / "masks" / "bad.png"
    mio.write_png(msk, np.zeros((50, 61), np.uint8))
    out = tmp_path / "training" / "microstructure042.png"
    rc = main(
        ["inpaint", "--image", str(seg), "--mask", str(msk), "--out", str(out), "--method", "telea"]
    )
    assert rc == 2 and not out.exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        "microlib inpaint: error: microstructure042: mask shape (50, 61) does not match "
        "image shape (50, 60)"
    )


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares ``width`` x ``height`` grey pixels and holds no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("which", "content", "reason"),
    [
        ("image", b"", "is empty (0 bytes)"),
        ("image", b"this is a text file, not a picture\n", "is not a readable image"),
        ("image", _png_header(100_000, 100_000), "is too large"),
        ("image", _png_header(12_000, 12_000), "declares 12000x12000 px"),
        ("image", _png_header(64, 64), "cannot read segmented image"),
        ("mask", b"", "is empty (0 bytes)"),
        ("mask", b"GIF89a but then nothing", "is not a readable image"),
        ("mask", _png_header(100_000, 100_000), "is too large"),
    ],
    ids=[
        "empty-image",
        "text-as-image",
        "huge-header-image",
        "over-cap-header-image",
        "header-only-image",
        "empty-mask",
        "garbage-gif-mask",
        "huge-header-mask",
    ],
)
def test_cli_unreadable_inputs_are_one_error_line(tmp_path, capsys, which, content, reason):
    img = texture((50, 60))
    seg, msk = _write_inputs(tmp_path, img, np.zeros(img.shape, bool))
    bad = seg if which == "image" else msk
    bad.write_bytes(content)
    out = tmp_path / "training" / "microstructure042.png"
    rc = main(["inpaint", "--image", str(seg), "--mask", str(msk), "--out", str(out)])
    assert rc == 2 and not out.exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err  # no traceback, no warning
    # named after the output (image unreadable) or the image metadata (mask unreadable)
    assert err[0].startswith("microlib inpaint: error: microstructure042: "), err
    assert str(bad) in err[0] and reason in err[0], err


def test_cli_explicit_cuda_without_cuda_is_one_error_line(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    img = texture((50, 60))
    seg, msk = _write_inputs(tmp_path, img, bar_mask(img.shape, y=40, h=4, x0=5, x1=40))
    out = tmp_path / "training" / "microstructure042.png"
    rc = main(
        ["inpaint", "--image", str(seg), "--mask", str(msk), "--out", str(out)]
        + ["--device", "cuda"]
    )
    assert rc == 2 and not out.exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "microlib inpaint: error: microstructure042: --device cuda requested but no CUDA "
        "device is available"
    ]


@pytest.mark.gpu
def test_gan_on_cuda_keeps_the_contract():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    assert resolve_device("auto").type == "cuda"
    img = texture((128, 128), n_phases=3, seed=12)
    mask = bar_mask(img.shape, y=100, h=8, x0=10, x1=110)
    out, info = ip.inpaint(img, mask, data_type="threephase", n_phases=3, device="cuda", **FAST)
    np.testing.assert_array_equal(out[~mask], img[~mask])
    assert set(np.unique(out)) <= {0, 1, 2} and info["device"] == "cuda"


def test_one_device_policy_auto_falls_back_explicit_cuda_refused(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto").type == "cpu"
    # an explicit CUDA request on a machine without one is refused, never silently CPU
    with pytest.raises(MicrolibError, match="no CUDA device"):
        resolve_device("cuda")
    with pytest.raises(MicrolibError, match="unknown device"):
        resolve_device("tpu")


# --------------------------------------------------------------------------- method choice


def tiled(shape=(120, 150), period=(20, 24), seed=0, grey=False) -> np.ndarray:
    """A texture tiled with a fixed period: every hidden block also occurs unmasked."""
    rng = np.random.default_rng(seed)
    f = ndimage.gaussian_filter(rng.standard_normal(period), 1.5, mode="wrap")
    tile = (
        np.clip(f / f.std() * 50 + 128, 0, 255).astype(np.uint8)
        if grey
        else (f > 0).astype(np.uint8)
    )
    reps = (-(-shape[0] // period[0]), -(-shape[1] // period[1]))
    return np.tile(tile, reps)[: shape[0], : shape[1]]


@pytest.mark.parametrize("data_type", ["twophase", "threephase", "nphase", "grayscale", "colour"])
def test_auto_resolves_to_the_per_type_default(data_type):
    n = {"twophase": 2, "threephase": 3, "nphase": 4, "grayscale": 1, "colour": 3}[data_type]
    if data_type in ip.NPHASE_TYPES:
        img = texture((64, 80), n_phases=n, seed=3)
    else:
        img = (texture((64, 80), seed=3) * 150 + 50).astype(np.uint8)
        if data_type == "colour":
            img = np.stack([img, img // 2, 255 - img], axis=-1)
    mask = bar_mask((64, 80), y=50, h=4, x0=10, x1=60)
    assert ip.resolve_method("auto", data_type) == ip.AUTO_METHOD[data_type]
    out, info = ip.inpaint(img, mask, data_type=data_type, n_phases=n)
    assert info["method"] == ip.AUTO_METHOD[data_type] and info["requested"] == "auto"
    np.testing.assert_array_equal(out[~mask], img[~mask])
    with pytest.raises(MicrolibError, match="unknown in-painting method"):
        ip.resolve_method("magic", data_type)


def test_cli_auto_records_the_method_in_metadata(tmp_path):
    img = texture((80, 96), seed=2)
    mask = bar_mask(img.shape, y=60, h=5, x0=10, x1=70)
    seg, msk = _write_inputs(tmp_path, img, mask)
    out = tmp_path / "training" / "microstructure042.png"
    cmd = ["inpaint", "--image", str(seg), "--mask", str(msk), "--out", str(out)]
    assert main(cmd) == 0
    meta = mio.read_png_meta(out)
    assert meta["inpaint_method"] == ip.AUTO_METHOD["twophase"] == meta["inpaint"]["method"]
    assert meta["inpaint"]["requested"] == "auto"
    np.testing.assert_array_equal(mio.read_image(out)[~mask], img[~mask])
    for method in ("telea", "ns", "biharmonic", "exemplar"):
        assert main([*cmd, "--method", method]) == 0
        meta = mio.read_png_meta(out)
        assert meta["inpaint_method"] == method and meta["inpaint"]["requested"] == method


@pytest.mark.parametrize("grey", [False, True])
def test_exemplar_recovers_a_periodic_texture_exactly(grey):
    """Known answer: every hidden block of a tiled texture occurs elsewhere unmasked, so
    the best-matching copy is the hidden truth itself."""
    img = tiled(grey=grey, seed=1)
    mask = bar_mask(img.shape, y=90, h=6, x0=20, x1=110)
    dt = "grayscale" if grey else "twophase"
    out, info = ip.inpaint(img, mask, data_type=dt, n_phases=1 if grey else 2, method="exemplar")
    np.testing.assert_array_equal(out, img)
    assert info["telea_regions"] == 0 and info["regions"][0]["source"] is not None


def test_texture_measure_prefers_the_texture_copy_over_blur():
    """On a fine two-phase texture and a fine grey texture under a wide bar, diffusion
    fills come out smooth (too few interfaces, too little grey gradient); the texture
    measures say so, and prefer the exemplar copy."""
    lab = texture((160, 200), sigma=1.5, vf=0.5, seed=21)
    grey = np.clip(
        ndimage.gaussian_filter(np.random.default_rng(2).standard_normal((160, 200)), 1.2) * 120
        + 128,
        0,
        255,
    ).astype(np.uint8)
    mask = bar_mask(lab.shape, y=120, h=14, x0=20, x1=180)
    for img, dt, n, key in (
        (lab, "twophase", 2, "interface_density"),
        (grey, "grayscale", 1, "gradient"),
    ):
        truth = ip.region_statistics(img, mask, data_type=dt, n_phases=n)
        err = {}
        for method in ("exemplar", "telea", "ns", "biharmonic"):
            out, _ = ip.inpaint(img, mask, data_type=dt, n_phases=n, method=method)
            err[method] = ip.statistics_error(
                ip.region_statistics(out, mask, data_type=dt, n_phases=n), truth
            )[key]
        assert min(err, key=err.get) == "exemplar", (dt, err)
        # the blur is plain to see: every diffusion fill is at least 1.4 times as far off
        assert all(err[m] > 1.4 * err["exemplar"] for m in ("telea", "ns", "biharmonic")), (dt, err)


def test_exemplar_falls_back_to_telea_when_no_window_fits():
    img = texture((40, 40))
    mask = np.zeros((40, 40), bool)
    mask[10:30, 2:38] = True  # no 20+ px tall window elsewhere avoids it
    mask[::8, :] = True
    out, info = ip.inpaint(img, mask, data_type="twophase", n_phases=2, method="exemplar")
    np.testing.assert_array_equal(out[~mask], img[~mask])
    assert info["telea_regions"] >= 1 and set(np.unique(out)) <= {0, 1}


def test_rectangular_eligible_corners_match_brute_force():
    m = np.zeros((30, 40), bool)
    m[12:15, 5:30] = True
    got = ip.eligible_corners(m, (8, 13))
    want = [
        (r, c)
        for r in range(30 - 8 + 1)
        for c in range(40 - 13 + 1)
        if not m[r : r + 8, c : c + 13].any()
    ]
    assert [tuple(x) for x in got] == want


def test_latent_fit_stops_early_but_reports_every_step():
    img = texture((80, 80), seed=6)
    mask = bar_mask(img.shape, y=40, h=6, x0=10, x1=70)
    ch = ip.encode(img, "twophase", 2)
    gen, _ = ip.train_patch_gan(
        ch, mask, activation="softmax", iterations=4, critic_iters=1, batch_size=4, width=16
    )
    steps = []
    out, fit = ip.optimise_latent(
        gen,
        ch[:, 24:56],
        ~mask[24:56],
        nz=ip.GAN_DEFAULTS["nz"],
        opt_steps=500,
        opt_restarts=1,
        opt_patience=3,
        progress=steps.append,
    )
    assert sum(steps) == 500 and len(steps) < 500 and np.isfinite(fit)
