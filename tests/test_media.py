"""Media: the cube renderer shows the right slices in the right places, animations
decode with the expected frame counts and sizes, the in-painting figure marks the mask."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageSequence

from microlib import io as mio
from microlib import media as M
from microlib.cli import main


def blocky(shape=(48, 48, 48), block=8, n=3, seed=0) -> np.ndarray:
    """Random labels in block^3 cells: features large enough to survive downscaling."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, n, tuple(s // block for s in shape))
    return cells.repeat(block, 0).repeat(block, 1).repeat(block, 2).astype(np.uint8)


def classify(pixels: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Nearest label colour, ignoring brightness (faces are shaded): compare directions."""
    p = pixels.astype(float) + 1.0
    c = colours.astype(float) + 1.0
    p /= np.linalg.norm(p, axis=-1, keepdims=True)
    c /= np.linalg.norm(c, axis=-1, keepdims=True)
    return np.argmax(p @ c.T, axis=-1)


def sample_face(frame, face, tex_shape, n=40, inset=0.12):
    """Screen pixels at an inner grid of texture positions of a face -> (pixels, (rows, cols))."""
    p0, pu, pv = face["corners"]
    th, tw = tex_shape
    u = np.linspace(inset, 1 - inset, n)
    uu, vv = np.meshgrid(u, u)
    pts = p0 + uu[..., None] * (pu - p0) + vv[..., None] * (pv - p0)
    xs, ys = np.rint(pts[..., 0]).astype(int), np.rint(pts[..., 1]).astype(int)
    return frame[ys, xs], (np.floor(vv * th).astype(int), np.floor(uu * tw).astype(int))


def test_label_colours_distinct_and_ordered():
    for n in (2, 3, 5, 8):
        cols = label_cols = M.label_colours(n)
        assert cols.shape == (n, 3) and len({tuple(c) for c in label_cols}) == n
        lum = cols @ [0.299, 0.587, 0.114]
        assert np.all(np.diff(lum) > 0)  # label 0 darkest, as the labels' grey order


def test_front_view_is_the_outer_slice():
    """Looking straight at the y=0 face, the frame's centre square is that slice."""
    vol = blocky(seed=1)
    colour = M.colouriser("threephase", 3)
    size = 200
    frame = M.render_box(vol, colour, azimuth=0.0, elevation=0.0, size=size, shading=False)
    geo = {f["name"]: f for f in M.face_geometry(vol.shape, azimuth=0, elevation=0, size=size)}
    assert [n for n, f in geo.items() if f["visible"]] == ["y0"]
    p0, pu, pv = geo["y0"]["corners"]
    x0, y0, x1, y1 = int(round(p0[0])), int(round(p0[1])), int(round(pu[0])), int(round(pv[1]))
    assert 0 < x0 < x1 < size and 0 < y0 < y1 < size
    shown = frame[y0 + 2 : y1 - 2, x0 + 2 : x1 - 2]
    expected = np.asarray(
        Image.fromarray(colour(vol[:, 0, :])).resize((x1 - x0, y1 - y0), Image.NEAREST)
    )
    expected = expected[2:-2, 2:-2]
    agree = np.mean(np.all(np.abs(shown.astype(int) - expected.astype(int)) < 40, axis=-1))
    assert agree > 0.9
    # and not the opposite face: an independent slice agrees only by chance (~1/3)
    other = np.asarray(
        Image.fromarray(colour(vol[:, -1, :])).resize((x1 - x0, y1 - y0), Image.NEAREST)
    )[2:-2, 2:-2]
    assert np.mean(np.all(np.abs(shown.astype(int) - other.astype(int)) < 40, axis=-1)) < 0.6
    assert tuple(frame[1, 1]) == M.BACKGROUND


def test_first_rotation_frame_shows_the_outer_slices():
    vol = blocky(seed=2)
    colour = M.colouriser("threephase", 3)
    cols = M.label_colours(3)
    frames = M.rotation_frames(vol, colour, frames=12, size=240)
    assert len(frames) == 12 and all(f.shape == (240, 240, 3) for f in frames)
    geo = M.face_geometry(vol.shape, azimuth=35.0, elevation=30.0, size=240)
    visible = [f for f in geo if f["visible"]]
    assert {f["name"] for f in visible} == {"top", "y0", "x0"}
    outer = {"top": vol[0], "y0": vol[:, 0, :], "x0": vol[:, :, 0]}  # (rows, cols) = (y|z, x|y)
    for face in visible:
        tex = outer[face["name"]]
        pixels, (rows, cols_) = sample_face(frames[0], face, tex.shape)
        truth = tex[rows, cols_]
        assert np.mean(classify(pixels, cols) == truth) > 0.9, face["name"]
    # frames differ as the cube turns, and a full turn comes back near the start
    assert not np.array_equal(frames[0], frames[3])


def test_slicing_cut_face_is_the_slice_at_depth():
    vol = blocky(seed=3)
    colour = M.colouriser("threephase", 3)
    cols = M.label_colours(3)
    frames = M.slicing_frames(vol, colour, frames=7, size=240)
    assert len(frames) == 7
    depths = np.rint(np.linspace(0, 47, 7)).astype(int)
    k = int(depths[3])
    geo = {
        f["name"]: f
        for f in M.face_geometry(vol.shape, azimuth=35.0, elevation=30.0, size=240, z0=k)
    }
    pixels, (rows, cc) = sample_face(frames[3], geo["top"], vol.shape[1:])
    got = classify(pixels, cols)
    assert np.mean(got == vol[k][rows, cc]) > 0.9
    assert np.mean(got == vol[0][rows, cc]) < 0.7  # the original top slice is gone


def test_grey_and_colour_volumes_render():
    rng = np.random.default_rng(4)
    grey = rng.integers(0, 256, (20, 24, 28), dtype=np.uint8)
    f = M.render_box(grey, M.colouriser("grayscale", 1), azimuth=35, elevation=30, size=64)
    assert f.shape == (64, 64, 3) and (f[..., 0] == f[..., 1]).all()
    rgb = np.zeros((20, 24, 28, 3), np.uint8)
    rgb[..., 0] = 200
    f = M.render_box(rgb, M.colouriser("colour", 3), azimuth=35, elevation=30, size=64)
    covered = f[(f != 255).any(axis=-1)]
    # shaded pure red inside the faces (edge pixels blend with the background)
    inner = covered[covered[:, 1] == 0]
    assert len(covered) > 300 and len(inner) > 0.8 * len(covered) and (inner[:, 0] > 100).all()


def test_gif_round_trip():
    frames = [np.full((32, 40, 3), (10 * i, 50, 200 - 10 * i), np.uint8) for i in range(6)]
    data = M.encode_gif(frames, 50)
    with Image.open(__import__("io").BytesIO(data)) as im:
        got = [np.asarray(fr.convert("RGB")) for fr in ImageSequence.Iterator(im)]
    assert len(got) == 6 and got[0].shape == (32, 40, 3)
    for a, b in zip(frames, got, strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 8


def _entry(tmp_path, shape=(40, 40, 40)):
    vol = blocky(shape, block=8, n=2, seed=5)
    meta = {"id": "000050", "data_type": "twophase", "n_phases": 2}
    img = vol[:, :, 20].copy()
    mask = np.zeros(img.shape, np.uint8)
    mask[30:34, 5:30] = 255
    paths = {
        "volume": tmp_path / "v.tif",
        "image": tmp_path / "t.png",
        "segmented": tmp_path / "s.png",
        "mask": tmp_path / "m.png",
    }
    mio.write_tif(paths["volume"], vol)
    mio.write_png(paths["image"], img, meta)
    seg = img.copy()
    seg[mask > 0] = 1
    mio.write_png(paths["segmented"], seg, meta)
    mio.write_png(paths["mask"], mask)
    return paths, vol, img, mask


def test_cli_writes_all_media(tmp_path):
    paths, vol, img, mask = _entry(tmp_path)
    out = tmp_path / "media" / "microstructure050"
    rc = main(
        [
            "media",
            "--volume",
            str(paths["volume"]),
            "--image",
            str(paths["image"]),
            "--out-dir",
            str(out),
            "--name",
            "microstructure050",
            "--segmented",
            str(paths["segmented"]),
            "--mask",
            str(paths["mask"]),
            "--frames",
            "9",
            "--size",
            "96",
        ]
    )
    assert rc == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "microstructure050_inpaint.png",
        "microstructure050_preview.png",
        "microstructure050_rotation.gif",
        "microstructure050_slicing.gif",
    ]
    for kind, n_frames in (("rotation", 9), ("slicing", 9)):
        with Image.open(out / f"microstructure050_{kind}.gif") as im:
            assert im.size == (96, 96) and im.n_frames == n_frames and im.info.get("loop") == 0
    preview = mio.read_image(out / "microstructure050_preview.png")
    # 40^3 volume in a 96 px cube frame: 2 screen px per voxel and per image pixel;
    # four 80 px slice panels with a scale band under them, then the 96 px cube
    band = M.CAPTION_BAND
    assert preview.shape[:2] == (band + max(80 + M.SCALE_BAND, 96), 4 * 80 + 96 + 4 * 8)
    # the 2D tile is the training image in label colours, each pixel exactly 2 x 2
    cols = M.label_colours(2)
    tile = preview[band : band + 80, :80]
    expected = img.repeat(2, axis=0).repeat(2, axis=1)
    np.testing.assert_array_equal(classify(tile.reshape(-1, 3), cols).reshape(80, 80), expected)
    panel = mio.read_image(out / "microstructure050_inpaint.png")
    left = panel[22:, :40]
    red = np.all(left == M.MASK_COLOUR, axis=-1)
    np.testing.assert_array_equal(red, mask > 0)
    right = panel[22:, 48:88]
    np.testing.assert_array_equal(classify(right.reshape(-1, 3), cols).reshape(40, 40), img)


def test_cli_without_segmented_and_errors(tmp_path, capsys):
    paths, *_ = _entry(tmp_path)
    out = tmp_path / "media"
    assert (
        main(
            [
                "media",
                "--volume",
                str(paths["volume"]),
                "--image",
                str(paths["image"]),
                "--out-dir",
                str(out),
                "--name",
                "microstructure050",
                "--frames",
                "3",
                "--size",
                "48",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "microstructure050_preview.png",
        "microstructure050_rotation.gif",
        "microstructure050_slicing.gif",
    ]
    rc = main(
        [
            "media",
            "--volume",
            str(tmp_path / "missing.tif"),
            "--image",
            str(paths["image"]),
            "--out-dir",
            str(out),
            "--name",
            "microstructure050",
        ]
    )
    assert rc == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .splitlines()[-1]
        .startswith("microlib media: error: microstructure050: volume not found")
    )


@pytest.mark.parametrize("bad", ["2d", "float"])
def test_cli_rejects_bad_volumes(tmp_path, bad, capsys):
    paths, *_ = _entry(tmp_path)
    import tifffile

    arr = np.zeros((40, 40), np.uint8) if bad == "2d" else np.zeros((8, 8, 8), np.float32)
    tifffile.imwrite(paths["volume"], arr)
    rc = main(
        [
            "media",
            "--volume",
            str(paths["volume"]),
            "--image",
            str(paths["image"]),
            "--out-dir",
            str(tmp_path / "o"),
            "--name",
            "microstructure050",
        ]
    )
    assert rc == 2 and "volume must be a uint8" in capsys.readouterr().err


# --------------------------------------------------------------------------- equal scale


def _black_runs(row: np.ndarray) -> list[int]:
    """Lengths of runs of pure black pixels along one row of an RGB image."""
    black = np.all(row == 0, axis=-1).astype(np.int8)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], black, [0]])))
    return list(edges[1::2] - edges[::2])


def _square_entry():
    """A 200x240 training image and a 40^3 volume, each with a 10-pixel square/cube of
    label 1 at the centre: the same physical feature in 2D and 3D."""
    img = np.zeros((200, 240), np.uint8)
    img[95:105, 115:125] = 1
    vol = np.zeros((40, 40, 40), np.uint8)
    vol[15:25, 15:25, 15:25] = 1
    return img, vol


def test_preview_draws_2d_and_3d_at_the_same_pixel_scale():
    img, vol = _square_entry()
    colour = M.colouriser("twophase", 2)
    cols = M.label_colours(2)
    assert M.zoom_factor(vol.shape, 120) == 3
    fig = M.preview(img, vol, colour, size=120)
    band, width, gap = M.CAPTION_BAND, 40 * 3, 8
    sizes = []
    for i in range(4):  # crop, z, y and x slices
        panel = fig[band : band + width, i * (width + gap) : i * (width + gap) + width]
        labels = classify(panel.reshape(-1, 3), cols).reshape(width, width)
        rows, cols_ = np.nonzero(labels == 1)
        sizes.append((rows.max() - rows.min() + 1, cols_.max() - cols_.min() + 1))
    # 10 image pixels and 10 voxels both span 30 screen pixels
    assert sizes == [(30, 30)] * 4
    # the crop is the image's centre, not the image squeezed into the panel
    np.testing.assert_array_equal(M.centre_crop(img, 40, 40), img[80:120, 100:140])


def test_scale_bar_length_matches_the_voxel_size():
    assert M.round_length(8.0) == 5 and M.round_length(20.0) == 20 and M.round_length(0.7) == 0.5
    assert M.format_length(50) == "50 µm" and M.format_length(0.5) == "500 nm"
    assert M.format_length(2000) == "2 mm"
    # 0.5 µm voxels at 3 screen px each: 6 px per µm; room 48 px -> 8 µm -> a 5 µm bar
    assert M.scale_bar(0.5, 3, 48) == (5.0, 30)
    img, vol = _square_entry()
    colour = M.colouriser("twophase", 2)
    fig = M.preview(img, vol, colour, size=120, voxel_size_um=0.5)
    band, width, gap = M.CAPTION_BAND, 40 * 3, 8
    bar_rows = fig[band + width : band + width + M.SCALE_BAND]
    for i in range(4):
        panel = bar_rows[:, i * (width + gap) : i * (width + gap) + width]
        longest = max(max(_black_runs(r), default=0) for r in panel)
        assert longest == 30, i  # the bar, 5 µm long, on every panel
    # and the feature: 10 voxels of 0.5 µm = 5 µm = the bar's length on screen
    plain = M.preview(img, vol, colour, size=120)
    plain_bars = plain[band + width : band + width + M.SCALE_BAND, :width]
    assert max(max(_black_runs(r), default=0) for r in plain_bars) < 10  # "scale unknown"


def test_cli_preview_takes_the_voxel_size_from_the_metadata(tmp_path):
    img, vol = _square_entry()
    meta = {"id": "000051", "data_type": "twophase", "n_phases": 2, "voxel_size_um": 0.25}
    mio.write_png(tmp_path / "t.png", img, meta)
    mio.write_tif(tmp_path / "v.tif", vol, 0.25, meta)
    out = tmp_path / "media"
    args = ["--volume", str(tmp_path / "v.tif"), "--image", str(tmp_path / "t.png")]
    rc = main(["media", *args, "--out-dir", str(out), "--name", "m51", "--frames", "2"])
    assert rc == 0
    fig = mio.read_image(out / "m51_preview.png")
    f = M.zoom_factor(vol.shape, 256)  # the default --size
    length, px = M.scale_bar(0.25, f, int(0.4 * 40 * f))
    assert px == round(length * f / 0.25)
    bars = fig[M.CAPTION_BAND + 40 * f : M.CAPTION_BAND + 40 * f + M.SCALE_BAND, : 40 * f]
    assert max(max(_black_runs(r), default=0) for r in bars) == px
