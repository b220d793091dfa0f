"""Errors reported as one line: :class:`MicrolibError` and the common expected exceptions.

Stages raise :class:`MicrolibError` for bad input. The CLI (``microlib.cli.main``) is the
one place that turns errors into a line ``microlib <cmd>: error: <entry>: <reason>``; for
exceptions that are expected from bad files (missing, unreadable, truncated, not JSON, not
an image, not a zip, ...) :func:`expected_error_line` gives that line's ``<entry>: <reason>``
so no traceback reaches the user. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import re
import sys
import zipfile
from types import TracebackType


class MicrolibError(Exception):
    """Bad input or an unrecoverable condition, reported as one line.

    Parameters
    ----------
    reason : str
        What is wrong, phrased for the user.
    entry : str, optional
        The entry (DoITPoMS id or ``microstructureNNN``) the error belongs to; the CLI
        prefixes the line with it so a log names the culprit.
    """

    def __init__(self, reason: str, entry: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.entry = entry

    def __str__(self) -> str:
        return f"{self.entry}: {self.reason}" if self.entry else self.reason


# (exception class, plain description), most specific first: the first match wins.
# UnicodeDecodeError and JSONDecodeError are ValueErrors, PIL's UnidentifiedImageError is
# an OSError without an errno, so they must come before the generic cases.
_DECODE_ERRORS: tuple[tuple[type[BaseException], str], ...] = (
    (json.JSONDecodeError, "not valid JSON"),
    (UnicodeDecodeError, "not UTF-8 text"),
    (zipfile.BadZipFile, "not a readable zip file"),
    (EOFError, "the file ends too early (empty or truncated)"),
    (pickle.UnpicklingError, "not a readable pickle or weights file"),
    (RecursionError, "nested too deeply to read"),
)

# local variable names that hold the file being read in the frames of a traceback
# (ours: path, fh; the stdlib's, PIL's and torch's readers: file, filename, fp, f)
_PATH_NAMES = ("path", "filename", "file", "fp", "fh", "f", "p", "src")
_MAX_DETAIL = 200


def first_line(exc: BaseException, limit: int = 200) -> str:
    """First line of an exception's message, or its type name when the message is empty
    (``str(EOFError())`` is ``''``)."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


def _one_line(text: str) -> str:
    """Collapse line breaks so a message never spans lines in a log."""
    return re.sub(r"\s*\n\s*", " ", text).strip()


def _pil_unidentified() -> type[BaseException] | None:
    # PIL is imported by whatever read the image; if it is not imported, the error is not PIL's
    pil = sys.modules.get("PIL")
    return getattr(pil, "UnidentifiedImageError", None) if pil else None


def _as_file(value: object) -> str | None:
    """``value`` as the name of an existing file, if it is one (a path or an open file)."""
    if isinstance(value, io.IOBase):
        value = getattr(value, "name", None)
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value or len(value) > 4096 or "\0" in value:
        return None
    try:
        return value if os.path.isfile(value) else None
    except (OSError, ValueError):
        return None


def file_in_traceback(tb: TracebackType | None) -> str | None:
    """The file being read where an exception was raised, when a frame names one.

    Walks the traceback from the innermost frame outwards and returns the first local
    variable with a conventional name (``path``, ``fh``, ``fp``, ...) that holds the path
    of an existing file or an open file object.

    Parameters
    ----------
    tb : traceback or None
        ``exc.__traceback__``.

    Returns
    -------
    str or None
        The path as the program spelled it, or None when no frame names a file.
    """
    frames = []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):
        local = frame.f_locals
        for name in _PATH_NAMES:
            found = _as_file(local.get(name))
            if found:
                return found
    return None


def _detail(exc: BaseException) -> str:
    text = _one_line(str(exc))
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 3] + "..."


def expected_error_line(exc: BaseException) -> str | None:
    """``<file>: <reason>`` for an exception expected from bad input files, else None.

    Covers OSErrors that carry an errno (``FileNotFoundError``, ``PermissionError``,
    ``IsADirectoryError``, ``NotADirectoryError``, a full disk, ...), naming the path, and
    ``EOFError``, ``pickle.UnpicklingError``, ``zipfile.BadZipFile``,
    ``json.JSONDecodeError``, ``UnicodeDecodeError``, ``PIL.UnidentifiedImageError`` and
    ``RecursionError``, naming the file when a frame of the traceback holds it. The reason
    is never empty: an exception without a message (``EOFError()``) is described by its
    class name and a plain description.

    Parameters
    ----------
    exc : BaseException
        The exception that reached the CLI.

    Returns
    -------
    str or None
        One line without the ``microlib <cmd>: error:`` prefix; None for an exception that
        is not expected (a bug), which should keep its traceback.
    """
    kind = type(exc).__name__
    unidentified = _pil_unidentified()
    if unidentified is not None and isinstance(exc, unidentified):
        where = file_in_traceback(exc.__traceback__)
        reason = f"not an image this program can read ({kind})"
        return f"{where}: {reason}" if where else f"{reason}: {_detail(exc)}"
    for cls, description in _DECODE_ERRORS:
        if isinstance(exc, cls):
            detail = _detail(exc)
            reason = f"{description} ({kind}: {detail})" if detail else f"{description} ({kind})"
            where = file_in_traceback(exc.__traceback__)
            return f"{where}: {reason}" if where else reason
    if isinstance(exc, OSError) and exc.errno is not None:
        reason = _one_line(exc.strerror or "") or kind
        # two paths come from a rename (microlib.io writes a temp file, then renames it onto
        # the target): the target is the path the user named
        where = exc.filename2 if exc.filename2 is not None else exc.filename
        if where is None:
            return reason.lower()
        name = os.fsdecode(where) if isinstance(where, str | bytes | os.PathLike) else str(where)
        return f"{name}: {reason.lower()}"
    return None
