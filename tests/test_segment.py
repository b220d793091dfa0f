"""Segmentation: digitize-style thresholds, denoising, halo removal, mask, file contract."""

from __future__ import annotations

import io
import logging
import struct
import zlib

import numpy as np
import pytest
import tifffile
from PIL import Image
from scipy import ndimage

from microlib import annotate as A
from microlib import demo_site
from microlib.cli import main
from microlib.datatypes import MAX_PHASES, infer_data_type
from microlib.io import read_image, read_json, read_png_meta, write_json
from microlib.segment import (
    SegmentSettings,
    denoise,
    label_phases,
    phase_statistics,
    segment_image,
    suppress_halos,
)


@pytest.fixture(scope="module")
def demo():
    files, truth = demo_site.build_site(0)
    out = {}
    for ident, tr in truth["entries"].items():
        img = np.asarray(Image.open(io.BytesIO(files[f"miclib/micrographs/large/{ident}.jpg"])))
        ann = {"id": ident, **A.annotate_image(img, meta=tr["record"])}
        out[ident] = (img, ann, segment_image(img, ann))
    return files, truth, out


def _truth_png(files, rel):
    return np.asarray(Image.open(io.BytesIO(files[rel])))


def test_digitize_binning_keeps_every_class_apart():
    grey = np.array([[0, 49, 50, 51, 149, 150, 151, 255]], dtype=float)
    lab = label_phases(grey, [50.0, 150.0], method="none", halos=False)
    assert lab.dtype == np.uint8
    assert lab.tolist() == [[0, 0, 1, 1, 1, 2, 2, 2]]  # equal to a threshold: the brighter phase
    assert np.array_equal(lab, np.digitize(grey, [50.0, 150.0]))
    # MicroLib's in-place relabelling merged classes 1 and n-1 for n >= 3; not here
    levels = np.array([[10.0, 90.0, 170.0, 250.0]])
    assert label_phases(levels, [50, 130, 210], method="none", halos=False).tolist() == [
        [0, 1, 2, 3]
    ]
    with pytest.raises(ValueError, match="ascending"):
        label_phases(grey, [150.0, 50.0])
    with pytest.raises(ValueError):
        label_phases(grey, [])


def test_denoising_removes_speckle_and_is_optional():
    rng = np.random.default_rng(0)
    f = demo_site.gaussian_random_field((200, 200), 5.0, rng)
    truth = (f > 0).astype(np.uint8)
    noisy = np.array([80.0, 170.0])[truth] + rng.normal(0, 25, f.shape)  # SNR low enough to speckle
    raw = label_phases(noisy, [125.0], method="none")
    med = label_phases(noisy, [125.0], method="median", size=3)
    gau = label_phases(noisy, [125.0], method="gaussian", size=3)
    acc = {
        k: float((v == truth).mean())
        for k, v in (("none", raw), ("median", med), ("gaussian", gau))
    }
    assert (
        acc["none"] < 0.97
        and acc["median"] > acc["none"] + 0.02
        and acc["gaussian"] > acc["none"] + 0.02
    )

    # speckle: isolated pixels whose 8 neighbours all disagree
    def iso(lab):
        return int(
            (ndimage.generic_filter(lab, lambda w: (w[4] != np.delete(w, 4)).all(), size=3)).sum()
        )  # noqa: E731

    assert iso(med) < iso(raw) / 10
    assert np.array_equal(denoise(noisy, "none"), noisy)
    with pytest.raises(ValueError, match="unknown denoise"):
        denoise(noisy, "bilateral")


def test_halo_rims_between_dark_and_bright_phases_are_removed():
    # phase 0 next to phase 2, blurred: the transition passes through phase 1's grey level
    img = np.zeros((60, 60))
    img[:, 30:] = 220.0
    img[20:40, 5:15] = 120.0  # a genuine phase-1 feature
    blurred = ndimage.gaussian_filter(img, 1.0)
    plain = label_phases(blurred, [60.0, 170.0], method="none", halos=False)
    assert (plain[:, 28:32] == 1).any()  # the rim
    clean = label_phases(blurred, [60.0, 170.0], method="none", halos=True)
    assert not (clean[:, 26:34] == 1).any()
    assert (clean[22:38, 7:13] == 1).all()  # the real feature stays
    # two-phase labels are left alone
    two = (img > 100).astype(np.uint8)
    assert np.array_equal(suppress_halos(two, img), two)


def test_segmentation_matches_the_demo_ground_truth(demo):
    files, truth, out = demo
    accs = {}
    for ident, tr in truth["entries"].items():
        img, ann, seg = out[ident]
        x0, y0, x1, y1 = tr["crop_box"]
        assert seg["image"].shape[:2] == (y1 - y0, x1 - x0)
        assert seg["mask"].dtype == np.uint8 and set(np.unique(seg["mask"])) <= {0, 255}
        if not tr["labels"]:
            continue
        lab = _truth_png(files, tr["labels"])
        bar = _truth_png(files, tr["bar_mask"])[y0:y1, x0:x1] > 0
        keep = ~bar
        accs[ident] = float((seg["image"][keep] == lab[keep]).mean())
        if tr["included"]:
            assert accs[ident] >= 0.98, (ident, accs[ident])
            assert np.allclose(seg["fractions"], tr["phase_fractions"], atol=0.01), ident
        assert seg["image"].max() == tr["n_phases"] - 1
    assert min(accs.values()) >= 0.95  # the exposure and blurred entries included


def test_grayscale_and_colour_pass_through_cropped(demo):
    _, truth, out = demo
    img, ann, seg = out["000011"]
    assert (
        seg["data_type"] == "grayscale"
        and seg["image"].dtype == np.uint8
        and seg["image"].ndim == 2
    )
    assert np.array_equal(seg["image"], img)  # nothing cropped, grey kept exactly
    assert seg["phase_grey_values"] is None and seg["n_phases"] == 1
    img, ann, seg = out["000014"]
    assert seg["data_type"] == "colour" and seg["image"].shape == img.shape and seg["n_phases"] == 3
    assert np.array_equal(seg["image"], img)
    # a grey micrograph stored as RGB (entry 5) becomes labels from its luminance
    img, ann, seg = out["000005"]
    assert img.ndim == 3 and seg["image"].ndim == 2 and seg["image"].shape == (360, 440)


def test_masked_pixels_keep_their_segmented_values(demo):
    _, _, out = demo
    img, ann, seg = out["000003"]
    assert (seg["mask"] > 0).sum() > 100
    labels = label_phases(A.to_grey(img), ann["phases"]["thresholds"])
    assert np.array_equal(seg["image"], labels)  # under the mask too: the inpainter replaces them


def test_phase_statistics_exclude_the_mask():
    grey = np.array([[10.0, 10.0, 200.0, 250.0]])
    lab = np.array([[0, 0, 1, 1]])
    st = phase_statistics(grey, lab, 2, mask=np.array([[False, False, False, True]]))
    assert st["grey_values"] == [10.0, 200.0] and st["fractions"] == [
        pytest.approx(2 / 3, abs=1e-4),
        pytest.approx(1 / 3, abs=1e-4),
    ]


def test_cli_writes_the_file_contract(demo, tmp_path):
    files, truth, out = demo
    for ident in ("000005", "000008", "000014"):
        raw = tmp_path / "raw" / f"{ident}.jpg"
        raw.parent.mkdir(exist_ok=True)
        raw.write_bytes(files[f"miclib/micrographs/large/{ident}.jpg"])
        ann = dict(out[ident][1], voxel_size_um=0.5 if ident == "000005" else None)
        write_json(tmp_path / "ann" / f"{ident}.json", ann)
        rc = main(
            [
                "-q",
                "segment",
                "--image",
                str(raw),
                "--annotation",
                str(tmp_path / "ann" / f"{ident}.json"),
                "--out-image",
                str(tmp_path / "seg" / f"{ident}.png"),
                "--out-mask",
                str(tmp_path / "mask" / f"{ident}.png"),
            ]
        )
        assert rc == 0
        seg = read_image(tmp_path / "seg" / f"{ident}.png")
        mask = read_image(tmp_path / "mask" / f"{ident}.png")
        meta = read_png_meta(tmp_path / "seg" / f"{ident}.png")
        assert set(meta) == {"id", "data_type", "n_phases", "phase_grey_values", "voxel_size_um"}
        assert meta["id"] == ident and meta["data_type"] == truth["entries"][ident]["data_type"]
        assert seg.shape[:2] == mask.shape
        assert np.array_equal(seg, out[ident][2]["image"]) and np.array_equal(
            mask, out[ident][2]["mask"]
        )
        if meta["data_type"] in ("twophase", "threephase"):
            assert meta["n_phases"] == int(seg.max()) + 1
            assert meta["phase_grey_values"] == sorted(meta["phase_grey_values"])
        assert not list((tmp_path / "seg").glob("*.part"))  # atomic writes leave no temp files
    assert read_png_meta(tmp_path / "seg" / "000005.png")["voxel_size_um"] == 0.5
    assert read_image(tmp_path / "seg" / "000005.png").shape == (
        360,
        440,
    )  # the info band is cropped off
    assert read_image(tmp_path / "seg" / "000014.png").shape == (380, 400, 3)
    # --denoise none thresholds the raw grey levels exactly
    rc = main(
        [
            "-q",
            "segment",
            "--image",
            str(tmp_path / "raw" / "000008.jpg"),
            "--annotation",
            str(tmp_path / "ann" / "000008.json"),
            "--out-image",
            str(tmp_path / "n.png"),
            "--out-mask",
            str(tmp_path / "m.png"),
            "--denoise",
            "none",
            "--no-halos",
        ]
    )
    assert rc == 0
    raw = A.to_grey(read_image(tmp_path / "raw" / "000008.jpg"))
    th = read_json(tmp_path / "ann" / "000008.json")["phases"]["thresholds"]
    assert np.array_equal(read_image(tmp_path / "n.png"), np.digitize(raw, th).astype(np.uint8))


def test_cli_errors_are_one_line(demo, tmp_path, capsys):
    files, _, out = demo
    raw = tmp_path / "000003.jpg"
    raw.write_bytes(files["miclib/micrographs/large/000003.jpg"])
    write_json(tmp_path / "bad.json", {"id": "000003", **A.unreadable_annotation("cannot decode")})
    args = [
        "segment",
        "--image",
        str(raw),
        "--out-image",
        str(tmp_path / "s.png"),
        "--out-mask",
        str(tmp_path / "m.png"),
    ]
    assert main([*args, "--annotation", str(tmp_path / "bad.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "microlib segment: error: 000003: the annotation marks the image unreadable: cannot decode"
    ]
    no_th = dict(out["000003"][1])
    no_th["phases"] = None
    write_json(tmp_path / "noth.json", no_th)
    assert main([*args, "--annotation", str(tmp_path / "noth.json")]) == 2
    assert "no thresholds" in capsys.readouterr().err
    other = dict(out["000003"][1], image={"shape": [10, 10], "channels": 1})
    write_json(tmp_path / "other.json", other)
    assert main([*args, "--annotation", str(tmp_path / "other.json")]) == 2
    assert "annotation was made on 10x10" in capsys.readouterr().err
    assert not (tmp_path / "s.png").exists()


def _png_declaring(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares ``width`` x ``height`` (the pixel data is a stub)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def test_unreadable_pixel_formats_and_sizes_are_one_line_errors(demo, tmp_path, capsys):
    _, _, out = demo
    write_json(tmp_path / "ann.json", out["000003"][1])
    args = ["segment", "--annotation", str(tmp_path / "ann.json")]
    args += ["--out-image", str(tmp_path / "s.png"), "--out-mask", str(tmp_path / "m.png")]
    # a header that declares 100000 x 100000 pixels: refused before any decoding
    big = tmp_path / "000003.png"
    big.write_bytes(_png_declaring(100_000, 100_000))
    assert main([*args, "--image", str(big)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"microlib segment: error: 000003: cannot decode {big}: ")
    assert "too large" in err[0] and "10000000000 pixels" in err[0]
    # a float32 TIFF in 0..1 is not read as (nearly) black labels
    flt = tmp_path / "000003.tif"
    tifffile.imwrite(flt, np.random.default_rng(0).random((64, 64), dtype=np.float32))
    assert main([*args, "--image", str(flt)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"microlib segment: error: 000003: {flt}: unsupported pixel format")
    assert not (tmp_path / "s.png").exists() and not (tmp_path / "m.png").exists()


def test_one_phase_count_limit():
    assert MAX_PHASES == 16
    grey = np.linspace(0, 255, 64 * 64).reshape(64, 64)
    steps = list(np.linspace(8, 248, MAX_PHASES - 1))
    assert int(label_phases(grey, steps, method="none").max()) == MAX_PHASES - 1
    with pytest.raises(ValueError, match=f"17 phases from the thresholds; at most {MAX_PHASES}"):
        label_phases(grey, list(np.linspace(8, 248, MAX_PHASES)), method="none")
    labels = np.arange(MAX_PHASES, dtype=np.uint8).repeat(4).reshape(8, -1)
    assert infer_data_type(labels) == ("nphase", MAX_PHASES)
    assert infer_data_type(np.array([[0, 1], [1, 0]], np.uint8)) == ("twophase", 2)
    assert infer_data_type(np.array([[0, 1], [2, 0]], np.uint8)) == ("threephase", 3)
    more = np.arange(MAX_PHASES + 1, dtype=np.uint8).reshape(1, -1)
    assert infer_data_type(more) == ("grayscale", 1)
    assert infer_data_type(np.array([[0, 255], [128, 7]], np.uint8)) == ("grayscale", 1)
    assert infer_data_type(np.zeros((2, 2, 3), np.uint8)) == ("colour", 3)


def test_segment_settings_are_checked_and_mismatches_are_reported(demo, tmp_path, caplog):
    files, _, out = demo
    with pytest.raises(ValueError, match="unknown denoise method 'blur'"):
        SegmentSettings(denoise="blur")
    raw = tmp_path / "000008.jpg"
    raw.write_bytes(files["miclib/micrographs/large/000008.jpg"])
    ann = out["000008"][1]
    assert ann["segment_settings"] == SegmentSettings().as_dict()
    write_json(tmp_path / "ann.json", ann)
    args = ["segment", "--image", str(raw), "--annotation", str(tmp_path / "ann.json")]
    args += ["--out-image", str(tmp_path / "s.png"), "--out-mask", str(tmp_path / "m.png")]
    with caplog.at_level(logging.WARNING, logger="microlib.segment"):
        assert main(args) == 0
        assert not [r for r in caplog.records if "segment settings" in r.getMessage()]
        assert main([*args, "--denoise", "gaussian"]) == 0
    warned = [r.getMessage() for r in caplog.records if "segment settings" in r.getMessage()]
    assert len(warned) == 1 and "'gaussian'" in warned[0] and warned[0].startswith("000008: ")
