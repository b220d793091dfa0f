"""Run the real Snakemake workflow in an isolated copy of the repository's workflow files."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def workflow_copy(dest: Path) -> Path:
    """Copy what a run needs (Snakefile, workflow/, config/, slurm/, profiles) to ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / "Snakefile", dest / "Snakefile")
    shutil.copy2(ROOT / "environment.yml", dest / "environment.yml")
    for folder in ("workflow", "config", "slurm"):
        shutil.copytree(ROOT / folder, dest / folder, symlinks=True)
    if not (dest / "profiles").exists():
        os.symlink("workflow/profiles", dest / "profiles")
    return dest


def env() -> dict[str, str]:
    e = dict(os.environ)
    # rules call `microlib`; make the venv's entry points visible like `make` does
    e["PATH"] = f"{BIN}{os.pathsep}{e.get('PATH', '')}"
    e.setdefault("PYTHONUNBUFFERED", "1")
    return e


def snakemake(
    workdir: Path, *args: str, timeout: float = 1800, check: bool = True
) -> subprocess.CompletedProcess:
    """``snakemake ARGS`` in ``workdir`` (stdout+stderr captured, text)."""
    cmd = [str(BIN / "snakemake"), *args]
    proc = subprocess.run(
        cmd, cwd=workdir, env=env(), capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({proc.returncode}):\n"
            f"{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


def finished_jobs(log: str) -> list[str]:
    """Rules of the jobs a Snakemake run finished, in order; target-only rules (the named
    ``microstructureNNN`` targets, ``all``) left out."""
    return [
        r
        for r in re.findall(r"Finished jobid: \d+ \(Rule: (\w+)\)", log)
        if not r.startswith("microstructure") and r != "all"
    ]
