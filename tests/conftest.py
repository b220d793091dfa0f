"""Shared fixtures.

Real reference data (MicroLib's final training micrographs and hand annotations, a real
128^3 three-phase volume, original SliceGAN parameter files; the layout is in
CONTRIBUTING.md, "Tests") is third-party material kept out of the repository. Tests read
it only through the ``realdata`` fixture: the folder named by ``MICROLIB_REALDATA``, else
``shared/realdata`` next to the checkout; they skip when neither exists.
"""

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
        pytest.skip("no real reference data (set MICROLIB_REALDATA; see CONTRIBUTING.md, Tests)")
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
