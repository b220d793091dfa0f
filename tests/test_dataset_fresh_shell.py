"""The README's run command works as typed in a fresh shell: `.venv/bin/snakemake` with
nothing activated and no `microlib` on PATH still runs real jobs (the rules call the
`microlib` installed beside the Python that runs Snakemake)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from workflow_helpers import BIN, finished_jobs, workflow_copy

FRESH_PATH = "/usr/bin:/bin"


def test_the_first_real_job_runs_in_a_fresh_shell(tmp_path):
    assert shutil.which("microlib", path=FRESH_PATH) is None, "microlib must not be on PATH"
    wf = workflow_copy(tmp_path / "wf")
    env = {"PATH": FRESH_PATH, "HOME": os.environ.get("HOME", str(tmp_path))}
    # a development checkout may be importable only through PYTHONPATH; a user's install
    # (pip install -e . into .venv) needs nothing
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    cmd = [
        str(BIN / "snakemake"),
        "data/demo_site",  # the demo's first job: writes the DoITPoMS-shaped site
        "--cores",
        "1",
        "--configfile",
        "config/demo.yaml",
    ]
    proc = subprocess.run(cmd, cwd=wf, env=env, capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert finished_jobs(log) == ["demo_site"], log[-3000:]
    site = Path(wf / "data/demo_site")
    assert any(site.rglob("*.jpg")), sorted(site.iterdir())
    assert "command not found" not in (wf / "data/logs/demo_site.log").read_text()
