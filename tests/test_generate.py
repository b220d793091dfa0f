"""Volume generation: size planning, tiled == untiled, streamed TIFF, true periodicity
(and the original trick's seam), legacy model directories and the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from microlib.cli import main
from microlib.errors import MicrolibError
from microlib.generate import (
    activation_bytes,
    choose_tile,
    fused_generator,
    generate_to_tif,
    load_generator,
    make_latent,
    noise_field,
    noise_grid,
    parse_periodic,
    plan_generation,
    synthesise,
)
from microlib.io import read_tif, read_tif_meta, write_json
from microlib.slicegan.networks import FusedGenerator, generator_state_for_original
from microlib.slicegan.params import ModelParams, save_weights, write_params_data
from microlib.slicegan.presets import PRESETS


def make_params(image_type="nphase", nc=3, preset="tiny", name="microstructure042", **kw):
    p = PRESETS[preset]
    return ModelParams(
        name=name,
        image_type=image_type,
        gk=list(p.gk),
        gs=list(p.gs),
        gp=kw.pop("gp", list(p.gp)),
        gf=p.gf(nc),
        dk=list(p.dk),
        ds=list(p.ds),
        dp=list(p.dp),
        df=p.df(nc),
        **{
            "lz": p.lz,
            "l": p.l,
            "g_output_stage": p.g_output_stage,
            "g_hidden_stage": p.g_hidden_stage,
            "g_output_noise": p.g_output_noise,
            **kw,
        },
    )


def make_net(params, seed=0):
    torch.manual_seed(seed)
    net = params.build_generator()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        if net.hidden_blur:
            # blurred random features are smooth and small: statistics measured on a batch
            # keep every layer's features varying once normalised (guessed ones would
            # drown them in the BatchNorm offsets and give a one-phase volume)
            net.train()
            for bn in net.bns:
                bn.momentum = None  # a plain average over the calibration batch
            net(torch.randn(2, params.nz, *[params.lz + 2] * 3, generator=g))
            for bn in net.bns:
                bn.momentum = 0.1
        for bn in net.bns:  # trained-looking BatchNorm statistics, so folding them matters
            n = bn.num_features
            if not net.hidden_blur:
                bn.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
                bn.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            bn.bias.copy_(torch.rand(n, generator=g) * 0.4 - 0.2)
        if net.output_stage in ("resize", "resize_trilinear"):
            # the smooth upsampled features would let one phase win everywhere at random
            # init, and a one-phase volume tests nothing: zero-mean kernels, or with the
            # blur's normalised features kernels centred over the phases (zero-mean ones
            # would leave logits so small that float rounding alone flips labels)
            w = net.convs[-1].weight
            phases = net.hidden_blur and net.nc > 1
            w -= w.mean(dim=0 if phases else (2, 3, 4), keepdim=True)
    return net.eval().requires_grad_(False)


def save_model(d, params, net, json_too=True):
    d.mkdir(parents=True, exist_ok=True)
    save_weights(d / f"{params.name}_Gen.pt", generator_state_for_original(net))
    write_params_data(d / f"{params.name}_params.data", params.original_layers())
    if json_too:
        write_json(d / f"{params.name}_params.json", params.to_json())


def assert_same_volume(a, b, kind="nphase", rate=1e-5):
    """Equal up to float rounding: tiles run the same maths on differently sized arrays, so
    the summation order (and hence the last float bit) may differ; a grey value can then
    round the other way, and an argmax flip where two phases' logits are within that
    rounding (a few 1e-6 after the blurred layers' sums) of each other."""
    assert a.shape == b.shape and a.dtype == b.dtype == np.uint8
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    if kind != "nphase":
        assert diff.max() <= 1
    assert (diff > 0).mean() < rate


# ----------------------------------------------------------------------------- planning


def test_plan_sizes_for_the_standard_generator():
    p = make_params(preset="microlib", nc=2)
    plan = plan_generation(p, 320)
    assert plan.latent == (12, 12, 12) and plan.size == (320, 320, 320) and not plan.notes
    plan = plan_generation(p, "300,320,640")
    assert plan.latent == (12, 12, 22) and plan.size == (300, 320, 640)
    assert plan.notes == [
        "z: 300 is not reachable exactly (sizes are 32*(lf-2): 288 at lf=11, "
        "320 at lf=12); generating 320 and cropping to 300"
    ]
    plan = plan_generation(p, 300, periodic="z")
    assert plan.size == (320, 300, 300) and plan.latent[0] == 12
    assert "periodic size must be a multiple of 32; generating 320 instead of 300" in plan.notes[0]


def test_parse_periodic():
    assert parse_periodic("z,x") == (True, False, True)
    assert parse_periodic("0,1,1") == (False, True, True)
    assert parse_periodic("all") == (True, True, True)
    assert parse_periodic(None) == (False, False, False)
    with pytest.raises(MicrolibError):
        parse_periodic("q")


# ----------------------------------------------------------------------------- tiles


@pytest.mark.parametrize("kind,nc", [("nphase", 3), ("grayscale", 1), ("colour", 3)])
def test_tiled_equals_untiled(kind, nc):
    params = make_params(kind, nc)
    net = make_net(params)
    size = (70, 50, 90)  # not reachable exactly: crops on every axis
    whole = synthesise(net, params, size, seed=3)
    assert whole.dtype == np.uint8
    assert whole.shape == size + ((3,) if kind == "colour" else ())
    if kind == "nphase":
        assert set(np.unique(whole)) <= {0, 1, 2} and len(np.unique(whole)) > 1
    for tile in (16, (32, 16, 48), 48):
        assert_same_volume(synthesise(net, params, size, seed=3, tile=tile), whole, kind)
    assert not np.array_equal(synthesise(net, params, size, seed=4), whole)


@pytest.mark.parametrize("kind,nc", [("nphase", 3), ("grayscale", 1)])
def test_resize_stage_tiled_equals_untiled(kind, nc):
    params = make_params(kind, nc, preset="demo")
    net = make_net(params)
    assert net.output_stage == "resize_trilinear"
    size = (70, 50, 90)
    whole = synthesise(net, params, size, seed=3)
    assert whole.shape == size
    if kind == "nphase":
        assert len(np.unique(whole)) > 1
    for tile in (16, (32, 16, 48), 48):
        assert_same_volume(synthesise(net, params, size, seed=3, tile=tile), whole, kind)
    # the upsampled hidden features count in the tile budget: a memory-sized tile fits it
    plan = plan_generation(params, size)
    trans = make_params(kind, nc, preset="demo", g_output_stage="transpose", g_output_noise=False)
    trans = make_net(trans)
    lat = [c + plan.geometry.halo for c in (5, 4, 6)]
    assert activation_bytes(net, lat) > 4 * activation_bytes(trans, lat)
    cells = choose_tile(net, plan, budget_bytes=3_000_000)
    assert cells != tuple(-(-n // 16) for n in size)
    assert_same_volume(
        synthesise(net, params, size, seed=3, tile=[16 * c for c in cells]), whole, kind
    )


def test_resize_stage_loads_from_params_json_only(tmp_path, capsys):
    params = make_params(preset="demo", voxel_size_um=2.0)
    net = make_net(params)
    save_model(tmp_path / "m", params, net)
    g, p = load_generator(tmp_path / "m")
    assert p == params and g.output_stage == "resize_trilinear"
    assert np.array_equal(synthesise(g, p, 40, seed=1), synthesise(net, params, 40, seed=1))
    # _params.data cannot describe the stage: without the json the load is refused
    save_model(tmp_path / "orig", params, net, json_too=False)
    with pytest.raises(MicrolibError, match="resize-convolution stage.*_params.json"):
        load_generator(tmp_path / "orig", image_type="nphase")
    out = tmp_path / "v.tif"
    args = ["generate", str(tmp_path / "orig"), "--size", "32", "--out", str(out)]
    assert main([*args, "--image-type", "nphase"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "resize-convolution stage" in err[0]


def test_tiles_chosen_from_a_memory_budget_and_streamed(tmp_path):
    params = make_params(voxel_size_um=0.5, phase_grey_values=[1.0, 2.0, 3.0])
    net = make_net(params)
    plan = plan_generation(params, 96)
    cells = choose_tile(net, plan, budget_bytes=2_000_000)
    assert cells[0] < 6  # split into Z slabs (and smaller) to fit the budget
    ref = synthesise(net, params, 96, seed=1)
    out = tmp_path / "v.tif"
    progress = []
    info = generate_to_tif(
        out,
        net,
        params,
        96,
        seed=1,
        max_memory_gb=2_000_000 / 2**30,
        progress=lambda d, t: progress.append((d, t)),
    )
    assert info["tiles"] > 1 and progress[-1] == (info["tiles"], info["tiles"])
    vol = read_tif(out)
    assert_same_volume(vol, ref)
    meta = read_tif_meta(out)
    assert meta["voxel_size_um"] == 0.5
    assert meta["info"]["id"] == "000042" and meta["info"]["data_type"] == "threephase"
    assert meta["info"]["n_phases"] == 3 and meta["info"]["phase_grey_values"] == [1.0, 2.0, 3.0]
    assert meta["info"]["generator"]["seed"] == 1


def test_colour_tif_is_zyx_rgb(tmp_path):
    params = make_params("colour", 3)
    net = make_net(params)
    out = tmp_path / "c.tif"
    generate_to_tif(out, net, params, (32, 48, 64), seed=0, tile=16)
    vol = read_tif(out)
    assert vol.shape == (32, 48, 64, 3)
    assert_same_volume(vol, synthesise(net, params, (32, 48, 64), seed=0), "colour")


# ----------------------------------------------------------------------------- periodicity


def _logits(net, z):
    with torch.inference_mode():
        return FusedGenerator(net)(z)[0]


@pytest.mark.parametrize("preset", ["tiny", "demo"])
def test_periodic_volume_has_no_seam(preset):
    """Tiling the periodic volume twice along z equals generating twice as long from the
    periodic latent: no seam, exactly (transposed and resize output stages)."""
    params = make_params(preset=preset)
    net = make_net(params)
    vol = synthesise(net, params, (64, 48, 48), seed=5, periodic="z")
    plan = plan_generation(params, (64, 48, 48), periodic="z")
    z = make_latent(plan, params.nz, 5)
    base = plan.latent[0] - plan.geometry.halo  # 4 latent cells per period (64 voxels)
    longer = z.index_select(2, torch.arange(2 * base + plan.geometry.halo) % base)
    wide = _logits(net, longer).argmax(0).numpy()[:128, :48, :48]
    assert_same_volume(np.concatenate([vol, vol], axis=0), wide.astype(np.uint8))
    # a non-periodic volume does have a seam
    flat = synthesise(net, params, (64, 48, 48), seed=5)
    assert not np.array_equal(np.concatenate([flat, flat])[60:68], wide[60:68])


def test_original_periodic_trick_is_periodic_before_its_crop():
    """What the original does: copy the last two latent planes to the front, generate,
    drop the last voxel. Without the drop the volume is exactly periodic; with it, a
    volume tiled twice misses one plane at the seam."""
    params = make_params()
    net = make_net(params)
    lf = 6
    z = torch.randn(1, params.nz, lf, 4, 4, generator=torch.Generator().manual_seed(2))
    z[:, :, :2] = z[:, :, -2:]
    one = _logits(net, z)  # 16 * (lf - 2) = 64 planes
    period = lf - 2
    ext = torch.cat([z[:, :, : 2 + period], z[:, :, 2:]], dim=2)  # one more period
    two = _logits(net, ext)
    assert torch.allclose(torch.cat([one, one], dim=1), two, atol=1e-5)
    cropped = one[:, :-1]  # the original's crop: 63 planes
    tiled = torch.cat([cropped, cropped], dim=1)
    assert not torch.allclose(tiled, two[:, : tiled.shape[1]], atol=1e-3)


# ----------------------------------------------------------------------------- loading + CLI


def test_load_generator_from_our_dir_and_an_original_dir(tmp_path):
    params = make_params()
    net = make_net(params)
    save_model(tmp_path / "ours", params, net)
    g, p = load_generator(tmp_path / "ours")
    assert p == params and not g.training
    ref = synthesise(net, params, 40, seed=0)
    assert np.array_equal(synthesise(g, p, 40, seed=0), ref)
    save_model(tmp_path / "orig", params, net, json_too=False)
    with pytest.raises(MicrolibError, match="does not record the image type"):
        load_generator(tmp_path / "orig")
    g2, p2 = load_generator(tmp_path / "orig", image_type="nphase")
    assert np.array_equal(synthesise(g2, p2, 40, seed=0), ref)


def test_generate_cli(tmp_path, capsys, caplog):
    params = make_params(voxel_size_um=1.5)
    net = make_net(params)
    save_model(tmp_path / "m", params, net)
    out = tmp_path / "v.tif"
    with caplog.at_level("INFO"):
        rc = main(
            [
                "generate",
                str(tmp_path / "m"),
                "--size",
                "40,32,48",
                "--out",
                str(out),
                "--seed",
                "2",
                "--periodic",
                "y",
                "--tile",
                "16",
                "--threads",
                "1",
            ]
        )
    assert rc == 0
    assert "z: 40 is not reachable exactly" in caplog.text
    vol = read_tif(out)
    assert vol.shape == (40, 32, 48)
    assert_same_volume(vol, synthesise(net, params, (40, 32, 48), seed=2, periodic="y"))
    assert read_tif_meta(out)["voxel_size_um"] == 1.5
    rc = main(["generate", str(tmp_path / "nowhere"), "--size", "32", "--out", str(out)])
    assert rc == 2 and "does not exist" in capsys.readouterr().err


def test_generate_removes_its_stale_part_files(tmp_path):
    params = make_params()
    save_model(tmp_path / "m", params, make_net(params))
    out = tmp_path / "vols" / "v.tif"
    out.parent.mkdir()
    stale = out.parent / ".v.tif.k3j_x9a1.tif.part"  # as a killed atomic write leaves it
    stale.write_bytes(b"\0" * 4096)
    other = out.parent / ".w.tif.abcdefgh.tif.part"  # another output's: not ours to remove
    other.write_bytes(b"x")
    rc = main(["generate", str(tmp_path / "m"), "--size", "32", "--out", str(out)])
    assert rc == 0 and out.is_file()
    assert not stale.exists() and other.exists()
    assert sorted(p.name for p in out.parent.iterdir()) == [other.name, "v.tif"]


def test_empty_generator_file_is_one_line(tmp_path, capsys):
    params = make_params()
    save_model(tmp_path / "m", params, make_net(params))
    (tmp_path / "m" / f"{params.name}_Gen.pt").write_bytes(b"")
    with pytest.raises(MicrolibError, match=r"_Gen.pt: empty or truncated checkpoint"):
        load_generator(tmp_path / "m")
    rc = main(["generate", str(tmp_path / "m"), "--size", "32", "--out", str(tmp_path / "v.tif")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert err[0].endswith("microstructure042_Gen.pt: empty or truncated checkpoint")


def test_folded_generator_is_built_once_per_weights():
    params = make_params()
    net = make_net(params)
    fused = fused_generator(net)
    assert fused_generator(net) is fused
    assert "_microlib_fused" not in str(list(net.state_dict()))
    z = torch.randn(1, params.nz, 5, 5, 5, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(fused(z), net(z, activate=False), atol=1e-4)
        net.load_state_dict(make_net(params, seed=5).state_dict())  # new weights, same storage
        refolded = fused_generator(net)
        assert refolded is not fused
        assert torch.allclose(refolded(z), net(z, activate=False), atol=1e-4)


@pytest.mark.gpu
def test_cuda_generation_matches_cpu():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    params = make_params(preset="microlib", nc=3)
    net = make_net(params)
    cpu = synthesise(net, params, 96, seed=1)
    gpu_net = make_net(params).to("cuda")
    gpu = synthesise(gpu_net, params, 96, seed=1, device="cuda")
    tiled = synthesise(gpu_net, params, 96, seed=1, device="cuda", tile=32)
    # TF32 convolutions: labels may flip where two phases are nearly tied
    assert (cpu != gpu).mean() < 0.01
    assert (gpu != tiled).mean() < 0.01


def test_historical_generator_breaking_a_rule(tmp_path):
    """Like SliceGAN's early 'interface' generator: a k4 s1 p0 first layer (p < k - s), so
    borders depend on the latent edge: loadable on request, generated in one pass, never
    tiled or made periodic."""
    params = ModelParams(
        name="early",
        image_type="nphase",
        gk=[4, 4, 4],
        gs=[1, 2, 2],
        gp=[0, 2, 3],
        gf=[8, 16, 8, 2],
        dk=[4, 4],
        ds=[2, 2],
        dp=[1, 0],
        df=[2, 8, 1],
        lz=1,
        l=8,
    )
    torch.manual_seed(0)
    net = params.build_generator(check_rules=False).eval()
    save_model(tmp_path, params, net)
    with pytest.raises(
        MicrolibError,
        match=r"early: generator layer 0 violates rule "
        r"'p >= k - s'.*--no-rule-check",
    ):
        load_generator(tmp_path)
    g, p = load_generator(tmp_path, check_rules=False)
    plan = plan_generation(p, 18)  # sizes 4 lf + 4: the smallest latent reaching 18 is 4
    assert plan.latent == (4, 4, 4) and plan.generated == (20, 20, 20)
    vol = synthesise(g, p, (20, 14, 9), seed=0, tile=4)  # the tile request is ignored
    z = make_latent(plan_generation(p, (20, 14, 9)), p.nz, 0)
    ref = _logits(g, z).argmax(0).numpy()[:20, :14, :9].astype(np.uint8)
    assert_same_volume(vol, ref)
    with pytest.raises(MicrolibError, match="periodic generation is not possible"):
        synthesise(g, p, 20, periodic="x")


# ----------------------------------------------------------------------------- output noise


def _noisy_net(kind="nphase", nc=3, weight=0.8):
    params = make_params(kind, nc, preset="demo", g_output_noise=True)
    net = make_net(params)
    with torch.no_grad():
        net.noise_weight.fill_(weight)
    return params, net


def test_noise_field_cuts_are_the_same_numbers_wherever_they_start():
    whole = noise_field(7, (0, 0, 0), (40, 36, 50))
    assert whole.shape == (1, 1, 40, 36, 50) and abs(float(whole.std()) - 1) < 0.05
    cut = noise_field(7, (5, 17, 33), (30, 19, 17))
    assert torch.equal(cut, whole[:, :, 5:35, 17:36, 33:50])
    assert not torch.equal(noise_field(8, (0, 0, 0), (40, 36, 50)), whole)
    # a periodic axis repeats every period voxels, from any start
    per = noise_field(7, (0, 0, 0), (96, 20, 20), period=(32, None, None))
    assert torch.equal(per[:, :, :32], per[:, :, 32:64])
    assert torch.equal(noise_field(7, (40, 0, 0), (10, 20, 20), (32, None, None)), per[:, :, 8:18])
    with pytest.raises(MicrolibError, match="multiple of 16"):
        noise_field(7, (0, 0, 0), (8, 8, 8), period=(24, None, None))


@pytest.mark.parametrize("kind,nc", [("nphase", 3), ("grayscale", 1)])
def test_output_noise_is_one_field_across_tiles_and_follows_the_seed(kind, nc):
    params, net = _noisy_net(kind, nc)
    size = (70, 50, 90)
    whole = synthesise(net, params, size, seed=3)
    for tile in (16, (32, 16, 48)):
        # strong noise makes larger sums, so rounding moves a few more grey levels
        tiled = synthesise(net, params, size, seed=3, tile=tile)
        assert_same_volume(tiled, whole, kind, rate=1e-4)
    # the noise matters (same latent, weights at zero: another volume) ...
    with torch.no_grad():
        net.noise_weight.zero_()
    quiet = synthesise(net, params, size, seed=3)
    assert (quiet != whole).mean() > 0.01
    # ... and at zero weight the generator is the same network without noise
    plain = params.build_generator()
    plain.noise_weight = None
    state = {k: v for k, v in net.state_dict().items() if k != "noise_weight"}
    plain.load_state_dict(state)
    assert_same_volume(synthesise(plain.eval(), params, size, seed=3), quiet, kind)


def test_output_noise_keeps_periodic_volumes_seamless():
    """The periodic volume twice along z equals one generation, twice as long, from the
    periodic latent and the noise field repeating with the same period: no seam."""
    params, net = _noisy_net()
    vol = synthesise(net, params, (64, 48, 48), seed=5, periodic="z")
    plan = plan_generation(params, (64, 48, 48), periodic="z")
    z = make_latent(plan, params.nz, 5)
    base = plan.latent[0] - plan.geometry.halo  # 4 latent cells, 64 voxels per period
    longer = z.index_select(2, torch.arange(2 * base + plan.geometry.halo) % base)
    grid = [noise_grid(params.gk, params.gs, params.gp, m) for m in longer.shape[2:]]
    noise = noise_field(5, (0, 0, 0), grid, period=(64, None, None))
    with torch.inference_mode():
        wide = FusedGenerator(net)(longer, noise)[0].argmax(0).numpy()[:128, :48, :48]
    assert_same_volume(np.concatenate([vol, vol], axis=0), wide.astype(np.uint8))
    # without the period the noise differs in the second period: a seam
    free = noise_field(5, (0, 0, 0), grid)
    with torch.inference_mode():
        seam = FusedGenerator(net)(longer, free)[0].argmax(0).numpy()[:128, :48, :48]
    assert (seam[64:] != vol).mean() > 0.01
