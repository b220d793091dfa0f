import json
import os
import time

import numpy as np
import pytest

from microlib import io


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError), io.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_png_roundtrip_keeps_metadata(tmp_path):
    arr = np.arange(64, dtype=np.uint8).reshape(8, 8) % 3
    io.write_png(tmp_path / "a.png", arr, {"data_type": "threephase", "n_phases": 3})
    back = io.read_image(tmp_path / "a.png")
    assert back.dtype == np.uint8 and np.array_equal(back, arr)
    assert io.read_png_meta(tmp_path / "a.png") == {"data_type": "threephase", "n_phases": 3}


def test_tif_voxel_size_roundtrip(tmp_path):
    vol = np.random.default_rng(0).integers(0, 2, (4, 5, 6), dtype=np.uint8)
    io.write_tif(tmp_path / "v.tif", vol, voxel_size_um=0.25, meta={"n_phases": 2})
    assert np.array_equal(io.read_tif(tmp_path / "v.tif"), vol)
    meta = io.read_tif_meta(tmp_path / "v.tif")
    assert meta["voxel_size_um"] == pytest.approx(0.25)
    assert meta["info"] == {"n_phases": 2}


@pytest.mark.parametrize(
    ("value", "ident", "name"),
    [
        (237, "000237", "microstructure237"),
        ("000001", "000001", "microstructure001"),
        ("microstructure1205", "001205", "microstructure1205"),
    ],
)
def test_names(value, ident, name):
    assert io.entry_id(value) == ident
    assert io.entry_name(value) == name
    assert io.entry_id(io.entry_name(value)) == ident


def test_parse_id_spec():
    assert io.parse_id_spec("1-3, 7,2") == [1, 2, 3, 7]
    with pytest.raises(ValueError):
        io.parse_id_spec("5-3")


def test_atomic_files_get_the_umask_mode_not_mkstemps_0600(tmp_path):
    import os
    import stat

    io.write_text(tmp_path / "a.txt", "x")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o666 & ~mask


def test_a_killed_writers_part_file_is_removed_by_the_next_writer(tmp_path):
    target = tmp_path / "annotations" / "000001.json"
    target.parent.mkdir()
    # what a writer killed mid-file leaves: a hidden temporary beside the target
    stale = target.parent / ".000001.json.k1ll3d.json.part"
    stale.write_bytes(b"x" * 1000)
    old = time.time() - 2 * io.STALE_PART_AGE_S
    os.utime(stale, (old, old))
    # one that may belong to a writer still running is young: it stays
    young = target.parent / ".000001.json.running.json.part"
    young.write_bytes(b"y")
    other = target.parent / ".000002.json.k1ll3d.json.part"
    other.write_bytes(b"z")
    os.utime(other, (old, old))

    io.write_json(target, {"ok": True})

    assert json.loads(target.read_text()) == {"ok": True}
    assert not stale.exists()
    assert young.exists() and other.exists()
    assert sorted(p.name for p in target.parent.iterdir() if p.name.endswith(".part")) == sorted(
        [young.name, other.name]
    )
