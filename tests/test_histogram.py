"""The generator's value-distribution term: quantile targets, the loss and its gradient,
and how the trainer adds it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from microlib.errors import MicrolibError
from microlib.slicegan.presets import get_preset
from microlib.train import SliceGANTrainer, make_training_set
from microlib.train.histogram import pixel_rows, quantile_loss, quantile_targets

DEMO = get_preset("demo")
# the demo's networks with small batches, the term off for every image type
SMALL = DEMO.replace(
    batch_size=4,
    d_batch_size=1,
    g_batch_size=2,
    grey={k: v for k, v in DEMO.grey.items() if k != "histogram_weight"},
)


def test_the_demo_preset_weights_the_term_for_grey_and_colour_only():
    assert DEMO.for_image_type("nphase").histogram_weight == 0
    assert DEMO.for_image_type("grayscale").histogram_weight > 0
    assert DEMO.for_image_type("colour").histogram_weight > 0


def one_hot(labels: torch.Tensor, nc: int) -> torch.Tensor:
    """``(B, ...)`` labels -> ``(B, nc, ...)`` float one-hot."""
    return torch.nn.functional.one_hot(labels.long(), nc).movedim(-1, 1).float()


def test_nphase_targets_split_at_the_phase_fraction():
    img = torch.zeros(1, 100, 100, dtype=torch.long)
    img[:, :30] = 1  # 30 % phase 1
    t = quantile_targets([one_hot(img, 2)], 1000)
    assert t.shape == (2, 1000)
    assert torch.equal(t[1], (torch.arange(1000) >= 700).float())
    assert torch.equal(t[0], (torch.arange(1000) >= 300).float())


@pytest.mark.parametrize("fake_fraction", [0.3, 0.42, 0.1])
def test_loss_of_a_one_hot_volume_is_its_fraction_error(fake_fraction):
    img = (torch.rand(1, 200, 200, generator=torch.Generator().manual_seed(0)) < 0.3).long()
    ref = img.float().mean().item()
    n = 2 * 16**3
    t = quantile_targets([one_hot(img, 2)], n)
    labels = torch.zeros(n, dtype=torch.long)
    labels[: round(fake_fraction * n)] = 1
    fake = one_hot(labels[torch.randperm(n)].view(2, 16, 16, 16), 2)
    assert quantile_loss(fake, t).item() == pytest.approx(abs(fake_fraction - ref), abs=2e-3)


def test_grey_loss_is_near_zero_for_the_same_distribution_and_the_shift_otherwise():
    g = torch.Generator().manual_seed(1)
    ref = torch.rand(1, 1, 300, 300, generator=g) * 0.5
    n = 4 * 20**3
    t = quantile_targets([ref], n)
    same = torch.rand(4, 1, 20, 20, 20, generator=g) * 0.5
    assert quantile_loss(same, t).item() < 0.01
    assert quantile_loss(same + 0.2, t).item() == pytest.approx(0.2, abs=0.01)


def test_descending_the_loss_moves_a_softmax_volume_to_the_image_fraction():
    img = (torch.rand(1, 128, 128, generator=torch.Generator().manual_seed(2)) < 0.25).long()
    target_vf = img.float().mean().item()
    t = quantile_targets([one_hot(img, 2)], 8**3)
    # varied start values, as a generator's are (ties would rank arbitrarily per channel)
    logits = torch.randn(1, 2, 8, 8, 8, generator=torch.Generator().manual_seed(3))
    logits.requires_grad_(True)
    opt = torch.optim.Adam([logits], lr=0.1)
    for _ in range(200):
        opt.zero_grad()
        quantile_loss(torch.softmax(logits, 1), t).backward()
        opt.step()
    vf = (logits.argmax(1) == 1).float().mean().item()
    assert vf == pytest.approx(target_vf, abs=0.02)
    assert quantile_loss(torch.softmax(logits, 1), t).item() < 0.05


def test_pixel_rows_subsample_large_images_with_a_fixed_seed():
    ramp = torch.arange(5000, dtype=torch.float32).view(50, 100)
    rows = pixel_rows(ramp, colour=False, limit=1000)
    assert rows.shape == (1, 1, 1000)
    assert torch.equal(rows, pixel_rows(ramp, colour=False, limit=1000))  # same draw
    assert len(torch.unique(rows)) == 1000  # without replacement
    t = quantile_targets([rows.unsqueeze(1)], 11)
    assert torch.allclose(t[0] / 5000, (torch.arange(11) + 0.5) / 11, atol=0.05)
    rgb = torch.arange(60, dtype=torch.uint8).view(4, 5, 3)
    assert torch.equal(pixel_rows(rgb, colour=True)[0, 0], rgb.reshape(-1, 3))


def _blobs(shape, seed=0):
    from scipy import ndimage

    f = ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal(shape), 3)
    return np.digitize(f, np.quantile(f, [0.35, 0.85])).astype(np.uint8)


@pytest.mark.parametrize("kind", ["nphase", "grayscale", "colour"])
def test_trainer_adds_the_weighted_term_to_the_generator_update(kind):
    img = _blobs((64, 64))
    if kind != "nphase":
        img = (img * 100).astype(np.uint8)
        if kind == "colour":
            img = np.stack([img, 255 - img, img // 2], axis=-1)
    ts = make_training_set([img], kind, SMALL.for_image_type(kind).l)
    plain = SliceGANTrainer(ts, SMALL, seed=3)
    weighted = SliceGANTrainer(ts, SMALL.replace(histogram_weight=5.0), seed=3)
    p = weighted.preset
    assert weighted._hist_targets.shape == (ts.nc, p.g_batch_size * p.l**3)
    assert plain._hist_targets is None
    plain.step()
    weighted.step()
    # same critic steps and the same fake volume: the generator losses differ by the term
    lp, lw = plain.read_log(), weighted.read_log()
    assert lw["critic_loss"] == pytest.approx(lp["critic_loss"], rel=1e-6)
    assert lw["generator_loss"] - lp["generator_loss"] > 1e-3
    g_plain = torch.cat([q.flatten() for q in plain.G.parameters()])
    g_weighted = torch.cat([q.flatten() for q in weighted.G.parameters()])
    assert not torch.equal(g_plain, g_weighted)


def test_a_state_saved_before_the_term_existed_resumes_and_a_changed_weight_does_not():
    ts = make_training_set([_blobs((48, 48))], "nphase", SMALL.l)
    state = SliceGANTrainer(ts, SMALL, seed=4).state_dict()
    cfg = json.loads(state["config"])
    del cfg["preset"]["histogram_weight"]  # as written by earlier versions
    state["config"] = json.dumps(cfg, sort_keys=True)
    SliceGANTrainer(ts, SMALL, seed=4).load_state_dict(state)
    with pytest.raises(MicrolibError, match="histogram_weight"):
        SliceGANTrainer(ts, SMALL.replace(histogram_weight=1.0), seed=4).load_state_dict(state)
