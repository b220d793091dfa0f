"""Phase-fraction calibration of n-phase generators and the isotropy term: the fit, its
record in params.json, its use by every generation, and the term's measure."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage
from test_generate import make_net, make_params, save_model

from microlib.errors import MicrolibError
from microlib.generate import load_generator, synthesise
from microlib.slicegan.params import ModelParams
from microlib.train.orientation import (
    SCALES,
    TOLERANCE,
    coherence,
    multiscale_planes,
    normalised_planes,
    orientation_loss,
    plane_tensors,
    smooth,
)
from microlib.train.phase_bias import fit_phase_bias, phase_bias_record, target_fractions
from microlib.validate.fidelity import orientation_anisotropy_planes


def _fractions(labels: torch.Tensor, nc: int) -> np.ndarray:
    return torch.bincount(labels.flatten(), minlength=nc).double().numpy() / labels.numel()


def test_two_phase_fit_is_exact_and_three_phase_within_tolerance():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 200_000, generator=g) + torch.tensor([[0.8], [0.0]])
    b, f = fit_phase_bias(x, np.array([0.3, 0.7]))
    assert f == pytest.approx([0.3, 0.7], abs=1e-5)
    assert _fractions((x + torch.tensor(b).float()[:, None]).argmax(0), 2) == pytest.approx(f)
    assert b.sum() == pytest.approx(0.0, abs=1e-9)
    x3 = torch.randn(3, 300_000, generator=g) * torch.tensor([[1.0], [2.0], [0.5]])
    tgt = np.array([0.2, 0.5, 0.3])
    b3, f3 = fit_phase_bias(x3, tgt)
    assert np.abs(f3 - tgt).max() < 5e-4
    # already right: (almost) no offset
    x0 = torch.randn(2, 100_000, generator=g)
    b0, _ = fit_phase_bias(x0, _fractions(x0.argmax(0), 2))
    assert np.abs(b0).max() < 0.02


def test_absent_phase_gets_no_voxel():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 50_000, generator=g)
    _, f = fit_phase_bias(x, np.array([0.0, 0.4, 0.6]))
    assert f[0] == 0.0 and f[1:] == pytest.approx([0.4, 0.6], abs=1e-3)


def test_target_fractions_pool_every_source():
    a = np.zeros((10, 10), np.uint8)
    a[:3] = 1
    b = np.full((5, 4), 2, np.uint8)
    assert target_fractions([a, b], 3) == pytest.approx([70 / 120, 30 / 120, 20 / 120])


def test_calibrated_generator_generates_the_target_fractions(tmp_path):
    params = make_params(nc=3, preset="demo")
    net = make_net(params)
    raw = synthesise(net, params, 96, seed=0)
    raw_f = np.bincount(raw.ravel(), minlength=3) / raw.size
    # a target far from what the untrained net makes
    src = np.zeros(1000, np.uint8)
    src[:500], src[500:800] = np.argsort(raw_f)[0], np.argsort(raw_f)[1]
    src[800:] = np.argsort(raw_f)[2]
    rec = phase_bias_record(
        net, params.nz, params.gk, params.gs, params.gp, [src], 3, torch.device("cpu")
    )
    assert rec["target_vf"] == pytest.approx(target_fractions([src], 3).tolist(), abs=1e-6)
    assert rec["raw_vf"] != pytest.approx(rec["target_vf"], abs=0.05)
    params.phase_bias = rec
    d = tmp_path / "m"
    save_model(d, params, net)
    net2, p2 = load_generator(d)
    assert p2.phase_offsets == pytest.approx(rec["offsets"])
    assert p2.to_json()["format_version"] == 6
    vol = synthesise(net2, p2, 96, seed=3)  # a seed the fit never saw
    f = np.bincount(vol.ravel(), minlength=3) / vol.size
    assert np.abs(f - rec["target_vf"]).max() < 0.03
    assert np.abs(raw_f - rec["target_vf"]).max() > 0.1
    # the offsets change labels, never the volume's size or dtype
    assert vol.shape == raw.shape and vol.dtype == np.uint8


def test_phase_bias_is_refused_where_it_cannot_apply():
    with pytest.raises(MicrolibError, match="phase_bias needs 3 offsets"):
        make_params(nc=3, phase_bias={"offsets": [0.0, 1.0]})
    with pytest.raises(MicrolibError, match="phase_bias"):
        make_params(image_type="grayscale", nc=1, phase_bias={"offsets": [0.0]})
    d = make_params(nc=2, phase_bias={"offsets": [0.5, -0.5]}).to_json()
    assert ModelParams.from_json(d).phase_offsets == [0.5, -0.5]
    plain = make_params(nc=2).to_json()
    assert "phase_bias" not in plain and plain["format_version"] < 6


# ----------------------------------------------------------------------------- isotropy


def _stripes(angle_deg: float, n: int = 40) -> torch.Tensor:
    """Two-phase soft volume striped in the planes normal to x at ``angle_deg``."""
    z, y = torch.meshgrid(torch.arange(n).float(), torch.arange(n).float(), indexing="ij")
    t = math.radians(angle_deg)
    s = torch.sigmoid(3 * torch.sin((z * math.cos(t) + y * math.sin(t)) / 2.0))
    p1 = s[:, :, None].expand(n, n, n)
    return torch.stack([1 - p1, p1])[None]


def test_plane_tensors_agree_with_the_validation_measure():
    # sheets at 30 degrees through a noisy field: ratios far from 1 and unequal
    g = torch.Generator().manual_seed(0)
    noise = smooth(torch.rand(1, 1, 48, 48, 48, generator=g), 1.5)[0, 0]
    streaks = _stripes(30.0, n=noise.shape[0])[0, 1]
    labels = ((streaks - 0.5) + 4.0 * (noise - noise.mean()) > 0).numpy().astype(np.uint8)
    hard = torch.nn.functional.one_hot(torch.from_numpy(labels).long(), 2)
    t = plane_tensors(hard.permute(3, 0, 1, 2)[None].float())
    a, b, ab = t[:, 0], t[:, 1], t[:, 2]
    disc = torch.sqrt((a - b) ** 2 + 4 * ab**2)
    ratio = ((a + b + disc) / (a + b - disc)).numpy()
    expected = orientation_anisotropy_planes(labels, n_phases=2)
    assert expected.min() > 1.5  # sheets: every plane sees lines, at its own strength
    # the validation also differentiates the first and last slices: a few % apart at 48^3
    assert ratio == pytest.approx(expected, rel=0.05)


def test_isotropy_term_sees_diagonal_streaks_and_not_isotropic_texture():
    diag, axis = _stripes(45.0), _stripes(0.0)
    g = torch.Generator().manual_seed(2)
    iso = smooth(torch.rand(2, 2, 64, 64, 64, generator=g), 1.0)
    # sheets are lines in all three planes (at 45 degrees: in the x slices at a diagonal,
    # in the other two along an axis); each plane's coherence is at most 1
    assert coherence(normalised_planes(diag)).tolist() == pytest.approx([1, 1, 1], abs=0.02)
    assert coherence(normalised_planes(axis)).tolist() == pytest.approx([0, 1, 1], abs=0.02)
    # three planes at each scale, each paying for its coherence above the tolerance
    expected = 3.0 * len(SCALES) * (1.0 - TOLERANCE) ** 2
    assert float(orientation_loss(diag, None)[0]) == pytest.approx(expected, abs=0.1)
    assert float(orientation_loss(iso, None)[0]) < 0.01


def test_isotropy_term_leaves_a_nearly_isotropic_generator_alone():
    # coherence under the tolerance: no loss and no gradient, so no reason to add ragged
    # isotropic texture (which lowers any normalised tensor's coherence)
    g = torch.Generator().manual_seed(6)
    x = smooth(torch.rand(2, 2, 64, 64, 64, generator=g), 1.0).requires_grad_(True)
    assert float(coherence(multiscale_planes(x.detach())).max()) < TOLERANCE
    loss, _ = orientation_loss(x, None)
    loss.backward()
    assert float(loss.detach()) == 0.0 and float(x.grad.abs().max()) == 0.0


def test_isotropy_term_sees_fine_sheets_that_smoothing_erases():
    # isotropic blobs with a faint texture of period 3 voxels along y only: what a
    # generator of 1-4 px needles did, per-axis surface area 0.10 / 0.17 / 0.11
    g = torch.Generator().manual_seed(5)
    blobs = smooth(torch.rand(1, 1, 60, 60, 60, generator=g), 2.0)
    blobs = (blobs - blobs.mean()) / blobs.std()
    y = torch.arange(blobs.shape[3]).float()
    sheets = torch.sin(2 * math.pi * y / 3.0).view(1, 1, 1, -1, 1)
    p1 = torch.sigmoid(2.0 * blobs + 1.5 * sheets)
    x = torch.cat([1 - p1, p1], dim=1)
    coarse, raw = coherence(multiscale_planes(x))
    assert SCALES == (2.0, 0.0)
    assert float(coarse.max()) < 0.25  # the Gaussian of 2 voxels keeps the blobs only
    # the raw scale sees the sheets in the two planes holding y, not in the one normal to it
    assert float(raw[0]) > 0.4 and float(raw[2]) > 0.4 and float(raw[1]) < 0.15


def test_isotropy_term_follows_the_systematic_direction_not_one_batch():
    g = torch.Generator().manual_seed(4)
    blobs = [smooth(torch.rand(1, 2, 46, 46, 46, generator=g), 1.0) for _ in range(30)]
    # an isotropic generator: every batch a little coherent, in its own direction
    hist = None
    for b in blobs:
        loss_iso, hist = orientation_loss(b, hist)
    one_batch = float(coherence(multiscale_planes(blobs[0])).pow(2).sum())
    assert float(coherence(hist).pow(2).sum()) < one_batch / 4
    # a streaky one: the same direction every batch, and the mean keeps it
    hist_s = None
    for b in blobs:
        loss_s, hist_s = orientation_loss(b + 0.3 * _stripes(45.0), hist_s)
    assert float(loss_s) > 20 * float(loss_iso)
    assert float(coherence(hist_s)[:, 2].min()) > 0.5  # the x slices hold the diagonal
    # the returned mean is what the next call mixes in, detached
    x = blobs[1].clone().requires_grad_(True)
    loss, mean = orientation_loss(x, hist_s, momentum=0.9)
    assert not mean.requires_grad
    assert mean == pytest.approx(0.9 * hist_s + 0.1 * multiscale_planes(blobs[1]), abs=1e-6)
    # a mean saved with other scales (one (3, 3) tensor) is not mixed in: it restarts
    fresh, fresh_mean = orientation_loss(blobs[1], torch.zeros(3, 3))
    assert fresh_mean == pytest.approx(multiscale_planes(blobs[1]), abs=1e-6)
    assert float(fresh) == pytest.approx(float(orientation_loss(blobs[1], None)[0]))
    excess = torch.relu(coherence(mean) - TOLERANCE)
    assert float(loss.detach()) == pytest.approx(float(excess.pow(2).sum()) / 0.1, rel=1e-5)


def test_isotropy_term_gradient_turns_streaks_towards_isotropy():
    g = torch.Generator().manual_seed(3)
    blobs = smooth(torch.rand(1, 2, 52, 52, 52, generator=g), 1.0)
    x = (0.2 * _stripes(45.0, n=46) + blobs).clone().requires_grad_(True)
    loss, hist = orientation_loss(x, None)
    loss.backward()
    with torch.no_grad():
        stepped = x - 1e-3 * x.grad / x.grad.abs().max()
    assert float(orientation_loss(stepped, None)[0]) < float(loss.detach())


def test_isotropy_term_is_in_the_loss_and_its_mean_resumes_exactly():
    from microlib.slicegan.presets import get_preset
    from microlib.train import SliceGANTrainer, make_training_set

    rng = np.random.default_rng(0)
    img = (ndimage.gaussian_filter(rng.random((96, 96)), 3) > 0.5).astype(np.uint8)
    p = get_preset("demo").replace(
        batch_size=4, d_batch_size=1, g_batch_size=2, orientation_weight=100.0
    )
    tset = make_training_set([img], "nphase", p.l, n_phases=2)
    tr = SliceGANTrainer(tset, p, seed=0)
    off = SliceGANTrainer(tset, p.replace(orientation_weight=0.0), seed=0)
    tr.step()
    off.step()
    # same seed, same batches: the generator losses differ by the term alone
    assert tr.read_log()["generator_loss"] != pytest.approx(off.read_log()["generator_loss"])
    assert tr._orient_mean is not None and off._orient_mean is None
    # the running mean is training state: saved, restored, and a resumed run goes on as
    # the uninterrupted one
    state = tr.state_dict()
    assert torch.equal(state["orient_mean"], tr._orient_mean)
    for _ in range(3):
        tr.step()
    again = SliceGANTrainer(tset, p, seed=0)
    again.load_state_dict(state)
    for _ in range(3):
        again.step()
    # bit for bit: the saved state is a copy, which the three later steps left alone
    assert torch.equal(again._orient_mean, tr._orient_mean)
    assert torch.equal(again.G.convs[0].weight, tr.G.convs[0].weight)
    assert not torch.equal(again._orient_mean, state["orient_mean"])
