"""Family (AdaIN-conditioned) SliceGAN: networks, training state, CLI edges, feature size,
and one slow end-to-end check that the code interpolates the feature size."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest
import torch
from scipy import ndimage

from microlib.cli import main
from microlib.errors import MicrolibError
from microlib.io import read_json, read_tif, read_tif_meta, write_png
from microlib.slicegan.adain import (
    AdaINGenerator,
    check_code,
    conditional_critic,
    generator_at_code,
    load_conditional_generator,
    with_code_channel,
)
from microlib.slicegan.params import ModelParams, load_weights
from microlib.slicegan.presets import get_preset
from microlib.train import make_training_set
from microlib.train.family import FamilyTrainer, rounded_batch
from microlib.train.family_run import FamilyConfig, family_train_run, parse_codes
from microlib.validate import feature_size, is_monotone, mean_chord_lengths

CODES = (0.15, 0.35, 0.6)
TINY = get_preset("demo").replace(
    nz=4, g_hidden=(16, 8, 8), d_hidden=(8, 8, 16), batch_size=3, d_batch_size=3, g_batch_size=3
)
TINY_CLI = [
    "--preset",
    "demo",
    "--iterations",
    "2",
    "--batch-size",
    "3",
    "--d-batch-size",
    "3",
    "--g-batch-size",
    "3",
    "--critic-iters",
    "1",
    "--code-dim",
    "8",
    "--code-hidden",
    "8",
    "--threads",
    "1",
]


def two_phase(sigma: float, size: int = 256, seed: int = 0) -> np.ndarray:
    """Blurred white noise thresholded at its median: two phases, correlation ~1.5 sigma."""
    f = ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal((size, size)), sigma)
    return (f > np.median(f)).astype(np.uint8)


def member_files(tmp_path, sigmas=(2.0, 3.3, 5.3), size=128):
    paths = []
    for i, s in enumerate(sigmas):
        p = tmp_path / f"member{i}.png"
        write_png(p, two_phase(s, size, seed=i) * 255)
        paths.append(p)
    return paths


@pytest.fixture(scope="module")
def family_dir(tmp_path_factory):
    """A family model trained for two iterations through the CLI."""
    d = tmp_path_factory.mktemp("family")
    imgs = member_files(d, size=64)
    rc = main(
        ["train", *map(str, imgs), "--codes", ",".join(map(str, CODES)), "--out", str(d / "m")]
        + TINY_CLI
    )
    assert rc == 0
    return d / "m"


# --------------------------------------------------------------------------- networks


def test_adain_generator_shapes_and_code_changes_output():
    p = TINY
    torch.manual_seed(0)
    g = AdaINGenerator(p.gk, p.gs, p.gp, p.gf(2), "softmax", code_dim=8, code_hidden=8)
    for h in g.mlp.heads:  # the heads start at zero (code-blind); give them weights
        torch.nn.init.normal_(h.weight, std=0.5)
    z = torch.randn(2, p.nz, p.lz, p.lz, p.lz)
    out = g(z, torch.tensor([0.15, 0.6]))
    assert out.shape == (2, 2, p.l, p.l, p.l)
    assert torch.allclose(out.sum(1), torch.ones(2, p.l, p.l, p.l), atol=1e-5)
    a = g(z[:1], torch.tensor([0.15]))
    b = g(z[:1], torch.tensor([0.6]))
    assert not torch.allclose(a, b)
    critic = conditional_critic(p.dk, p.ds, p.dp, p.df(2))
    x = with_code_channel(out[:, :, 0], torch.tensor([0.15, 0.6]))
    assert x.shape == (2, 3, p.l, p.l) and torch.all(x[1, 2] == 0.6)
    assert critic(x).shape[:2] == (2, 1)


def test_generator_at_code_matches_adain_on_its_calibration_latent():
    """With one calibration latent the frozen statistics are that latent's instance
    statistics, so the plain generator reproduces AdaIN exactly on it."""
    p = TINY
    torch.manual_seed(1)
    g = AdaINGenerator(p.gk, p.gs, p.gp, p.gf(2), "softmax", code_dim=8, code_hidden=8).eval()
    for h in g.mlp.heads:
        torch.nn.init.normal_(h.weight, std=0.5)
    plain = generator_at_code(g, 0.3, p.lz, latents=1, seed=7)
    z = torch.randn(1, p.nz, p.lz, p.lz, p.lz, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        want = g(z, torch.tensor([0.3]), activate=False)
        got = plain(z, activate=False)
    assert torch.allclose(got, want, atol=1e-4, rtol=1e-4)
    other = generator_at_code(g, 0.5, p.lz, latents=1, seed=7)
    assert not torch.allclose(other(z, activate=False), got)


def test_family_trainer_resume_is_exact():
    members = [make_training_set([two_phase(s, 48, i)], "nphase", 32) for i, s in enumerate((2, 4))]
    torch.set_num_threads(1)

    def trainer():
        return FamilyTrainer(members, [0.2, 0.4], TINY.replace(critic_iters=1), 8, 8, seed=3)

    a = trainer()
    for _ in range(3):
        a.step()
    b = trainer()
    b.step()
    c = trainer()
    c.load_state_dict(b.state_dict())
    c.step()
    c.step()
    for k, v in a.G.state_dict().items():
        assert torch.equal(v, c.G.state_dict()[k]), k
    with pytest.raises(MicrolibError, match="different settings"):
        FamilyTrainer(members, [0.2, 0.5], TINY, 8, 8, seed=3).load_state_dict(b.state_dict())
    assert rounded_batch(4, 3) == 6 and rounded_batch(1, 2) == 2


def test_family_trainer_is_channels_last_on_a_cpu():
    """The family trainer follows the single-entry trainer's memory-format policy (on a CPU,
    channels-last measured faster), and a step keeps the layout."""
    members = [make_training_set([two_phase(s, 48, i)], "nphase", 32) for i, s in enumerate((2, 4))]
    tr = FamilyTrainer(members, [0.2, 0.4], TINY.replace(critic_iters=1), 8, 8, seed=3)
    convs = [m.weight for m in tr.G.modules() if isinstance(m, torch.nn.modules.conv._ConvNd)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last_3d) for w in convs)
    crit = [m.weight for m in tr.D.modules() if isinstance(m, torch.nn.Conv2d)]
    assert crit and all(w.is_contiguous(memory_format=torch.channels_last) for w in crit)
    assert tr.noise(2).is_contiguous(memory_format=torch.channels_last_3d)
    tr.step()
    assert all(w.is_contiguous(memory_format=torch.channels_last_3d) for w in convs)


def _send_sigterm_once(path, deadline_s=60.0):
    """SIGTERM this process as soon as ``path`` exists (the first periodic checkpoint)."""
    t0 = time.monotonic()
    while not path.exists():
        if time.monotonic() - t0 > deadline_s:
            return
        time.sleep(0.002)
    os.kill(os.getpid(), signal.SIGTERM)


def test_family_sigterm_resumes_to_the_uninterrupted_result(tmp_path, caplog):
    """Family runs share the single-image run loop: SIGTERM saves the state and exits 143,
    rerunning finishes bit for bit as the uninterrupted run."""
    imgs = member_files(tmp_path, size=48)

    def run(out):
        preset = TINY.replace(iterations=8, critic_iters=1)
        return family_train_run(
            FamilyConfig(
                imgs,
                list(CODES),
                out,
                preset,
                code_dim=8,
                code_hidden=8,
                threads=1,
                log_every=2,
                checkpoint_every=2,
            )
        )

    ref, out = tmp_path / "ref", tmp_path / "m"
    assert run(ref) == 0
    state = out / "resume" / "state.pt"
    # the test process ignores a SIGTERM that lands outside the run's own handler
    old = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        killer = threading.Thread(target=_send_sigterm_once, args=(state,), daemon=True)
        killer.start()
        rc = run(out)
        killer.join(timeout=60)
    finally:
        signal.signal(signal.SIGTERM, old)
    assert rc == 143 and not (out / "member0_family_params.json").exists()
    saved = load_weights(state)
    assert saved["stopped"] == "signal" and 2 <= saved["trainer"]["iteration"] < 8
    with caplog.at_level("INFO", logger="microlib.train"):
        assert run(out) == 0
    assert f"resumed from iteration {saved['trainer']['iteration']}/8" in caplog.text
    assert not (out / "resume").exists()
    for f in ("member0_family_Gen.pt", "member0_family_Disc.pt"):
        a, b = load_weights(out / f), load_weights(ref / f)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), f
    a, b = load_weights(out / "checkpoint.pt"), load_weights(ref / "checkpoint.pt")
    assert a["trainer"]["iteration"] == 8 and torch.equal(a["trainer"]["acc"], b["trainer"]["acc"])
    assert torch.equal(a["trainer"]["rng_state"], b["trainer"]["rng_state"])
    la, lb = ((d / "train_log.csv").read_text().splitlines() for d in (out, ref))
    assert [r.split(",")[:5] for r in la] == [r.split(",")[:5] for r in lb]
    assert [int(r.split(",")[0]) for r in la[1:]] == [2, 4, 6, 8]


# --------------------------------------------------------------------------- params


def test_params_round_trip_keeps_conditional_block(family_dir):
    d = read_json(family_dir / "member0_family_params.json")
    cond = d["conditional"]
    assert cond["code_range"] == [0.15, 0.6] and cond["code_dim"] == 8
    assert [m["code"] for m in cond["members"]] == list(CODES)
    assert [m["file"] for m in cond["members"]] == [f"member{i}.png" for i in range(3)]
    assert d["finished"] is True and d["layers"]["df"][0] == 3  # + the code channel
    p = ModelParams.from_json(d)
    assert p.conditional == cond
    assert ModelParams.from_json(p.to_json()) == p
    plain = ModelParams.from_json({**d, "conditional": None})
    assert plain.conditional is None and "conditional" not in plain.to_json()


def test_check_code_range(family_dir):
    _, params = load_conditional_generator(family_dir)
    assert check_code(params, 0.15) == [] and check_code(params, 0.6) == []
    with pytest.raises(MicrolibError, match="outside the trained range"):
        check_code(params, 0.1)
    assert "extrapolating" in check_code(params, 0.9, extrapolate=True)[0]


# --------------------------------------------------------------------------- CLI


def test_codes_with_one_image_is_one_line_error(tmp_path, capsys):
    img = member_files(tmp_path, sigmas=(2.0,), size=64)[0]
    rc = main(["train", str(img), "--codes", "0.15", "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "two or more images" in err[0]
    assert not (tmp_path / "m").exists()


def test_codes_count_and_values_are_checked():
    with pytest.raises(MicrolibError, match="2 codes for 3 images"):
        parse_codes("0.1,0.2", 3)
    with pytest.raises(MicrolibError, match="own code"):
        parse_codes("0.1,0.1", 2)
    with pytest.raises(MicrolibError, match="not a comma-separated"):
        parse_codes("0.1,x", 2)
    assert parse_codes("0.15, 0.35,0.6", 3) == [0.15, 0.35, 0.6]


def test_generate_needs_a_code_in_range(family_dir, tmp_path, capsys, caplog):
    out = tmp_path / "v.tif"
    base = ["generate", str(family_dir), "--size", "32", "--out", str(out), "--threads", "1"]
    rc = main(base)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "--code" in err[0] and "0.15, 0.6" in err[0]
    rc = main([*base, "--code", "0.7"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "outside the trained range" in err[0]
    assert not out.exists()
    with caplog.at_level("WARNING"):
        rc = main([*base, "--code", "0.7", "--extrapolate"])
    assert rc == 0 and "extrapolating" in caplog.text
    rc = main([*base, "--code", "0.25"])
    assert rc == 0
    vol = read_tif(out)
    assert vol.shape == (32, 32, 32) and set(np.unique(vol)) <= {0, 1}
    assert read_tif_meta(out)["info"]["generator"]["code"] == 0.25


def test_code_on_a_single_image_model_is_refused(tmp_path, capsys):
    img = member_files(tmp_path, sigmas=(2.0,), size=64)[0]
    args = ["--preset", "demo", "--iterations", "1", "--threads", "1", "--critic-iters", "1"]
    assert main(["train", str(img), "--out", str(tmp_path / "m"), *args]) == 0
    capsys.readouterr()
    rc = main(
        ["generate", str(tmp_path / "m"), "--code", "0.2", "--size", "32"]
        + ["--out", str(tmp_path / "v.tif")]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "trained on one image" in err[0]


# --------------------------------------------------------------------------- feature size


def test_chord_length_of_stripes_is_their_width():
    x = np.arange(60)
    stripes = np.broadcast_to(((x // 5) % 2).astype(np.uint8), (40, 60))
    chords = mean_chord_lengths(stripes, 2)
    assert np.allclose(chords[:, 1], 5.0) and np.allclose(chords[:, 0], 40.0)


def test_feature_size_grows_with_blur_and_scales_to_micrometres():
    sizes = [feature_size(two_phase(s, 192))["correlation_length_px"] for s in (1.5, 3, 5)]
    assert is_monotone(sizes) and sizes[0] < sizes[1] < sizes[2]
    r = feature_size(two_phase(3, 192), voxel_size_um=0.5)
    assert r["correlation_length_um"] == pytest.approx(0.5 * r["correlation_length_px"])
    assert r["mean_chord_length_um"] == pytest.approx(0.5 * r["mean_chord_length_px"])
    vol = np.stack([two_phase(3, 64, seed=k) for k in range(64)])
    assert len(feature_size(vol)["correlation_length_axes_px"]) == 3
    with pytest.raises(MicrolibError):
        feature_size(np.zeros(5))


# --------------------------------------------------------------------------- slow


SLOW_PRESET = get_preset("family").replace(name="family-test", iterations=1200, ema_decay=0.99)
SLOW_INTERMEDIATE = (0.2, 0.25, 0.3, 0.475)


@pytest.mark.slow
def test_family_interpolates_feature_size(tmp_path):
    """Three two-phase structures with correlation lengths ~3 / 5 / 8 px: at the training
    codes the generated volumes match their members within 15 %, between them the size
    follows the code monotonically."""
    imgs = [tmp_path / f"m{i}.png" for i in range(3)]
    want = []
    for i, (p, s) in enumerate(zip(imgs, (2.0, 3.3, 5.3), strict=True)):
        lab = two_phase(s, 256, seed=i)
        write_png(p, lab * 255)
        want.append(feature_size(lab)["correlation_length_px"])
    cfg = FamilyConfig(
        images=imgs,
        codes=list(CODES),
        out=tmp_path / "m",
        preset=SLOW_PRESET,
        code_dim=32,
        code_hidden=64,
        device="cpu",
        threads=2,
        checkpoint_minutes=0,
    )
    assert family_train_run(cfg) == 0
    net, params = load_conditional_generator(tmp_path / "m")
    codes = sorted((*CODES, *SLOW_INTERMEDIATE))
    sizes = {}
    for c in codes:
        gen = generator_at_code(net, c, params.lz)
        z = torch.randn(1, params.nz, 8, 8, 8, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            vol = gen(z).argmax(1)[0].numpy().astype(np.uint8)  # 96^3
        sizes[c] = feature_size(vol)["correlation_length_px"]
    for c, w in zip(CODES, want, strict=True):
        assert sizes[c] == pytest.approx(w, rel=0.15), (c, sizes)
    assert is_monotone([sizes[c] for c in codes]), sizes
