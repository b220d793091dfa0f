"""SliceGAN networks: the paper's transposed-convolution rules, shapes, original state-dict
layout, BatchNorm folding and the slab-locality that tiled generation relies on."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from microlib.errors import MicrolibError
from microlib.slicegan.networks import (
    Critic,
    FusedGenerator,
    Generator,
    check_transpose_conv_rules,
    critic_output_size,
    generator_geometry,
    generator_output_size,
    generator_state_for_original,
    load_critic_state,
    load_generator_state,
)
from microlib.slicegan.presets import PRESETS, get_preset
from microlib.slicegan.stages import blur_valid


class OriginalLayoutGenerator(nn.Module):
    """The module layout of the original SliceGAN generator (five convs, five BNs with the
    last one unused), to check that our ``_Gen.pt`` loads there with ``strict=True``."""

    def __init__(self, gk, gs, gp, gf):
        super().__init__()
        self.convs = nn.ModuleList()
        self.bns = nn.ModuleList()
        for i, (k, s, p) in enumerate(zip(gk, gs, gp, strict=True)):
            self.convs.append(nn.ConvTranspose3d(gf[i], gf[i + 1], k, s, p, bias=False))
            self.bns.append(nn.BatchNorm3d(gf[i + 1]))

    def forward(self, x):
        for conv, bn in zip(self.convs[:-1], self.bns[:-1], strict=True):
            x = torch.relu_(bn(conv(x)))
        return torch.softmax(self.convs[-1](x), 1)


def _net(preset="tiny", nc=3, final="softmax", seed=0, stage=None):
    p = get_preset(preset)
    torch.manual_seed(seed)
    stage = stage or p.g_output_stage
    return Generator(
        p.gk, p.gs, p.gp, p.gf(nc), final, output_stage=stage, hidden_stage=p.g_hidden_stage
    )


def _randomise_bn(net, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bn in net.bns:
            n = bn.num_features
            bn.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
            bn.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            bn.weight.copy_(torch.rand(n, generator=g) + 0.5)
            bn.bias.copy_(torch.rand(n, generator=g) - 0.5)


# ----------------------------------------------------------------------------- rules


@pytest.mark.parametrize(
    "k,s,p,rule",
    [
        (4, 4, 2, "s < k"),
        (2, 3, 2, "s < k"),
        (4, 3, 2, "k mod s = 0"),
        (6, 4, 2, "k mod s = 0"),
        (4, 2, 1, "p >= k - s"),
        (6, 2, 3, "p >= k - s"),
    ],
)
def test_rule_violations_are_named(k, s, p, rule):
    with pytest.raises(MicrolibError) as exc:
        check_transpose_conv_rules(k, s, p, layer=3)
    assert rule in str(exc.value)
    assert "layer 3" in str(exc.value)
    assert f"k={k}, s={s}, p={p}" in str(exc.value)


@pytest.mark.parametrize("k,s,p", [(4, 2, 2), (6, 3, 3), (6, 2, 4), (4, 2, 3)])
def test_paper_practical_sets_pass(k, s, p):
    check_transpose_conv_rules(k, s, p)


def test_generator_construction_checks_rules():
    with pytest.raises(MicrolibError, match=r"generator layer 1 violates rule 'k mod s = 0'"):
        Generator([4, 4, 4], [2, 3, 2], [2, 2, 2], [8, 8, 8, 2])
    with pytest.raises(MicrolibError, match="layer lists disagree"):
        Generator([4, 4], [2, 2], [2, 2], [8, 2])
    # a historical generator that breaks a rule can still be built on request
    net = Generator([4, 4], [1, 2], [0, 3], [4, 4, 2], check_rules=False)
    assert len(net.convs) == 2


# ----------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("name", ["microlib", "table1"])
def test_standard_output_size_formula(name):
    p = PRESETS[name]
    for lf in range(3, 16):
        assert generator_output_size(lf, p.gk, p.gs, p.gp) == 32 * (lf - 2)
    assert generator_output_size(12, p.gk, p.gs, p.gp) == 320
    assert generator_output_size(p.lz, p.gk, p.gs, p.gp) == p.l == 64
    assert critic_output_size(64, p.dk, p.ds, p.dp) == 1
    g = generator_geometry(p.gk, p.gs, p.gp)
    assert (g.stride, g.trim, g.halo, g.min_latent, g.exact_tiles) == (32, 64, 2, 3, True)


def test_tiny_output_size_formula():
    p = PRESETS["tiny"]
    assert [generator_output_size(lf, p.gk, p.gs, p.gp) for lf in (3, 4, 5, 8)] == [16, 32, 48, 96]
    g = generator_geometry(p.gk, p.gs, p.gp)
    assert (g.stride, g.trim, g.halo) == (16, 32, 2)


@pytest.mark.parametrize("lf", [3, 4, 5])
def test_microlib_generator_shapes(lf):
    net = _net("microlib", nc=2)
    assert [c.out_channels for c in net.convs] == [512, 256, 128, 64, 2]
    assert len(net.bns) == 4  # no dead BatchNorm after the last convolution
    with torch.no_grad():
        out = net(torch.randn(1, 16, lf, lf, lf))
    n = 32 * (lf - 2)
    assert out.shape == (1, 2, n, n, n)
    assert torch.allclose(out.sum(1), torch.ones(1, n, n, n), atol=1e-5)


def test_non_cubic_latent_and_tanh_output():
    net = _net("tiny", nc=1, final="tanh").eval()
    with torch.no_grad():
        out = net(torch.randn(2, 16, 3, 4, 6))
    assert out.shape == (2, 1, 16, 32, 64)
    assert float(out.min()) > 0.0 and float(out.max()) < 1.0


def test_critic_scores_one_value_per_slice():
    p = PRESETS["microlib"]
    d = Critic(p.dk, p.ds, p.dp, p.df(3))
    assert d(torch.rand(5, 3, 64, 64)).shape == (5, 1, 1, 1)
    t = PRESETS["tiny"]
    assert Critic(t.dk, t.ds, t.dp, t.df(2))(torch.rand(4, 2, 32, 32)).shape == (4, 1, 1, 1)


# ----------------------------------------------------------------------------- state dicts


def test_gen_state_dict_loads_strictly_in_original_layout():
    p = PRESETS["tiny"]
    net = _net("tiny", nc=3)
    _randomise_bn(net)
    sd = generator_state_for_original(net)
    last = len(net.convs) - 1
    assert sd[f"bns.{last}.weight"].tolist() == [1.0, 1.0, 1.0]
    assert sd[f"bns.{last}.running_var"].tolist() == [1.0, 1.0, 1.0]
    orig = OriginalLayoutGenerator(p.gk, p.gs, p.gp, p.gf(3))
    orig.load_state_dict(sd, strict=True)  # what the original scripts do
    z = torch.randn(1, 16, 4, 4, 4)
    with torch.no_grad():
        assert torch.allclose(orig.eval()(z), net.eval()(z), atol=1e-6)
    # and back: drop the identity BN, accept a DataParallel prefix
    again = _net("tiny", nc=3, seed=5)
    load_generator_state(again, {f"module.{k}": v for k, v in orig.state_dict().items()})
    with torch.no_grad():
        assert torch.equal(again.eval()(z), net(z))


def test_wrong_weights_are_refused_with_a_clear_error():
    net = _net("tiny", nc=3)
    other = _net("tiny", nc=2)
    with pytest.raises(MicrolibError, match="convs.3.weight has shape"):
        load_generator_state(net, generator_state_for_original(other), entry="m1")
    sd = generator_state_for_original(net)
    sd.pop("convs.0.weight")
    with pytest.raises(MicrolibError, match="missing"):
        load_generator_state(net, sd)


def test_critic_accepts_dataparallel_prefix():
    t = PRESETS["tiny"]
    a, b = Critic(t.dk, t.ds, t.dp, t.df(2)), Critic(t.dk, t.ds, t.dp, t.df(2))
    assert set(a.state_dict()) == {f"convs.{i}.weight" for i in range(4)}
    load_critic_state(b, {f"module.{k}": v for k, v in a.state_dict().items()})
    x = torch.rand(3, 2, 32, 32)
    assert torch.equal(a(x), b(x))


# ----------------------------------------------------------------------------- inference


def test_fused_generator_matches_eval_generator():
    net = _net("tiny", nc=3).eval()
    _randomise_bn(net)
    z = torch.randn(1, 16, 5, 4, 6)
    with torch.no_grad():
        ref = net(z, activate=False)
        fused = FusedGenerator(net)(z)
    assert fused.shape == ref.shape
    assert torch.allclose(fused, ref, atol=1e-4, rtol=1e-4)


def test_latent_slab_gives_exactly_the_global_output():
    """p >= k - s: a latent slab [a, a+m) yields the global output [32a, 32a + 32(m-2))."""
    net = _net("microlib", nc=2).eval()
    _randomise_bn(net)
    z = torch.randn(1, 16, 7, 3, 3)
    with torch.no_grad():
        whole = net(z, activate=False)
        for a, m in [(0, 3), (2, 3), (1, 4), (3, 4)]:
            part = net(z[:, :, a : a + m], activate=False)
            assert part.shape[2] == 32 * (m - 2)
            ref = whole[:, :, 32 * a : 32 * a + 32 * (m - 2)]
            assert torch.allclose(part, ref, atol=1e-5), (a, m)


# ----------------------------------------------------------------------------- resize stage


@pytest.mark.parametrize("preset", ["demo", "tiny", "microlib"])
def test_resize_stage_makes_the_transposed_stage_sizes(preset):
    trans, resize = _net(preset, stage="transpose"), _net(preset, stage="resize")
    assert isinstance(resize.convs[-1], nn.Conv3d)
    assert resize.convs[-1].weight.shape == (3, resize.gf[-2], 3, 3, 3)
    # same keys (convs.{i}, bns.{i}): only the last weight's shape differs
    assert set(resize.state_dict()) == set(trans.state_dict())
    lats = {"tiny": [(3, 3, 3), (4, 5, 3), (6, 4, 7)], "demo": [(5, 5, 5), (6, 7, 5), (8, 6, 9)]}
    lats = lats.get(preset, [(3, 4, 3)])
    with torch.no_grad():
        for lat in lats:
            z = torch.randn(1, resize.nz, *lat)
            a, b = trans.eval()(z), resize.eval()(z)
            assert a.shape == b.shape
            assert list(b.shape[2:]) == [resize.output_size(n) for n in lat]
            assert torch.allclose(b.sum(1), torch.ones_like(b[:, 0]), atol=1e-5)


def test_resize_stage_needs_a_2n_minus_4_last_entry():
    t = get_preset("tiny")
    with pytest.raises(MicrolibError, match="k - 2p = -2"):
        Generator(t.gk, t.gs, (2, 2, 2, 2), t.gf(2), output_stage="resize", check_rules=False)
    with pytest.raises(MicrolibError, match="unknown generator output stage 'nearest'"):
        Generator(t.gk, t.gs, t.gp, t.gf(2), output_stage="nearest")


def test_resize_stage_folds_and_tiles_exactly():
    """BN folding leaves the resize convolution as it is, and a latent slab [a, a+m) still
    yields exactly the global output [16a, 16a + 16(m-2)) (same geometry as the transposed
    stage): the wider receptive field of the last stage stays inside the slab."""
    net = _net("demo", nc=3).eval()
    _randomise_bn(net)
    p = get_preset("demo")
    geo = generator_geometry(p.gk, p.gs, p.gp)
    assert (geo.stride, geo.trim, geo.halo, geo.exact_tiles) == (16, 32, 2, True)
    fused = FusedGenerator(net)
    assert fused.output_stage == "resize_trilinear" and isinstance(fused.convs[-1], nn.Conv3d)
    z = torch.randn(1, 16, 12, 5, 6)
    with torch.no_grad():
        whole = net(z, activate=False)
        assert torch.allclose(fused(z), whole, atol=1e-5)
        for a, m in [(0, 5), (1, 5), (2, 6), (3, 7), (7, 5)]:
            part = net(z[:, :, a : a + m], activate=False)
            assert part.shape[2] == geo.size(m)
            assert torch.allclose(part, whole[:, :, 16 * a : 16 * a + geo.size(m)], atol=1e-5)


@pytest.mark.parametrize("final", ["softmax", "tanh"])
def test_trilinear_resize_stage_changes_grey_outputs_only(final):
    """``resize_trilinear`` is ``resize`` for phase outputs; for grey it upsamples
    trilinearly, and a latent slab still yields exactly the global output."""
    near = _net("demo", nc=1 if final == "tanh" else 3, final=final, stage="resize").eval()
    tri = _net("demo", nc=1 if final == "tanh" else 3, final=final, stage="resize_trilinear")
    tri.eval()
    _randomise_bn(near)
    _randomise_bn(tri)
    z = torch.randn(1, 16, 8, 5, 6)
    with torch.no_grad():
        a, b = near(z, activate=False), tri(z, activate=False)
        assert a.shape == b.shape
        assert torch.allclose(a, b) == (final == "softmax")
        for s, m in [(0, 5), (1, 6), (3, 5)]:
            part = tri(z[:, :, s : s + m], activate=False)
            assert torch.allclose(part, b[:, :, 16 * s : 16 * s + 16 * (m - 2)], atol=1e-5)


def test_resize_weights_in_a_transposed_net_are_named():
    """What loading a resize-stage _Gen.pt with only the original _params.data comes to."""
    resize = _net("demo", nc=3)
    trans = _net("demo", nc=3, stage="transpose")
    sd = generator_state_for_original(resize)
    with pytest.raises(MicrolibError, match="resize-convolution stage.*_params.json"):
        load_generator_state(trans, sd, entry="m1")
    again = _net("demo", nc=3, seed=4)
    load_generator_state(again, sd)
    z = torch.randn(1, 16, 5, 5, 5)
    with torch.no_grad():
        assert torch.equal(again.eval()(z), resize.eval()(z))


# --------------------------------------------------------------------------- hidden blur

_BLUR_LISTS = ((4, 4, 4, 4), (2, 2, 2, 2), (3, 3, 3, 3))


def _blur_net(nc=3, final="softmax", seed=0):
    gk, gs, gp = _BLUR_LISTS
    torch.manual_seed(seed)
    return Generator(
        gk, gs, gp, [16, 24, 16, 8, nc], final, output_stage="resize_trilinear", hidden_stage="blur"
    )


def test_blur_removes_a_voxel_parity_pattern_and_keeps_constants():
    """A pattern alternating voxel by voxel along any axis, the one a stride-2 transposed
    convolution can paint, is removed exactly; a constant field is kept as it is."""
    idx = torch.arange(12)
    for axis in range(3):
        shape = [1, 1, 1, 1, 1]
        shape[2 + axis] = 12
        parity = ((-1.0) ** idx).reshape(shape).expand(1, 2, 12, 12, 12)
        out = blur_valid(parity.clone())
        assert out.shape == (1, 2, 10, 10, 10)
        assert out.abs().max() < 1e-6
    const = torch.full((1, 3, 7, 8, 9), 2.5)
    assert torch.allclose(blur_valid(const), torch.full((1, 3, 5, 6, 7), 2.5))
    cl = torch.randn(1, 4, 9, 9, 9).to(memory_format=torch.channels_last_3d)
    assert blur_valid(cl).is_contiguous(memory_format=torch.channels_last_3d)


def test_blurred_hidden_layers_keep_the_layer_sizes_fold_and_tile_exactly():
    """The hidden (k4 s2 p3) entries give 2n - 4 voxels as listed; BatchNorm folds through
    the blur; a latent slab [a, a+m) yields exactly the global output [16a, 16(a+m) - 60)."""
    gk, gs, gp = _BLUR_LISTS
    net = _blur_net().eval()
    _randomise_bn(net)
    assert [c.padding[0] for c in net.convs[:-1]] == [2, 2, 2]
    geo = generator_geometry(gk, gs, gp)
    assert (geo.stride, geo.trim, geo.halo, geo.exact_tiles) == (16, 60, 4, True)
    z = torch.randn(1, 16, 11, 6, 7)
    with torch.no_grad():
        whole = net(z, activate=False)
        assert whole.shape[2:] == tuple(geo.size(m) for m in z.shape[2:])
        assert torch.allclose(FusedGenerator(net)(z), whole, atol=1e-5)
        for a, m in [(0, 5), (1, 6), (3, 8), (6, 5)]:
            part = net(z[:, :, a : a + m], activate=False)
            assert part.shape[2] == geo.size(m)
            assert torch.allclose(part, whole[:, :, 16 * a : 16 * a + geo.size(m)], atol=1e-5)
    # the same weights without the blur are a different network
    plain = Generator(gk, gs, (2, 2, 2, 3), net.gf, output_stage="resize_trilinear").eval()
    plain.load_state_dict(net.state_dict())
    with torch.no_grad():
        assert plain(z, activate=False).shape != whole.shape


def test_blurred_hidden_layers_need_the_padding_and_a_known_name():
    t = get_preset("tiny")
    with pytest.raises(
        MicrolibError, match=r"layer 0: a blurred hidden layer needs p >= k - s \+ 1"
    ):
        Generator(t.gk, t.gs, t.gp, t.gf(2), hidden_stage="blur")
    with pytest.raises(MicrolibError, match="unknown generator hidden stage 'smooth'"):
        Generator(t.gk, t.gs, t.gp, t.gf(2), hidden_stage="smooth")
