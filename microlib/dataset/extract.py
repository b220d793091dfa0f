"""Safe zip extraction: no member leaves the target, no bomb, nothing left half-done.

Every member is checked before anything is written (paths, links, name clashes, declared
sizes and compression ratios); the bytes actually inflated are counted again while they
stream, because a crafted archive can lie about its sizes. Files are written into a
temporary folder beside the target and moved into place only when every member was
read and its CRC checked, so a failure leaves the target as it was.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from microlib.errors import MicrolibError

MAX_BYTES = 200 * 1024**3
MAX_RATIO = 200.0
# members this small cannot hurt whatever their ratio (a run of zeros compresses ~1000:1)
RATIO_FLOOR_BYTES = 1 << 20
_CHUNK = 1 << 20


def check_member(name: str, target: Path) -> Path:
    """Where a zip member would land under ``target``; raise if it would leave it.

    Rejects absolute paths, drive letters, ``..`` components and anything whose
    resolved path is outside ``target``.
    """
    pure = PurePosixPath(name.replace("\\", "/"))
    if (
        pure.is_absolute()
        or ".." in pure.parts
        or (pure.parts and ":" in pure.parts[0])
        or not pure.parts
    ):
        raise MicrolibError(f"zip member {name!r} would be written outside {target}")
    dest = (target / Path(*pure.parts)).resolve()
    root = target.resolve()
    if dest != root and root not in dest.parents:
        raise MicrolibError(f"zip member {name!r} would be written outside {target}")
    return dest


def _open_zip(archive: str | os.PathLike) -> zipfile.ZipFile:
    path = Path(archive)
    if not path.exists():
        raise MicrolibError(f"{path}: no such file")
    if path.is_dir():
        raise MicrolibError(f"{path} is a folder, not a zip archive")
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise MicrolibError(f"{path} is not a readable zip archive ({exc})") from None


def plan_members(
    zf: zipfile.ZipFile,
    members: Iterable[str] | None = None,
    max_bytes: int = MAX_BYTES,
    max_ratio: float = MAX_RATIO,
) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """Check the members of an open archive and return ``(info, relative path)`` pairs.

    Raises
    ------
    MicrolibError
        On a member outside the target, a symbolic link, a duplicate name, a name that is
        both a file and a folder, a compression ratio above ``max_ratio`` (members over
        1 MiB) or a total declared size above ``max_bytes``.
    """
    infos = zf.infolist()
    if members is not None:
        wanted = set(members)
        infos = [i for i in infos if i.filename in wanted]
        missing = wanted - {i.filename for i in infos}
        if missing:
            raise MicrolibError(f"not in {zf.filename}: {', '.join(sorted(missing))}")
    plan: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
    files: set[PurePosixPath] = set()
    dirs: set[PurePosixPath] = set()
    total = 0
    probe = Path("/nonexistent-root")
    for info in infos:
        if stat.S_ISLNK(info.external_attr >> 16):
            raise MicrolibError(f"zip member {info.filename!r} is a symbolic link; refused")
        check_member(info.filename, probe)
        rel = PurePosixPath(info.filename.replace("\\", "/"))
        parents = set(rel.parents) - {PurePosixPath(".")}
        if info.is_dir():
            dirs.add(rel)
        elif rel in files:
            raise MicrolibError(f"zip member {info.filename!r} appears twice; refused")
        else:
            files.add(rel)
        dirs |= parents
        if info.file_size > RATIO_FLOOR_BYTES and info.file_size > max_ratio * max(
            info.compress_size, 1
        ):
            raise MicrolibError(
                f"zip member {info.filename!r} inflates {info.file_size / max(info.compress_size, 1):.0f}:1"
                f" (> {max_ratio:g}:1 limit); refused as a zip bomb"
            )
        total += info.file_size
        plan.append((info, rel))
    clash = files & dirs
    if clash:
        raise MicrolibError(f"zip member {str(min(clash))!r} is both a file and a folder; refused")
    if total > max_bytes:
        raise MicrolibError(
            f"{zf.filename} would expand to {total / 1e9:.3g} GB"
            f" (> {max_bytes / 1e9:.3g} GB limit); refused"
        )
    return plan


def _inflate(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path, budget: int, max_ratio: float
) -> int:
    """Stream one member to ``dest``; return the bytes written, enforcing the caps."""
    written = 0
    limit = info.file_size
    if info.file_size > RATIO_FLOOR_BYTES:
        limit = min(limit, int(max_ratio * max(info.compress_size, 1)))
    with zf.open(info) as src, open(dest, "wb") as out:
        while chunk := src.read(_CHUNK):
            written += len(chunk)
            if written > limit or written > budget:
                raise MicrolibError(
                    f"zip member {info.filename!r} inflates beyond its declared size"
                    " or the size limit; refused as a zip bomb"
                )
            out.write(chunk)
    return written


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _merge(staging: Path, target: Path) -> None:
    """Move the staged tree into an existing ``target`` (files replace files)."""
    for src in sorted(staging.rglob("*")):
        dest = target / src.relative_to(staging)
        if src.is_dir():
            if dest.exists() and not dest.is_dir():
                raise MicrolibError(f"{dest} exists and is not a folder")
            dest.mkdir(exist_ok=True)
        else:
            if dest.is_dir():
                raise MicrolibError(f"{dest} exists and is a folder")
            os.replace(src, dest)


def safe_extract(
    archive: str | os.PathLike,
    target: str | os.PathLike,
    members: Iterable[str] | None = None,
    max_bytes: int = MAX_BYTES,
    max_ratio: float = MAX_RATIO,
) -> list[Path]:
    """Extract ``archive`` (or only ``members``) into ``target`` without leaving it.

    Parameters
    ----------
    archive : path
        The zip file.
    target : path
        The folder to extract into; created if missing, merged into if present.
    members : iterable of str, optional
        Only these member names.
    max_bytes : int
        Cap on the total inflated size (declared and actual).
    max_ratio : float
        Cap on the inflated / compressed size of any member over 1 MiB.

    Returns
    -------
    list of Path
        The files written, in archive order.

    Raises
    ------
    MicrolibError
        On any refused member (see :func:`plan_members`), a corrupt member (CRC error),
        or a target that is a file. Nothing is written in that case.
    """
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise MicrolibError(f"{target} exists and is not a folder")
    with _open_zip(archive) as zf:
        plan = plan_members(zf, members, max_bytes, max_ratio)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            budget = max_bytes
            for info, rel in plan:
                dest = staging.joinpath(*rel.parts)
                if info.is_dir():
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                try:
                    budget -= _inflate(zf, info, dest, budget, max_ratio)
                except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
                    raise MicrolibError(
                        f"{archive}: member {info.filename!r} is corrupt ({exc})"
                    ) from None
            if target.is_dir():
                _merge(staging, target)
            else:
                # mkdtemp made it 0700; the unpacked dataset gets a plain folder's mode
                os.chmod(staging, 0o777 & ~_umask())
                os.rename(staging, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(staging)
    return [target.joinpath(*rel.parts) for info, rel in plan if not info.is_dir()]


def extract_archive(
    archive: str | os.PathLike,
    target: str | os.PathLike,
    max_bytes: int = MAX_BYTES,
    max_ratio: float = MAX_RATIO,
) -> list[Path]:
    """Extract a whole downloaded dataset; refuse to overwrite anything already there.

    Like :func:`safe_extract`, but a member whose destination already exists is refused
    before anything is written, so a user's files are never replaced silently.
    """
    target = Path(target)
    if target.is_dir():
        with _open_zip(archive) as zf:
            for info, rel in plan_members(zf, None, max_bytes, max_ratio):
                dest = target.joinpath(*rel.parts)
                if dest.exists() and not (info.is_dir() and dest.is_dir()):
                    raise MicrolibError(f"{dest} already exists; extract into a new folder")
    return safe_extract(archive, target, None, max_bytes, max_ratio)
