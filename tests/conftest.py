"""Shared fixtures. Real reference data lives beside the project (``../shared/realdata``)
and is never copied in; tests that need it skip when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def realdata_dir() -> Path | None:
    env = os.environ.get("MICROLIB_REALDATA")
    candidates = [Path(env)] if env else []
    candidates.append(ROOT.parent / "shared" / "realdata")
    for c in candidates:
        if c.is_dir():
            return c
    return None


@pytest.fixture
def realdata() -> Path:
    d = realdata_dir()
    if d is None:
        pytest.skip("../shared/realdata is absent (set MICROLIB_REALDATA to run)")
    return d


@pytest.fixture(autouse=True)
def _single_thread_torch():
    # 2-core CI: keep each test from oversubscribing the machine
    try:
        import torch
    except ImportError:  # pragma: no cover
        yield
        return
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
