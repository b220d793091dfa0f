"""Reading and extracting a downloaded dataset safely: every hostile or broken archive is
refused with one line (exit 2), nothing lands outside the target and nothing is left
half-extracted; JSON indexes are read with a size cap; scraped control characters never
reach the terminal."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from microlib.cli import main
from microlib.dataset import read_json_capped, safe_extract
from microlib.errors import MicrolibError

ANNS = {"1": {"name": "microstructure003", "data_type": "twophase", "brief_descr": "ok"}}


def _zip(path: Path, members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _good(path: Path, anns=None) -> Path:
    return _zip(
        path,
        {
            "microlibDataset/data_anns.json": json.dumps(ANNS if anns is None else anns).encode(),
            "microlibDataset/excluded.json": b"{}",
            "microlibDataset/microstructure003/a.txt": b"hello" * 100,
            "microlibDataset/microstructure003/b.txt": b"world" * 100,
        },
    )


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(["dataset", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _refused(capsys, *argv: str, match: str) -> str:
    rc, _, err = _cli(capsys, *argv)
    lines = err.strip().splitlines()
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith("microlib dataset: error: "), err
    assert match in lines[0], lines[0]
    return lines[0]


def _tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_a_good_archive_extracts_whole_and_a_second_extract_refuses_to_overwrite(tmp_path, capsys):
    archive = _good(tmp_path / "d.zip")
    target = tmp_path / "out"
    rc, out, _ = _cli(capsys, "extract", str(archive), str(target))
    assert rc == 0 and "extracted 4 files" in out
    assert (target / "microlibDataset/microstructure003/a.txt").read_bytes() == b"hello" * 100
    assert stat.S_IMODE(target.stat().st_mode) & 0o055 == 0o055 & ~_umask()  # not 0700
    _refused(capsys, "extract", str(archive), str(target), match="already exists")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("evil", ["../evil.txt", "/tmp/evil.txt", "a/../../evil.txt", "C:x"])
def test_traversal_is_refused_before_anything_is_written(tmp_path, capsys, evil):
    archive = _zip(tmp_path / "t.zip", {"ok.txt": b"fine", evil: b"evil"})
    target = tmp_path / "sub" / "target"
    _refused(capsys, "extract", str(archive), str(target), match="outside")
    assert not target.exists()
    assert _tree(tmp_path) == ["t.zip"]


def test_symlink_members_are_refused(tmp_path, capsys):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("first.txt", b"x")
        info = zipfile.ZipInfo("link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    _refused(capsys, "extract", str(archive), str(tmp_path / "t"), match="symbolic link")
    assert not (tmp_path / "t").exists()


def test_bombs_are_refused_by_ratio_and_by_total_size(tmp_path, capsys):
    # 64 MiB of zeros deflates to ~64 kB: 1000:1
    bomb = _zip(tmp_path / "bomb.zip", {"ok.txt": b"x", "zeros.bin": b"\0" * (64 << 20)})
    assert bomb.stat().st_size < 200_000
    _refused(capsys, "extract", str(bomb), str(tmp_path / "t"), match="zip bomb")
    assert not (tmp_path / "t").exists()
    # honest ratio, too large in total
    rc, _, _ = _cli(
        capsys, "extract", str(bomb), str(tmp_path / "t"), "--max-ratio", "5000", "--max-gb", "0.01"
    )
    assert rc == 2 and not (tmp_path / "t").exists()
    # both caps raised: it extracts (the caps are what refused it)
    rc, _, _ = _cli(capsys, "extract", str(bomb), str(tmp_path / "t"), "--max-ratio", "5000")
    assert rc == 0 and (tmp_path / "t/zeros.bin").stat().st_size == 64 << 20


def test_a_member_lying_about_its_size_is_stopped_while_streaming(tmp_path):
    """Declared sizes are small; the stream inflates more: CRC/size check refuses it."""
    archive = _zip(tmp_path / "lie.zip", {"a.bin": b"\0" * 4096, "b.bin": b"\1" * 4096})
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
    # shrink the declared size of a.bin in its central directory record
    cd = data.rfind(b"PK\x01\x02", 0, data.rfind(b"PK\x01\x02"))
    data[cd + 24 : cd + 28] = (100).to_bytes(4, "little")
    lying = tmp_path / "lying.zip"
    lying.write_bytes(bytes(data))
    assert infos[0].file_size == 4096
    with pytest.raises(MicrolibError):
        safe_extract(lying, tmp_path / "t")
    assert not (tmp_path / "t").exists()


def test_corrupt_member_leaves_nothing_behind(tmp_path, capsys):
    archive = _good(tmp_path / "c.zip")
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo("microlibDataset/microstructure003/b.txt")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data[start + info.compress_size // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    target = tmp_path / "t"
    _refused(capsys, "extract", str(archive), str(target), match="corrupt")
    assert not target.exists()
    assert _tree(tmp_path) == ["c.zip"]


def test_file_and_folder_of_one_name_is_refused(tmp_path, capsys):
    archive = _zip(tmp_path / "clash.zip", {"a": b"file", "a/b.txt": b"inside"})
    _refused(capsys, "extract", str(archive), str(tmp_path / "t"), match="both a file and a folder")
    assert not (tmp_path / "t").exists()


def test_missing_or_non_zip_archive_and_a_file_as_target(tmp_path, capsys):
    _refused(capsys, "extract", str(tmp_path / "nope.zip"), str(tmp_path / "t"), match="no such")
    text = tmp_path / "notes.zip"
    text.write_text("not a zip")
    _refused(capsys, "extract", str(text), str(tmp_path / "t"), match="not a readable zip")
    _refused(capsys, "list", str(text), match="not a readable zip")
    _refused(capsys, "list", str(tmp_path / "nope.zip"), match="no such dataset")
    archive = _good(tmp_path / "d.zip")
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    _refused(capsys, "extract", str(archive), str(blocker), match="not a folder")
    assert blocker.read_text() == "a file"


@pytest.mark.parametrize(
    "anns, match",
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"1": {"data_type": "twophase"}}', "has no name"),
        (b'{"1": "microstructure003"}', "has no name"),
    ],
)
def test_malformed_data_anns_is_one_line(tmp_path, capsys, anns, match):
    archive = _zip(
        tmp_path / "m.zip",
        {"microlibDataset/data_anns.json": anns, "microlibDataset/excluded.json": b"{}"},
    )
    _refused(capsys, "list", str(archive), match=match)
    _refused(capsys, "show", str(archive), "microstructure003", match=match)


def test_excluded_without_name_and_bad_size_are_one_line(tmp_path, capsys):
    archive = _zip(
        tmp_path / "e.zip",
        {
            "microlibDataset/data_anns.json": json.dumps(ANNS).encode(),
            "microlibDataset/excluded.json": b'{"000024": {"reasons": ["dup"]}}',
        },
    )
    _refused(capsys, "list", str(archive), "--excluded", match="has no name")
    _refused(
        capsys,
        "synthesise",
        str(archive),
        "microstructure003",
        "--size",
        "abc",
        "--out",
        str(tmp_path / "v.tif"),
        match="--size",
    )
    assert not (tmp_path / "v.tif").exists()


def test_an_inflating_data_anns_is_refused_with_bounded_memory(tmp_path, capsys):
    """0.2 MB on disk, 200 MB inflated: refused after reading the cap, not the whole file."""
    archive = tmp_path / "big.zip"
    with (
        zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf,
        zf.open("microlibDataset/data_anns.json", "w", force_zip64=True) as fh,
    ):
        fh.write(b'{"1": {"name": "microstructure003", "pad": "')
        for _ in range(200):
            fh.write(b" " * (1 << 20))
        fh.write(b'"}}')
    assert archive.stat().st_size < 1_000_000
    _refused(capsys, "list", str(archive), "--max-json-mb", "16", match="larger than 16 MB")
    # measured in a fresh interpreter (VmHWM: ru_maxrss would inherit pytest's peak): the
    # peak after the refusal is within 100 MB of the peak after importing the CLI
    code = (
        "import re\n"
        "from microlib.cli import main\n"
        "from microlib.commands import dataset\n"
        "def hwm():\n"
        "    text = open('/proc/self/status').read()\n"
        "    return int(re.search(r'VmHWM:\\s+(\\d+)', text).group(1))\n"
        "before = hwm()\n"
        f"rc = main(['dataset', 'list', {str(archive)!r}, '--max-json-mb', '16'])\n"
        "print(rc, before, hwm())\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    rc, before_kb, after_kb = proc.stdout.split()
    assert rc == "2", proc.stderr
    assert int(after_kb) - int(before_kb) < 100 * 1024, (before_kb, after_kb)
    with pytest.raises(MicrolibError, match="larger than"):
        read_json_capped(io.BytesIO(b"[" + b"1," * 100 + b"1]"), "x.json", max_bytes=50)


def test_control_characters_never_reach_the_terminal(tmp_path, capsys):
    anns = {
        "1": {
            "name": "microstructure003",
            "data_type": "twophase",
            "brief_descr": "red\x1b[31m alert\x07 \u202eevil",
            "licence": "CC\x1b]0;title\x07",
        }
    }
    archive = _good(tmp_path / "cc.zip", anns)
    rc, out, _ = _cli(capsys, "list", str(archive))
    assert rc == 0
    assert "red[31m alert evil" in out
    assert not any(ord(c) < 32 and c != "\n" or 0x7F <= ord(c) <= 0x9F for c in out), repr(out)
    assert "\u202e" not in out
    rc, out, _ = _cli(capsys, "show", str(archive), "microstructure003")
    assert rc == 0 and "\x1b" not in out and "\\u001b" not in out
