"""SliceGAN training: input validation, on-device sampling, isotropic / anisotropic steps,
exact resume (in process, after SIGKILL and after SIGTERM), artefacts and the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from microlib.cli import main
from microlib.errors import MicrolibError
from microlib.generate import load_generator, synthesise
from microlib.io import read_json, read_tif, sha256_file, write_png, write_tif
from microlib.slicegan.params import load_weights, read_params_data
from microlib.slicegan.presets import Preset, get_preset
from microlib.train import (
    Optimisations,
    SliceGANTrainer,
    infer_image_type,
    lr_factor,
    make_training_set,
    prepare_training_array,
    slices_along,
)
from microlib.train.monitor import PlateauStop, compare, reference_statistics
from microlib.train.trainer import symmetrise_crops

ROOT = Path(__file__).resolve().parents[1]
# demo networks with the smallest batches: a generator iteration takes a few 10 ms; quality
# checks on the smallest volume allowed (the training slice edge), which they dominate otherwise
# crops as cut (the demo's random symmetries are tested on their own)
SMALL = get_preset("demo").replace(
    batch_size=4, d_batch_size=1, g_batch_size=2, critic_iters=2, monitor_size=32, augment="none"
)
L = SMALL.l  # the training slice edge (real crops, generated slices)
SMALL_CLI = [
    "--preset",
    "demo",
    "--batch-size",
    "4",
    "--d-batch-size",
    "1",
    "--g-batch-size",
    "2",
    "--critic-iters",
    "2",
    "--threads",
    "1",
    "--monitor-size",
    "32",
    "--augment",
    "none",
]


def blobs(shape, fractions=(0.35, 0.85), sigma=3.0, seed=0) -> np.ndarray:
    """Smooth random n-phase labels 0..len(fractions)."""
    rng = np.random.default_rng(seed)
    f = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return np.digitize(f, np.quantile(f, fractions)).astype(np.uint8)


def state_equal(a, b) -> bool:
    """Deep equality of nested containers of tensors (bit for bit)."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(state_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(state_equal(x, y) for x, y in zip(a, b, strict=True))
    if torch.is_tensor(a):
        return torch.equal(a, b)
    return a == b


# ----------------------------------------------------------------------------- inputs


def test_jpeg_like_grey_image_is_refused_as_nphase():
    grey = np.clip(np.random.default_rng(0).normal(128, 40, (80, 80)), 0, 255).astype(np.uint8)
    n = np.unique(grey).size
    with pytest.raises(MicrolibError, match=f"image has {n} distinct values: a grey or JPEG"):
        prepare_training_array(grey, "nphase", entry="m1")
    with pytest.raises(MicrolibError, match="pass --image-type grayscale"):
        infer_image_type(grey)
    canon, info = prepare_training_array(grey, "grayscale")
    assert info["n_phases"] == 1 and np.array_equal(canon, grey)


def test_two_grey_levels_need_an_explicit_phase_count():
    img = np.where(blobs((70, 70)) > 0, 255, 0).astype(np.uint8)
    with pytest.raises(MicrolibError, match=r"holds 2 distinct values \{0, 255\}.*--phases 2"):
        prepare_training_array(img, "nphase")
    labels, info = prepare_training_array(img, "nphase", n_phases=2)
    assert set(np.unique(labels)) == {0, 1}
    assert info["grey_levels"] == [0.0, 255.0]
    assert np.array_equal(labels == 1, img == 255)  # ascending grey order


def test_phase_count_mismatches_are_refused():
    lab = blobs((70, 70))  # three phases 0, 1, 2
    with pytest.raises(MicrolibError, match="expected 2 phases but the image holds 3"):
        prepare_training_array(lab, "nphase", n_phases=2)
    meta = {"data_type": "threephase", "n_phases": 3}
    with pytest.raises(MicrolibError, match="contradicts the image metadata"):
        prepare_training_array(lab, "nphase", n_phases=4, meta=meta)
    with pytest.raises(MicrolibError, match="metadata says 2 phases"):
        prepare_training_array(lab * 100, "nphase", meta={"data_type": "twophase", "n_phases": 2})
    two = blobs((70, 70), fractions=(0.5,), seed=1)
    with pytest.raises(MicrolibError, match="different phase counts"):
        make_training_set([lab, lab, two], "nphase", 32)


def test_small_image_and_colour_errors():
    with pytest.raises(MicrolibError, match=r"image is 30x70 px, smaller than the 32 px"):
        make_training_set([blobs((30, 70))], "nphase", 32, entry="m7")
    rgb = np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)
    with pytest.raises(MicrolibError, match="colour image cannot be trained as nphase"):
        prepare_training_array(rgb, "nphase")
    assert infer_image_type(rgb) == "colour"
    grey_rgb = np.repeat(blobs((40, 40))[..., None], 3, axis=2)
    assert infer_image_type(grey_rgb) == "nphase"  # R=G=B labels 0..2
    assert infer_image_type(grey_rgb, {"data_type": "grayscale"}) == "grayscale"


# ----------------------------------------------------------------------------- sampling


def test_device_crops_are_real_crops_of_the_image():
    key = np.arange(40 * 50).reshape(40, 50)  # each pixel's position, to locate crops
    ts = make_training_set([blobs((40, 50))], "nphase", L)
    tr = SliceGANTrainer(ts, SMALL, seed=0)  # crops as cut
    tr._reals[0] = torch.from_numpy(key)
    tr._encode = lambda c: c  # noqa: E731 - keep the raw position codes
    crops = tr.sample_real(0, 8)
    assert crops.shape == (8, L, L)
    origins = set()
    for c in crops:
        y, x = divmod(int(c[0, 0]), 50)
        origins.add((y, x))
        assert torch.equal(c, torch.from_numpy(key[y : y + L, x : x + L]))
    assert len(origins) > 1  # random origins, not one fixed crop


def test_volume_crops_are_slices_normal_to_each_axis():
    vol = np.arange(38 * 40 * 44).reshape(38, 40, 44)
    ts = make_training_set([blobs((38, 40, 44))], "nphase", L)
    assert ts.is_volume
    tr = SliceGANTrainer(ts, SMALL, seed=0)
    tr._reals[0] = torch.from_numpy(vol)
    tr._encode = lambda c: c  # noqa: E731
    for axis in range(3):
        for c in tr.sample_real(axis, 4):
            idx = np.unravel_index(int(c[0, 0]), vol.shape)
            sl = [slice(i, i + L) for i in idx]
            sl[axis] = idx[axis]
            assert torch.equal(c, torch.from_numpy(vol[tuple(sl)])), axis


def _d4(a: torch.Tensor) -> list[torch.Tensor]:
    """The 8 images of ``a`` (last two dims) under the symmetries of the square."""
    out = []
    for t in (a, a.transpose(-2, -1)):
        for k in range(4):
            out.append(torch.rot90(t, k, dims=(-2, -1)))
    return out


def test_d4_augmentation_draws_each_symmetry_of_each_crop():
    ts = make_training_set([blobs((48, 48))], "nphase", L)
    tr = SliceGANTrainer(ts, SMALL.replace(augment="d4"), seed=0)
    assert tr.augment
    x = torch.arange(64 * 2 * 32 * 32, dtype=torch.float32).reshape(64, 2, 32, 32)
    y = symmetrise_crops(x, tr.rng)
    seen = set()
    for a, b in zip(x, y, strict=True):
        hits = [k for k, t in enumerate(_d4(a)) if torch.equal(t, b)]
        assert len(hits) == 1  # exactly one symmetry, applied to all channels alike
        seen.add(hits[0])
    assert seen == set(range(8))
    # real crops under augmentation are still valid one-hot crops of the image
    real = tr.sample_real(2, 16)
    assert real.shape == (16, 3, L, L) and torch.equal(real.sum(1), torch.ones(16, L, L))


def test_d4_augmentation_is_off_for_anisotropic_runs_and_checked():
    imgs = [blobs((48, 56), seed=s) for s in range(3)]
    tr = SliceGANTrainer(make_training_set(imgs, "nphase", L), SMALL.replace(augment="d4"))
    assert not tr.augment  # each axis has its own image: orientation is data
    assert get_preset("microlib").augment == "none"  # MicroLib's recipe had no symmetries
    iso = make_training_set([blobs((48, 48))], "nphase", L)
    assert not SliceGANTrainer(iso, SMALL).augment
    assert get_preset("demo").augment == "d4"  # against diagonal streaks in the cubes
    with pytest.raises(MicrolibError, match="augment must be one of none, d4, not 'd8'"):
        SliceGANTrainer(iso, SMALL.replace(augment="d8"))


def test_one_hot_encoding_and_host_sampler_agree_in_kind():
    lab = blobs((48, 48))
    ts = make_training_set([lab], "nphase", L)
    for opts in (Optimisations(), Optimisations.baseline()):
        tr = SliceGANTrainer(ts, SMALL, seed=0, opts=opts)
        x = tr.sample_real(1, 5)
        assert x.shape == (5, 3, L, L) and x.dtype == torch.float32
        assert torch.equal(x.sum(1), torch.ones(5, L, L))


def test_slices_match_the_original_permute_reshape():
    f = torch.randn(2, 3, 8, 8, 8)
    l = 8  # noqa: E741
    orig = {0: (2, 3, 4), 1: (3, 2, 4), 2: (4, 2, 3)}
    for axis, (d1, d2, d3) in orig.items():
        ref = f.permute(0, d1, 1, d2, d3).reshape(l * 2, 3, l, l)
        assert torch.equal(slices_along(f, axis), ref)


# ----------------------------------------------------------------------------- steps


def _params_of(net):
    return [p.detach().clone() for p in net.parameters()]


def test_isotropic_training_step():
    ts = make_training_set([blobs((64, 64))], "nphase", L)
    tr = SliceGANTrainer(ts, SMALL, seed=1)
    assert len(tr.Ds) == 1 and len(tr.opt_ds) == 1  # one critic, one optimiser
    g0, d0 = _params_of(tr.G), _params_of(tr.Ds[0])
    tr.step()
    tr.step()
    assert tr.iteration == 2
    assert all(not torch.equal(a, b) for a, b in zip(g0, _params_of(tr.G), strict=True))
    assert all(not torch.equal(a, b) for a, b in zip(d0, _params_of(tr.Ds[0]), strict=True))
    # 2 iterations x 2 critic iterations x 3 axes = 12 Adam steps of the one critic
    assert int(tr.opt_ds[0].state_dict()["state"][0]["step"]) == 12
    assert int(tr.opt_g.state_dict()["state"][0]["step"]) == 2
    log = tr.read_log()
    assert set(log) == {"critic_loss", "generator_loss", "wasserstein", "gp"}
    assert all(np.isfinite(v) for v in log.values()) and log["gp"] >= 0
    assert tr.read_log() is None  # accumulators reset


def test_summed_update_steps_the_critic_once_per_iteration():
    ts = make_training_set([blobs((64, 64))], "nphase", L)
    tr = SliceGANTrainer(ts, SMALL, seed=1, d_update="summed")
    tr.step()
    assert int(tr.opt_ds[0].state_dict()["state"][0]["step"]) == 2


@pytest.mark.parametrize("d_slices", [0, 3, 10_000])
def test_critic_sees_d_slices_fake_slices_per_axis(d_slices):
    ts = make_training_set([blobs((64, 64))], "nphase", L)
    tr = SliceGANTrainer(ts, SMALL.replace(d_slices=d_slices), seed=1)
    seen: list[int] = []
    tr.Ds[0].register_forward_hook(lambda m, x, y: seen.append(x[0].shape[0]))
    tr._critic_iteration()
    every = SMALL.d_batch_size * L  # all slices of the fake volumes along one axis
    fake = d_slices if 0 < d_slices < every else every
    # per axis: one pass over real + fake slices, one over the gradient-penalty mixes
    assert seen == [SMALL.batch_size + fake, SMALL.batch_size] * 3


def test_negative_d_slices_is_refused(train_png, tmp_path, capsys):
    argv = ["train", str(train_png), "--out", str(tmp_path / "m"), *SMALL_CLI, "--d-slices", "-1"]
    assert main(argv) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--d-slices must be >= 0" in err[0]


def test_anisotropic_training_step_uses_one_critic_per_axis():
    imgs = [blobs((48, 56), seed=s) for s in range(3)]
    ts = make_training_set(imgs, "nphase", L)
    assert ts.anisotropic
    tr = SliceGANTrainer(ts, SMALL, seed=2)
    before = [_params_of(d) for d in tr.Ds]
    tr.step()
    assert len(tr.Ds) == 3
    for d, b in zip(tr.Ds, before, strict=True):
        assert not torch.equal(b[0], _params_of(d)[0])
        # each critic stepped once per critic iteration (2)
    assert [int(o.state_dict()["state"][0]["step"]) for o in tr.opt_ds] == [2, 2, 2]


@pytest.mark.parametrize("kind", ["grayscale", "colour"])
def test_grey_and_colour_training_steps(kind):
    rng = np.random.default_rng(0)
    img = ndimage.gaussian_filter(rng.random((50, 50, 3 if kind == "colour" else 1)), 2) * 255
    img = img.astype(np.uint8)
    img = img if kind == "colour" else img[..., 0]
    ts = make_training_set([img], kind, L)
    assert ts.nc == (3 if kind == "colour" else 1)
    tr = SliceGANTrainer(ts, SMALL, seed=0)
    tr.step()
    real = tr.sample_real(0, 3)
    lg = SMALL.for_image_type(kind).l  # grey and colour train the blurred 36 px net
    assert real.shape == (3, ts.nc, lg, lg) and float(real.max()) <= 1.0
    assert tr.G.hidden_blur
    assert tr.G.final == "tanh"


def test_volume_training_step():
    ts = make_training_set([blobs((36, 40, 44))], "nphase", L)
    tr = SliceGANTrainer(ts, SMALL, seed=0)
    tr.step()
    assert len(tr.Ds) == 1 and tr.iteration == 1
    ts3 = make_training_set([blobs((36, 40, 44))], "nphase", L, anisotropic=True)
    assert len(SliceGANTrainer(ts3, SMALL, seed=0).Ds) == 3


def test_resume_in_process_is_exact():
    ts = make_training_set([blobs((64, 64))], "nphase", L)
    ref = SliceGANTrainer(ts, SMALL, seed=4)
    for _ in range(4):
        ref.step()
    a = SliceGANTrainer(ts, SMALL, seed=4)
    a.step()
    saved = a.state_dict()
    del a
    b = SliceGANTrainer(ts, SMALL, seed=999)  # different init: everything comes from the state
    with pytest.raises(MicrolibError, match="different settings.*seed"):
        b.load_state_dict(saved)
    other = make_training_set([blobs((64, 64), seed=9)], "nphase", L)
    with pytest.raises(MicrolibError, match="different settings.*data_sha256"):
        SliceGANTrainer(other, SMALL, seed=4).load_state_dict(saved)
    b = SliceGANTrainer(ts, SMALL, seed=4)
    b.load_state_dict(saved)
    for _ in range(3):
        b.step()
    assert state_equal(ref.state_dict(), b.state_dict())


# ----------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def train_png(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("img")
    p = d / "microstructure042.png"
    write_png(
        p,
        blobs((72, 80)),
        {
            "id": "000042",
            "data_type": "threephase",
            "n_phases": 3,
            "phase_grey_values": [20.5, 110.0, 230.0],
            "voxel_size_um": 0.75,
        },
    )
    return p


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "microlib", "train", *map(str, args), *SMALL_CLI]


def _run(args, **kw):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, **kw
    )


@pytest.fixture(scope="module")
def reference_run(train_png, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "m"
    r = _run(
        _cli(
            train_png,
            "--out",
            out,
            "--iterations",
            24,
            "--checkpoint-every",
            3,
            "--log-every",
            4,
            "--seed",
            7,
        )
    )
    assert r.returncode == 0, r.stderr
    return out


def test_artefacts_of_a_finished_run(reference_run, train_png):
    out, name = reference_run, "microstructure042"
    for f in (
        f"{name}_Gen.pt",
        f"{name}_Disc.pt",
        f"{name}_params.data",
        f"{name}_params.json",
        "train_log.csv",
        "checkpoint.pt",
    ):
        assert (out / f).is_file(), f
    assert not (out / "resume").exists()
    pj = read_json(out / f"{name}_params.json")
    assert pj["finished"] is True and pj["image_type"] == "nphase" and pj["nc"] == 3
    assert pj["data_type"] == "threephase"
    assert pj["phase_grey_values"] == [20.5, 110.0, 230.0] and pj["voxel_size_um"] == 0.75
    assert pj["training"]["iterations_done"] == 24 and pj["training"]["seed"] == 7
    assert pj["training"]["hyperparameters"]["batch_size"] == 4
    assert pj["critics"] == {"all": f"{name}_Disc.pt"}
    assert pj["versions"]["torch"] == torch.__version__
    assert pj["source"]["images"][0]["sha256"] == sha256_file(train_png)
    layers = read_params_data(out / f"{name}_params.data")
    assert layers[6] == [16, 64, 32, 16, 3] and layers[2] == [3, 16, 32, 64, 1]
    gen = load_weights(out / f"{name}_Gen.pt")
    assert "bns.3.weight" in gen  # identity BN for the original's strict load
    rows = (out / "train_log.csv").read_text().splitlines()
    assert rows[0] == (
        "iteration,critic_loss,generator_loss,wasserstein,gp,elapsed_s,it_per_s,"
        "vf_err_pts,sa_err_pct,anisotropy,grey_mean_err,grey_std_err,score"
    )
    assert [int(r.split(",")[0]) for r in rows[1:]] == [4, 8, 12, 16, 20, 24]
    # default monitoring: every 10 % of the run, rounded up to the log interval (4)
    for r in rows[1:]:
        vf, sa, aniso, gmean, gstd, score = r.split(",")[7:]
        assert float(vf) >= 0 and float(sa) >= 0 and float(aniso) >= 1
        assert gmean == gstd == ""  # grey columns do not apply to n-phase
        assert float(score) == pytest.approx(float(vf) + float(sa) / 10, rel=1e-4)
    assert pj["training"]["stopped"] == "cap" and pj["training"]["monitor_every"] == 4
    assert pj["training"]["best_iteration"] in (4, 8, 12, 16, 20, 24)


def test_finished_run_is_not_retrained(reference_run, train_png, capsys):
    stamp = (reference_run / "microstructure042_Gen.pt").stat().st_mtime_ns
    rc = main(
        [
            "train",
            str(train_png),
            "--out",
            str(reference_run),
            *SMALL_CLI,
            "--iterations",
            "24",
            "--seed",
            "7",
        ]
    )
    assert rc == 0
    assert "already trained (24 iterations)" in capsys.readouterr().err
    assert (reference_run / "microstructure042_Gen.pt").stat().st_mtime_ns == stamp


def _wait_for(path: Path, proc: subprocess.Popen, timeout=120.0):
    t0 = time.monotonic()
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(
                f"training ended before {path} appeared: "
                f"{proc.stderr.read() if proc.stderr else ''}"
            )
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"{path} did not appear")
        time.sleep(0.005)


def _compare_with_reference(out: Path, ref: Path):
    name = "microstructure042"
    assert state_equal(load_weights(out / f"{name}_Gen.pt"), load_weights(ref / f"{name}_Gen.pt"))
    a, b = load_weights(out / "checkpoint.pt"), load_weights(ref / "checkpoint.pt")
    assert a["trainer"]["iteration"] == b["trainer"]["iteration"] == 24
    assert state_equal(a["trainer"], b["trainer"])  # networks, optimisers, RNG state
    # the log's loss columns continue seamlessly across the interruption
    la = [r.split(",")[:5] for r in (out / "train_log.csv").read_text().splitlines()]
    lb = [r.split(",")[:5] for r in (ref / "train_log.csv").read_text().splitlines()]
    assert la == lb


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_run_resumes_to_the_uninterrupted_result(sig, train_png, reference_run, tmp_path):
    out = tmp_path / "m"
    args = _cli(
        train_png,
        "--out",
        out,
        "--iterations",
        24,
        "--checkpoint-every",
        3,
        "--log-every",
        4,
        "--seed",
        7,
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _wait_for(out / "resume" / "state.pt", proc)
    assert proc.poll() is None, "finished before it could be killed"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert not (out / "microstructure042_params.json").exists()
    state = load_weights(out / "resume" / "state.pt")
    done = state["trainer"]["iteration"]
    assert 3 <= done < 24
    if sig == signal.SIGTERM:
        assert proc.returncode == 143
        assert f"stopped by SIGTERM at iteration {done}/24" in err
        assert err.strip().splitlines()[-1].startswith("microlib train: microstructure042: ")
    else:
        assert proc.returncode == -signal.SIGKILL
        assert done % 3 == 0  # the last periodic checkpoint
    r = _run(args)
    assert r.returncode == 0, r.stderr
    assert f"resumed from iteration {done}/24 ({out / 'resume' / 'state.pt'})" in r.stderr
    _compare_with_reference(out, reference_run)


def test_resume_with_other_settings_is_refused(train_png, tmp_path, capsys):
    out = tmp_path / "m"
    # a constant rate: under a schedule the iteration count is a setting too
    cli = [*SMALL_CLI, "--lr-schedule", "constant"]
    rc = main(
        [
            "train",
            str(train_png),
            "--out",
            str(out),
            *cli,
            "--iterations",
            "2",
            "--checkpoint-every",
            "1",
        ]
    )
    assert rc == 0
    (out / "microstructure042_params.json").unlink()
    (out / "checkpoint.pt").rename(out / "resume_state.pt")
    (out / "resume").mkdir()
    (out / "resume_state.pt").rename(out / "resume" / "state.pt")
    rc = main(
        [
            "train",
            str(train_png),
            "--out",
            str(out),
            *cli,
            "--iterations",
            "4",
            "--lr",
            "0.001",
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert "different settings (preset.lr_d, preset.lr_g)" in err and "--force" in err
    rc = main(["train", str(train_png), "--out", str(out), *cli, "--iterations", "3", "--force"])
    assert rc == 0
    assert read_json(out / "microstructure042_params.json")["training"]["iterations_done"] == 3


def test_cli_errors_are_one_line(tmp_path, capsys):
    grey = tmp_path / "microstructure009.png"
    write_png(
        grey, np.clip(np.random.default_rng(0).normal(128, 50, (70, 70)), 0, 255).astype(np.uint8)
    )
    rc = main(["train", str(grey), "--out", str(tmp_path / "o"), "--image-type", "nphase"])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("microlib train: error: microstructure009: image has ")
    assert "distinct values: a grey or JPEG image" in err[0]
    rc = main(["train", str(grey), "--out", str(tmp_path / "o")])
    assert rc == 2 and "cannot tell the image type" in capsys.readouterr().err


def test_anisotropic_and_volume_cli(tmp_path):
    imgs = []
    for i in range(3):
        p = tmp_path / f"sec{i}.png"
        write_png(p, blobs((40, 48), seed=i), {"data_type": "threephase", "n_phases": 3})
        imgs.append(str(p))
    out = tmp_path / "aniso"
    assert (
        main(
            ["train", *imgs, "--out", str(out), "--name", "aniso", *SMALL_CLI, "--iterations", "1"]
        )
        == 0
    )
    pj = read_json(out / "aniso_params.json")
    assert pj["critics"] == {"0": "aniso_Disc.pt", "1": "aniso_Disc_y.pt", "2": "aniso_Disc_z.pt"}
    assert all((out / f).is_file() for f in pj["critics"].values())
    vol = tmp_path / "vol.tif"
    write_tif(vol, blobs((36, 36, 36)), voxel_size_um=2.0)
    out = tmp_path / "vol"
    assert main(["train", str(vol), "--out", str(out), *SMALL_CLI, "--iterations", "1"]) == 0
    pj = read_json(out / "vol_params.json")
    assert pj["image_type"] == "nphase" and pj["voxel_size_um"] == 2.0


# ----------------------------------------------------------------------------- n-phase inputs


def _rgba_png(path: Path, labels: np.ndarray, levels=(0, 255)) -> Path:
    """A MicroLib/SliceGAN-style PNG: RGBA with R = G = B = level, alpha 255."""
    from PIL import Image

    grey = np.asarray(levels, dtype=np.uint8)[labels]
    rgba = np.dstack([grey, grey, grey, np.full_like(grey, 255)])
    Image.fromarray(rgba, "RGBA").save(path)
    return path


def test_few_grey_levels_are_taken_as_phases_without_flags(tmp_path, caplog):
    png = _rgba_png(tmp_path / "two.png", (blobs((48, 48), fractions=(0.4,)) > 0).astype(int))
    out = tmp_path / "m"
    with caplog.at_level("INFO", logger="microlib.train"):
        rc = main(["train", str(png), "--out", str(out), *SMALL_CLI, "--iterations", "1"])
    assert rc == 0
    assert "treating 2 distinct values {0, 255} as 2 phases" in caplog.text
    pj = read_json(out / "two_params.json")
    assert pj["image_type"] == "nphase" and pj["nc"] == 2 and pj["data_type"] == "twophase"
    assert pj["phase_grey_values"] == [0.0, 255.0]
    # the same values as an RGBA array: grey with constant alpha, else colour
    two = np.where(blobs((40, 40)) > 0, 255, 0).astype(np.uint8)
    rgba = np.dstack([two, two, two, np.full((40, 40), 255, np.uint8)])
    assert infer_image_type(rgba) == "nphase"
    rgba[0, 0, 3] = 0
    assert infer_image_type(rgba) == "colour"
    labels, info = prepare_training_array(
        np.where(blobs((40, 40)) > 0, 200, 7).astype(np.uint8), "nphase", map_levels=True
    )
    assert info == {"n_phases": 2, "grey_levels": [7.0, 200.0]} and labels.max() == 1


def test_grey_micrograph_still_needs_an_image_type(tmp_path, capsys):
    grey = np.clip(np.random.default_rng(1).normal(128, 30, (48, 48)), 0, 255).astype(np.uint8)
    png = _rgba_png(tmp_path / "grey.png", grey, levels=np.arange(256))
    rc = main(["train", str(png), "--out", str(tmp_path / "o"), *SMALL_CLI])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot tell the image type" in err[0]


# ----------------------------------------------------------------------------- knobs


def test_lr_schedules():
    assert lr_factor("constant", 70, 100) == 1.0
    assert lr_factor("cosine", 0, 100, 0.1) == pytest.approx(1.0)
    assert lr_factor("cosine", 50, 100, 0.1) == pytest.approx(0.55)
    assert lr_factor("cosine", 100, 100, 0.1) == pytest.approx(0.1)
    assert lr_factor("linear", 25, 100, 0.2) == pytest.approx(0.8)
    assert lr_factor("linear", 100, 100) == pytest.approx(0.0)
    with pytest.raises(MicrolibError, match="unknown lr_schedule"):
        lr_factor("step", 1, 10)
    ts = make_training_set([blobs((40, 40))], "nphase", L)
    p = SMALL.replace(lr_schedule="cosine", lr_min_frac=0.0, iterations=4, lr_g=1e-3, lr_d=2e-3)
    tr = SliceGANTrainer(ts, p, seed=0)
    tr.step()
    tr.step()  # the second step ran at iteration 1 of 4: factor (1 + cos(pi / 4)) / 2
    f = 0.5 * (1 + np.cos(np.pi / 4))
    assert tr.opt_g.param_groups[0]["lr"] == pytest.approx(1e-3 * f)
    assert tr.opt_ds[0].param_groups[0]["lr"] == pytest.approx(2e-3 * f)
    assert tr.current_lr() == pytest.approx((1e-3 * 0.5, 2e-3 * 0.5))  # next: iteration 2


def test_ema_is_the_weight_average_and_is_saved():
    ts = make_training_set([blobs((40, 40))], "nphase", L)
    tr = SliceGANTrainer(ts, SMALL.replace(ema_decay=0.75), seed=3)
    start = [q.detach().clone() for q in tr.G.parameters()]
    tr.step()
    for e, s0, live in zip(tr.ema.net.parameters(), start, tr.G.parameters(), strict=True):
        assert torch.allclose(e, 0.75 * s0 + 0.25 * live.detach(), atol=1e-6)
    plain = SliceGANTrainer(ts, SMALL, seed=3)
    plain.step()
    # same trajectory (EMA does not feed back), different generator for saving
    assert state_equal(plain.G.state_dict(), tr.G.state_dict())
    g_ema = tr.generator_for_eval().state_dict()
    assert not torch.equal(g_ema["convs.0.weight"], plain.G.state_dict()["convs.0.weight"])
    # BatchNorm statistics re-estimated for the averaged weights, deterministically
    assert not torch.equal(g_ema["bns.0.running_mean"], tr.G.state_dict()["bns.0.running_mean"])
    again = {k: v.clone() for k, v in g_ema.items()}
    assert state_equal(again, tr.generator_for_eval().state_dict())


def _four_steps_and_resumed(ts, p, seed, between=lambda tr: None):
    """Trainers after four steps uninterrupted, and after two, a resume and two more
    (``between`` runs on the first run after its first step)."""
    ref = SliceGANTrainer(ts, p, seed=seed)
    for _ in range(4):
        ref.step()
    a = SliceGANTrainer(ts, p, seed=seed)
    a.step()
    between(a)
    a.step()
    b = SliceGANTrainer(ts, p, seed=seed)
    b.load_state_dict(a.state_dict())
    b.step()
    b.step()
    return ref, b


def test_resume_with_ema_and_schedule_in_process_is_exact():
    ts = make_training_set([blobs((64, 64))], "nphase", L)
    p = SMALL.replace(ema_decay=0.9, lr_schedule="linear", lr_min_frac=0.1, iterations=4)
    # a quality check between steps must not change anything
    ref, b = _four_steps_and_resumed(ts, p, 4, between=lambda tr: tr.generator_for_eval())
    assert state_equal(ref.state_dict(), b.state_dict())
    with pytest.raises(MicrolibError, match="different settings.*preset.ema_decay"):
        SliceGANTrainer(ts, p.replace(ema_decay=0.5), seed=4).load_state_dict(ref.state_dict())


# ----------------------------------------------------------------------------- monitoring


def test_monitor_columns_on_known_volumes():
    img = blobs((48, 48))
    ts = make_training_set([img], "nphase", L)
    ref = reference_statistics(ts)
    cube = np.stack([blobs((48, 48), seed=s) for s in range(48)])
    row = compare(ref, cube, "nphase", 3)
    assert set(row) == {
        "vf_err_pts",
        "sa_err_pct",
        "anisotropy",
        "grey_mean_err",
        "grey_std_err",
        "score",
    }
    assert 0 <= row["vf_err_pts"] < 10 and row["anisotropy"] > 1.5  # independent z slices
    assert row["score"] == pytest.approx(row["vf_err_pts"] + row["sa_err_pct"] / 10)
    one = np.zeros((8, 8, 8), np.uint8)
    one[:, :, 4:] = 2
    bad = compare(ref, one, "nphase", 3)
    assert bad["vf_err_pts"] > 20 and bad["anisotropy"] == float("inf")
    grey = make_training_set([np.full((40, 40), 100, np.uint8)], "grayscale", L)
    g = compare(reference_statistics(grey), np.full((8, 8, 8), 110, np.uint8), "grayscale", 1)
    assert g["grey_mean_err"] == pytest.approx(10) and g["grey_std_err"] == 0
    assert np.isnan(g["vf_err_pts"])


def test_plateau_stop_rule():
    rule = PlateauStop(patience=2, min_iteration=30)
    decisions = [rule.update(it, s) for it, s in [(10, 5), (20, 4), (30, 4.5), (40, 4.1)]]
    assert decisions == [False, False, False, True]
    assert (rule.best_iteration, rule.best_score) == (20, 4)
    late = PlateauStop(patience=1, min_iteration=100)
    assert [late.update(it, 9.0) for it in (10, 20, 100)] == [False, False, True]
    off = PlateauStop(patience=0)
    assert not any(off.update(it, 1.0) for it in range(1, 20))


def test_stop_rule_in_a_run(train_png, tmp_path):
    out = tmp_path / "m"
    args = [*SMALL_CLI, "--iterations", "40", "--log-every", "1", "--monitor-every", "1"]
    args += ["--stop-patience", "2", "--stop-min-iterations", "5", "--seed", "3"]
    assert main(["train", str(train_png), "--out", str(out), *args]) == 0
    tr = read_json(out / "microstructure042_params.json")["training"]
    rows = [r.split(",") for r in (out / "train_log.csv").read_text().splitlines()[1:]]
    scores = [float(r[-1]) for r in rows]
    assert len(scores) == tr["iterations_done"]
    best = int(np.argmin(scores))
    # train_log.csv keeps 6 significant digits
    assert tr["best_iteration"] == best + 1
    assert tr["best_score"] == pytest.approx(scores[best], rel=1e-5)
    if tr["stopped"] == "plateau":
        # patience may run out on the last iteration too
        assert (
            5 <= tr["iterations_done"] <= 40 and tr["iterations_done"] - tr["best_iteration"] == 2
        )
    else:
        assert tr["stopped"] == "cap" and tr["iterations_done"] == 40


def test_grey_run_with_every_knob_records_them(tmp_path):
    grey = np.clip(np.random.default_rng(2).normal(120, 30, (48, 48)), 0, 255).astype(np.uint8)
    png = tmp_path / "g.png"
    write_png(png, grey, {"data_type": "grayscale"})
    out = tmp_path / "m"
    knobs = ["--ema-decay", "0.5", "--lr-schedule", "cosine", "--lr-min-frac", "0.2"]
    knobs += ["--lr-g", "3e-4", "--lr-d", "6e-4", "--monitor-every", "1", "--log-every", "1"]
    knobs += ["--histogram-weight", "7"]  # replaces the demo's grey weight too
    knobs += ["--d-slices", "5", "--output-noise"]
    assert (
        main(["train", str(png), "--out", str(out), *SMALL_CLI, "--iterations", "2", *knobs]) == 0
    )
    pj = read_json(out / "g_params.json")
    hp = pj["training"]["hyperparameters"]
    assert (hp["ema_decay"], hp["lr_schedule"], hp["lr_min_frac"]) == (0.5, "cosine", 0.2)
    assert (hp["lr_g"], hp["lr_d"], hp["monitor_every"]) == (3e-4, 6e-4, 1)
    assert Preset.from_dict(hp) == SMALL.replace(
        iterations=2, ema_decay=0.5, lr_schedule="cosine", lr_min_frac=0.2, lr_g=3e-4, lr_d=6e-4
    ).replace(monitor_every=1, d_slices=5, g_output_noise=True).for_image_type("grayscale").replace(
        histogram_weight=7.0
    )
    assert hp["histogram_weight"] == 7.0
    assert pj["training"]["saved_generator"] == "ema"
    rows = [r.split(",") for r in (out / "train_log.csv").read_text().splitlines()[1:]]
    assert [r[0] for r in rows] == ["1", "2"]
    for r in rows:
        assert r[7] == "" and float(r[10]) >= 0 and float(r[11]) >= 0  # grey: no vf column
    state = load_weights(out / "checkpoint.pt")
    assert state["stopped"] == "cap" and set(state["trainer"]["ema"]) == {
        k for k in load_weights(out / "g_Gen.pt") if "running" not in k and "num_batches" not in k
    } - {"bns.3.weight", "bns.3.bias"}


def test_command_line_values_beat_the_presets_grey_fields(tmp_path):
    grey = np.clip(np.random.default_rng(3).normal(120, 30, (48, 48)), 0, 255).astype(np.uint8)
    png = tmp_path / "g.png"
    write_png(png, grey, {"data_type": "grayscale"})
    assert get_preset("demo").for_image_type("grayscale").g_batch_size == 2
    # the last --g-batch-size wins: 3 replaces SMALL_CLI's 2, the grey fields' value too
    argv = ["train", str(png), "--out", str(tmp_path / "m"), *SMALL_CLI, "--g-batch-size", "3"]
    argv += ["--iterations", "1"]
    assert main(argv) == 0
    hp = read_json(tmp_path / "m" / "g_params.json")["training"]["hyperparameters"]
    assert hp["g_batch_size"] == 3 and hp["g_hidden_stage"] == "blur"  # other grey fields kept


def test_zero_byte_resume_state_is_one_line(train_png, tmp_path, capsys):
    out = tmp_path / "m"
    (out / "resume").mkdir(parents=True)
    (out / "resume" / "state.pt").write_bytes(b"")
    rc = main(["train", str(train_png), "--out", str(out), *SMALL_CLI, "--iterations", "2"])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "microlib train: error: microstructure042: state.pt: empty or truncated checkpoint"
    ]


def test_sigterm_with_ema_resumes_exactly(train_png, tmp_path):
    """EMA on, checkpoints on a (very short) timer only: the resumed run equals the
    uninterrupted one bit for bit."""
    ref_out, out = tmp_path / "ref", tmp_path / "m"
    base = [train_png, "--iterations", 24, "--log-every", 4, "--seed", 7, "--ema-decay", 0.8]
    base += ["--checkpoint-minutes", 0.0005]
    r = _run(_cli(*base, "--out", ref_out))
    assert r.returncode == 0, r.stderr
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        _cli(*base, "--out", out),
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for(out / "resume" / "state.pt", proc)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    assert proc.returncode == 143
    assert load_weights(out / "resume" / "state.pt")["stopped"] == "signal"
    r = _run(_cli(*base, "--out", out))
    assert r.returncode == 0, r.stderr
    assert "resumed from iteration" in r.stderr
    _compare_with_reference(out, ref_out)
    assert read_json(out / "microstructure042_params.json")["training"]["saved_generator"] == "ema"


# ----------------------------------------------------------------------------- slow


@pytest.mark.slow
def test_real_threephase_volume_fractions(realdata, tmp_path):
    """Train the tiny generator on slices of a real 3-phase volume; the generated volume's
    phase fractions are within 3 points of the real ones."""

    src = realdata / "volumes" / "threephase_128.tif"
    real = read_tif(src)
    real_vf = np.bincount(real.ravel(), minlength=3) / real.size
    out = tmp_path / "tp"
    # 600 tiny iterations, ~2 s each on one core (20-40 min on a shared machine). One
    # thread on purpose: two threads on a busy 2-core machine made steps up to 10x slower
    # (OpenMP barriers waiting for a descheduled thread).
    rc = main(
        [
            "train",
            str(src),
            "--out",
            str(out),
            "--preset",
            "tiny",
            "--seed",
            "0",
            "--iterations",
            "600",
            "--threads",
            "1",
            "--log-every",
            "50",
        ]
    )
    assert rc == 0
    net, params = load_generator(out)
    vol = synthesise(net, params, 128, seed=1)
    vf = np.bincount(vol.ravel(), minlength=3) / vol.size
    print("real", np.round(real_vf, 4), "generated", np.round(vf, 4))
    assert np.abs(vf - real_vf).max() < 0.03


# ----------------------------------------------------------------------------- CUDA


@pytest.mark.gpu
def test_cuda_training_with_every_optimisation():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    ts = make_training_set([blobs((96, 96))], "nphase", L)
    opts = Optimisations(channels_last=True)
    tr = SliceGANTrainer(ts, SMALL, seed=0, device="cuda", opts=opts)
    assert tr.eff["autocast_bf16"] and tr.eff["tf32"] and tr.eff["fused_adam"]
    x = tr.sample_real(2, 6)
    assert x.is_cuda and torch.equal(x.sum(1), torch.ones(6, L, L, device="cuda"))
    for _ in range(3):
        tr.step()
    log = tr.read_log()
    assert all(np.isfinite(v) for v in log.values())
    state = tr.state_dict()
    again = SliceGANTrainer(ts, SMALL, seed=0, device="cuda", opts=opts)
    assert again.load_state_dict(state) == []  # same device: RNG restored exactly
    again.step()
    cpu = SliceGANTrainer(ts, SMALL, seed=0, device="cpu")
    notes = cpu.load_state_dict(state)  # a requeue onto a CPU node still resumes
    assert notes and "re-seeded" in notes[0]
    cpu.step()
    assert cpu.iteration == 4


@pytest.mark.gpu
def test_cuda_baseline_and_optimised_losses_agree_at_start():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    ts = make_training_set([blobs((96, 96))], "nphase", L)
    a = SliceGANTrainer(ts, SMALL, seed=0, device="cuda", opts=Optimisations.baseline())
    b = SliceGANTrainer(ts, SMALL, seed=0, device="cuda", opts=Optimisations())
    for p, q in zip(a.G.parameters(), b.G.parameters(), strict=True):
        assert torch.equal(p, q)  # same initialisation whatever the switches


def test_demo_preset_run_with_the_resize_and_blur_stages_generates(train_png, tmp_path):
    """The demo preset as it is (resize output stage, hidden layers blurred for grey and
    colour, constant lr, EMA), a few iterations on an n-phase and a grey image: loadable
    artefacts, and ``microlib generate`` works on them."""
    demo = get_preset("demo")
    assert (demo.g_output_stage, demo.g_hidden_stage, demo.lr_schedule, demo.ema_decay) == (
        "resize_trilinear",
        "transpose",
        "constant",
        0.99,
    )
    assert demo.for_image_type("nphase") is demo
    grey = demo.for_image_type("colour")
    assert (grey.g_hidden_stage, grey.gp, grey.lz, grey.l, grey.grey) == (
        "blur",
        (3, 3, 3, 3),
        6,
        36,
        {},
    )
    assert grey.for_image_type("grayscale") == grey
    assert demo.iterations == 1200 and demo.lr_g == demo.lr_d == 5e-4
    assert demo.orientation_weight == 100.0 and demo.calibrate_phases
    out = tmp_path / "m"
    args = ["--preset", "demo", "--iterations", "3", "--threads", "1"]
    assert main(["train", str(train_png), "--out", str(out), *args]) == 0
    name = "microstructure042"
    pj = read_json(out / f"{name}_params.json")
    assert pj["g_output_stage"] == "resize_trilinear"
    # the demo calibrates n-phase fractions: offsets for the three phases (version 6)
    assert pj["format_version"] == 6 and len(pj["phase_bias"]["offsets"]) == 3
    assert pj["phase_bias"]["fitted_vf"] == pytest.approx(pj["phase_bias"]["target_vf"], abs=2e-3)
    assert pj["l"] == 32 and pj["lz"] == 4
    assert load_weights(out / f"{name}_Gen.pt")["convs.3.weight"].shape == (3, 16, 3, 3, 3)
    assert read_params_data(out / f"{name}_params.data")[6] == [16, 64, 32, 16, 3]
    net, params = load_generator(out)
    assert net.output_stage == params.g_output_stage == "resize_trilinear"
    assert net.hidden_stage == "transpose" and not net.hidden_blur
    vol = tmp_path / "v.tif"
    rc = main(["generate", str(out), "--size", "40", "--out", str(vol), "--tile", "16"])
    assert rc == 0
    # the same tiles as the command: the calibration puts a phase boundary inside the
    # logits' bulk, so another tiling's float rounding may flip a near-tied voxel
    assert np.array_equal(read_tif(vol), synthesise(net, params, 40, seed=0, tile=16))
    # a grey image trains the blurred variant, and generates through the same command
    rng = np.random.default_rng(1)
    img = ndimage.gaussian_filter(rng.random((48, 48)), 2)
    img = ((img - img.min()) / np.ptp(img) * 255).astype(np.uint8)
    grey_png = tmp_path / "grey042.png"
    Image.fromarray(img).save(grey_png)
    out = tmp_path / "g"
    cmd = ["train", str(grey_png), "--out", str(out), "--image-type", "grayscale", *args]
    assert main(cmd) == 0
    pj = read_json(out / "grey042_params.json")
    assert pj["g_hidden_stage"] == "blur" and (pj["l"], pj["lz"]) == (36, 6)
    assert pj["format_version"] == 4 and pj["training"]["hyperparameters"]["l"] == 36
    assert "phase_bias" not in pj  # grey levels have no phases to calibrate
    net, params = load_generator(out)
    assert net.hidden_blur and synthesise(net, params, 40, seed=0).shape == (40, 40, 40)


def test_output_noise_trains_from_zero_and_resumes_exactly():
    """Output noise is drawn from the run's own RNG: a resumed run is the uninterrupted one."""
    ts = make_training_set([blobs((48, 48))], "nphase", L)
    p = SMALL.replace(g_output_noise=True, iterations=4)
    assert float(SliceGANTrainer(ts, p, seed=2).G.noise_weight.detach().abs().sum()) == 0
    ref, b = _four_steps_and_resumed(ts, p, 2)
    assert float(ref.G.noise_weight.detach().abs().sum()) > 0
    assert state_equal(ref.state_dict(), b.state_dict())


def test_preset_with_grey_fields_round_trips_through_its_dict():
    demo = get_preset("demo")
    assert demo.grey and Preset.from_dict(demo.to_dict()) == demo
    assert Preset.from_dict(demo.to_dict()).for_image_type("colour") == demo.for_image_type(
        "colour"
    )
