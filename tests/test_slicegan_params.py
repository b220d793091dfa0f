"""Model files: the original ``_params.data`` pickle (round trip, real files, malicious
pickles refused), our ``_params.json`` and safe weight loading."""

from __future__ import annotations

import dataclasses
import os
import pickle
from pathlib import Path

import pytest
import torch

from microlib.errors import MicrolibError
from microlib.io import write_json
from microlib.slicegan.params import (
    ModelParams,
    dumps_params_data,
    load_model_params,
    load_weights,
    loads_params_data,
    read_params_data,
    save_weights,
    write_params_data,
)
from microlib.slicegan.presets import PRESETS

ML_TWOPHASE = [
    [4] * 5,
    [2] * 5,
    [2, 64, 128, 256, 512, 1],
    [1, 1, 1, 1, 0],
    [4] * 5,
    [2] * 5,
    [16, 512, 256, 128, 64, 2],
    [2, 2, 2, 2, 3],
]


# the demo preset's generator fields for grey and colour images (the rest are training's)
GREY_DEMO = {
    k: (list(v) if isinstance(v, tuple) else v)
    for k, v in PRESETS["demo"].grey.items()
    if k in {f.name for f in dataclasses.fields(ModelParams)}
}


def _params(name="microstructure237", image_type="nphase", nc=3, preset="tiny", **kw):
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


def test_params_data_round_trip(tmp_path):
    path = tmp_path / "m_params.data"
    write_params_data(path, ML_TWOPHASE)
    assert read_params_data(path) == ML_TWOPHASE
    # byte-compatible with what the original wrote: a plain protocol-3 pickle of lists
    assert pickle.loads(path.read_bytes()) == ML_TWOPHASE
    assert path.read_bytes()[:2] == b"\x80\x03"
    assert loads_params_data(dumps_params_data(ML_TWOPHASE)) == ML_TWOPHASE


def test_from_original_truncates_v11_lists_and_infers_sizes():
    v11 = [
        [4] * 6,
        [2] * 6,
        [3, 64, 128, 256, 512, 1],
        [1, 1, 1, 1, 0],
        [4] * 6,
        [2] * 6,
        [16, 512, 256, 128, 64, 3],
        [2, 2, 2, 2, 3],
    ]
    p = ModelParams.from_original(v11, "m", "nphase")
    assert p.gk == [4] * 5 and p.ds == [2] * 5
    assert (p.nz, p.nc, p.lz, p.l) == (16, 3, 4, 64)
    assert p.output_size_formula() == "32*(lf-2)"
    assert p.original_layers()[4] == [4] * 5
    net = p.build_generator()
    assert net(torch.randn(1, 16, 3, 3, 3)).shape == (1, 3, 32, 32, 32)


def test_reads_the_published_params_files(realdata):
    files = sorted((realdata / "slicegan_params").glob("*_params.data"))
    assert len(files) >= 7
    seen = {}
    for f in files:
        layers = read_params_data(f)
        name = f.name[: -len("_params.data")]
        nc = layers[6][-1]
        p = ModelParams.from_original(layers, name, "grayscale" if nc == 1 else "nphase")
        seen[name] = (p.lz, p.l, p.nz, p.nc)
        if name == "interface":
            # an early generator: 1^3 latent, first layer k4 s1 p0 breaks p >= k - s
            with pytest.raises(MicrolibError, match=r"rule 'p >= k - s'"):
                p.build_generator()
            p.build_generator(check_rules=False)
        else:
            p.build_generator()
    assert seen["NMC_exemplar_64_64"] == (4, 64, 16, 3)
    assert seen["EBSD_nn"] == (6, 128, 16, 3)  # six critic layers: 128 px slices
    assert seen["interface"] == (1, 64, 16, 3)
    assert seen["SemiC_init"] == (4, 64, 64, 2)


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_params_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil_params.data"
    evil.write_bytes(pickle.dumps([[4], [2], [1, 1], [0], [4], [2], [1, 1], [_Evil(marker)]]))
    with pytest.raises(MicrolibError, match=r"refused global (posix|os|nt)\.system"):
        read_params_data(evil, entry="evil")
    assert not marker.exists()
    # the same payload as the whole object, and a class instance, are refused too
    with pytest.raises(MicrolibError, match="refused global"):
        loads_params_data(pickle.dumps(_Evil(marker)))
    with pytest.raises(MicrolibError, match="refused global"):
        loads_params_data(pickle.dumps([Path("x")] * 8))
    assert not marker.exists()


def test_deeply_nested_params_pickle_is_one_line():
    # 20000 nested lists fit under the size cap; a plain repr of them would recurse
    deep = b"\x80\x03]q\x00(" + b"]" * 20000 + b"a" * 19999 + b"]" * 7 + b"e."
    with pytest.raises(MicrolibError) as info:
        loads_params_data(deep)
    msg = info.value.reason
    assert "\n" not in msg and len(msg) < 300
    assert "params file entry dk is not a list of ints" in msg


def test_malformed_params_are_refused():
    with pytest.raises(MicrolibError, match="8 lists"):
        loads_params_data(pickle.dumps([[4], [2]]))
    with pytest.raises(MicrolibError, match="not a list of ints"):
        loads_params_data(pickle.dumps([[4.0]] * 8))
    with pytest.raises(MicrolibError, match="not a valid pickle"):
        loads_params_data(b"\x80\x03]q\x00(K")
    with pytest.raises(MicrolibError, match="a few hundred"):
        loads_params_data(b"x" * 100_000)


def test_params_json_round_trip(tmp_path):
    p = _params(
        phase_grey_values=[10.0, 120.5, 200.0],
        voxel_size_um=0.25,
        training={"preset": "tiny", "seed": 3},
        finished=True,
    )
    d = p.to_json()
    assert d["size_formula"] == "16*(lf-2)"
    assert d["format_version"] == 1 and d["nc"] == 3 and d["nz"] == 16
    q = ModelParams.from_json(d)
    assert q == p
    with pytest.raises(MicrolibError, match="newer"):
        ModelParams.from_json({**d, "format_version": 99})
    with pytest.raises(MicrolibError, match="colour generator must have 3"):
        _params(image_type="colour", nc=2)


def test_params_json_records_the_resize_stage(tmp_path):
    p = _params(preset="demo", training={"preset": "demo"})
    d = p.to_json()
    assert d["g_output_stage"] == "resize_trilinear" and d["format_version"] == 3
    assert "g_hidden_stage" not in d and "g_output_noise" not in d
    assert d["size_formula"] == "16*(lf-2)"  # the resize stage keeps the sizes
    q = ModelParams.from_json(d)
    g = q.build_generator()
    assert q == p and (g.output_stage, g.hidden_stage) == ("resize_trilinear", "transpose")
    assert g.noise_weight is None and not g.hidden_blur
    # grey and colour: blurred hidden layers (version 4), each transposed one padded p - 1
    grey = _params(preset="demo", image_type="grayscale", nc=1, **GREY_DEMO)
    gd = grey.to_json()
    assert gd["g_hidden_stage"] == "blur" and gd["format_version"] == 4
    assert gd["size_formula"] == "16*lf-60"  # 2n - 4 per layer, as the listed k4 s2 p3
    g = ModelParams.from_json(gd).build_generator()
    assert g.hidden_blur and g.convs[0].padding == (2, 2, 2)
    # output noise is version 5
    noisy = _params(preset="demo", g_output_noise=True)
    assert noisy.to_json()["format_version"] == 5 and noisy.to_json()["g_output_noise"] is True
    g = ModelParams.from_json(noisy.to_json()).build_generator()
    assert g.noise_weight.shape == (p.gf[-2],)
    with pytest.raises(MicrolibError, match="output noise needs a resize output stage"):
        _params(preset="demo", g_output_stage="transpose", g_output_noise=True)
    # without the blur, the resize output stage alone is version 3, and the field is left out
    tri = _params(
        preset="demo",
        g_hidden_stage="transpose",
        g_output_noise=False,
        gp=[2, 2, 2, 3],
        lz=4,
        l=32,
    )
    assert tri.to_json()["format_version"] == 3 and "g_hidden_stage" not in tri.to_json()
    assert ModelParams.from_json(tri.to_json()).build_generator().hidden_stage == "transpose"
    with pytest.raises(MicrolibError, match="blurred hidden layer needs p >= k - s"):
        _params(preset="demo", g_hidden_stage="blur")
    # a nearest-upsampling resize model (the demo's stage before) stays version 2
    near = _params(
        preset="demo",
        g_output_stage="resize",
        g_hidden_stage="transpose",
        g_output_noise=False,
        gp=[2, 2, 2, 3],
    )
    assert near.to_json()["format_version"] == 2
    assert ModelParams.from_json(near.to_json()).build_generator().output_stage == "resize"
    # a version-1 file (no field) is a transposed-stage model
    old = {k: v for k, v in _params().to_json().items() if k != "g_output_stage"}
    assert ModelParams.from_json(old).g_output_stage == "transpose"
    write_json(tmp_path / "microstructure237_params.json", d)
    write_params_data(tmp_path / "microstructure237_params.data", p.original_layers())
    assert load_model_params(tmp_path) == p  # json and data agree on the layer lists
    with pytest.raises(MicrolibError, match="unknown generator output stage"):
        ModelParams.from_json({**d, "g_output_stage": "pixelshuffle"}, entry="x")


def test_load_model_params_original_dir_needs_image_type(tmp_path):
    write_params_data(tmp_path / "micro5_params.data", ML_TWOPHASE)
    with pytest.raises(MicrolibError, match="does not record the image type.*nphase"):
        load_model_params(tmp_path)
    p = load_model_params(tmp_path, image_type="nphase")
    assert (p.name, p.nc, p.lz, p.final) == ("micro5", 2, 4, "softmax")


def test_load_model_params_prefers_json_and_checks_consistency(tmp_path):
    p = _params(name="m")
    write_json(tmp_path / "m_params.json", p.to_json())
    write_params_data(tmp_path / "m_params.data", p.original_layers())
    assert load_model_params(tmp_path) == p
    with pytest.raises(MicrolibError, match="contradicts"):
        load_model_params(tmp_path, image_type="grayscale")
    write_params_data(tmp_path / "m_params.data", ML_TWOPHASE)
    with pytest.raises(MicrolibError, match="different networks"):
        load_model_params(tmp_path)


def test_weights_load_safely(tmp_path):
    sd = {"convs.0.weight": torch.randn(2, 3, 4, 4)}
    save_weights(tmp_path / "w.pt", sd)
    assert torch.equal(load_weights(tmp_path / "w.pt")["convs.0.weight"], sd["convs.0.weight"])
    marker = tmp_path / "pwned"
    torch.save({"x": _Evil(marker)}, tmp_path / "evil.pt")
    with pytest.raises(MicrolibError, match="refusing evil.pt"):
        load_weights(tmp_path / "evil.pt", entry="m")
    assert not marker.exists()
    (tmp_path / "bad.pt").write_bytes(b"not a zip")
    with pytest.raises(MicrolibError, match="bad.pt"):
        load_weights(tmp_path / "bad.pt")


@pytest.mark.parametrize("keep", [0, 40, 0.5])
def test_empty_or_truncated_weights_are_one_line(tmp_path, keep):
    save_weights(tmp_path / "w.pt", {"convs.0.weight": torch.randn(64, 64, 4, 4)})
    data = (tmp_path / "w.pt").read_bytes()
    cut = int(len(data) * keep) if isinstance(keep, float) else keep
    (tmp_path / "w.pt").write_bytes(data[:cut])
    with pytest.raises(MicrolibError) as info:
        load_weights(tmp_path / "w.pt", entry="m")
    assert info.value.reason == "w.pt: empty or truncated checkpoint"
