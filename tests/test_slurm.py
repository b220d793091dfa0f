"""The cluster profile against a real one-node SLURM on 127.0.0.1 (`make test-slurm`, CI).

Brings the cluster up with tests/slurm/start.sh (Debian slurm-wlm + munge, as root),
runs the demo workflow (a short training budget) through `snakemake --cores 8 --profile
slurm`, compares it with a local run, reruns one entry by name, and preempts a training job
with SIGTERM.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from workflow_helpers import ROOT, env, finished_jobs, snakemake, workflow_copy

pytestmark = pytest.mark.slurm

# the demo with a short training budget: these tests check the cluster profile (every job
# through sbatch, the same outputs as a local run, reruns, preemption), not fidelity, and
# the full budget twice over took most of CI's time
PROFILE_RUN = ("--cores", "8", "--profile", "slurm", "--configfile", "config/cluster.yaml")
CLUSTER_ITERATIONS = 100


def cluster_copy(dest: Path) -> Path:
    """A workflow copy whose ``config/cluster.yaml`` is the demo at CLUSTER_ITERATIONS."""
    wf = workflow_copy(dest)
    cfg = yaml.safe_load((wf / "config/demo.yaml").read_text())
    cfg["train"].update(iterations=CLUSTER_ITERATIONS, checkpoint_every=50)
    for fam in cfg.get("families", {}).values():
        fam["iterations"] = CLUSTER_ITERATIONS
    (wf / "config/cluster.yaml").write_text(yaml.safe_dump(cfg))
    return wf


def _sh(*cmd: str) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("a one-node SLURM needs root to start munged/slurmctld/slurmd")
    if shutil.which("apt-get") is None and shutil.which("slurmctld") is None:
        pytest.skip("neither Debian's apt-get nor an installed slurmctld is available")
    state = tmp_path_factory.mktemp("slurm-state")
    e = dict(os.environ, STATE_DIR=str(state))
    start = subprocess.run(
        ["bash", str(ROOT / "tests/slurm/start.sh")],
        env=e,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if start.returncode != 0:
        subprocess.run(["bash", str(ROOT / "tests/slurm/stop.sh")], env=e)
        pytest.fail(f"SLURM did not start:\n{start.stdout}\n{start.stderr}")
    yield state
    subprocess.run(["bash", str(ROOT / "tests/slurm/stop.sh")], env=e, timeout=120)


def scheduler_jobs() -> dict[int, dict[str, str]]:
    """Every job the controller knows (finished ones stay: MinJobAge=3600)."""
    out = _sh("squeue", "-h", "--states=all", "-o", "%i|%k|%T")
    jobs = {}
    for line in out.splitlines():
        jid, comment, state = line.split("|")
        jobs[int(jid)] = {"comment": comment, "state": state}
    return jobs


def rule_of(comment: str) -> str:
    """Rule name from the plugin's job comment ``rule_<rule>[_wildcards_<values>]``."""
    return re.fullmatch(r"rule_(.+?)(?:_wildcards_.*)?", comment).group(1)


def completed_in_jobcomp(state_dir: Path) -> set[int]:
    text = (state_dir / "jobcomp.log").read_text()
    return {int(m.group(1)) for m in re.finditer(r"JobId=(\d+) .*?JobState=COMPLETED", text)}


def submitted(log: str) -> dict[int, int]:
    """snakemake job id -> SLURM job id, from the run's output."""
    return {
        int(a): int(b)
        for a, b in re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", log)
    }


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    wf = cluster_copy(tmp_path_factory.mktemp("local"))
    snakemake(wf, "--cores", "2", "--configfile", "config/cluster.yaml", timeout=3600)
    return wf


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory):
    wf = cluster_copy(tmp_path_factory.mktemp("viaslurm"))
    before = set(scheduler_jobs())
    proc = snakemake(wf, *PROFILE_RUN, timeout=3600)
    log = proc.stdout + proc.stderr
    return wf, log, before


def _anns(wf: Path) -> dict:
    return json.loads((wf / "data/microlibDataset/data_anns.json").read_text())


def test_demo_runs_through_the_profile_every_job_via_sbatch(cluster, slurm_run):
    wf, log, before = slurm_run
    assert (wf / "data/microlibDataset.zip").is_file()
    ran = finished_jobs(log)
    subs = submitted(log)
    assert ran and len(subs) == len(ran), (len(subs), len(ran))
    # every job Snakemake ran is a SLURM job the scheduler recorded as COMPLETED
    jobs = scheduler_jobs()
    new = {j: info for j, info in jobs.items() if j not in before}
    assert set(subs.values()) <= set(new)
    assert all(new[j]["state"] == "COMPLETED" for j in subs.values()), new
    assert set(subs.values()) <= completed_in_jobcomp(cluster)
    rules_in_scheduler = {rule_of(new[j]["comment"]) for j in subs.values()}
    assert {
        "demo_site",
        "scrape",
        "select",
        "annotate",
        "segment",
        "inpaint",
        "train",
        "generate",
        "validate",
        "media",
        "package_entry",
        "package",
    } <= rules_in_scheduler


def test_profile_outputs_equal_the_local_run(local_run, slurm_run):
    wf, _, _ = slurm_run
    local, remote = _anns(local_run), _anns(wf)
    assert [r["name"] for r in local.values()] == [r["name"] for r in remote.values()]
    assert len(local) >= 4
    ex_l = json.loads((local_run / "data/microlibDataset/excluded.json").read_text())
    ex_r = json.loads((wf / "data/microlibDataset/excluded.json").read_text())
    assert {k: v["criteria"] for k, v in ex_l.items()} == {
        k: v["criteria"] for k, v in ex_r.items()
    }
    for rec in local.values():
        name = rec["name"]
        m_l = json.loads((local_run / f"data/metrics/{name}.json").read_text())["summary"]
        m_r = json.loads((wf / f"data/metrics/{name}.json").read_text())["summary"]
        for key, value in m_l.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                assert m_r[key] == pytest.approx(value, rel=0.05, abs=0.5), (name, key)


def test_rerun_one_entry_by_name_submits_only_its_jobs(cluster, slurm_run):
    wf, _, _ = slurm_run
    name = next(iter(_anns(wf).values()))["name"]
    (wf / f"data/volumes/{name}.tif").unlink()
    (wf / f"data/microlibDataset/{name}/{name}.tif").unlink()
    before = set(scheduler_jobs())
    proc = snakemake(wf, name, *PROFILE_RUN, timeout=1800)
    log = proc.stdout + proc.stderr
    new = {j: i for j, i in scheduler_jobs().items() if j not in before}
    assert set(submitted(log).values()) == set(new)
    comments = sorted(i["comment"] for i in new.values())
    # the plugin's job comment: rule_<rule>_wildcards_<wildcard values>
    assert comments and all(c.endswith(f"_wildcards_{name}") for c in comments), comments
    rules = {rule_of(c) for c in comments}
    assert rules == {"generate", "validate", "media", "package_entry"}
    assert (wf / f"data/microlibDataset/{name}/{name}.tif").is_file()


def test_training_job_sent_sigterm_is_resubmitted_and_resumes(cluster, tmp_path):
    wf = workflow_copy(tmp_path / "preempt")
    cfg = yaml.safe_load((wf / "config/demo.yaml").read_text())
    # long enough to be caught mid-run, checkpoints often
    cfg["train"].update(iterations=400, checkpoint_every=10)
    cfg["source"]["ids"] = "5"
    cfg.pop("families", None)  # its members are not among these ids
    (wf / "config/preempt.yaml").write_text(yaml.safe_dump(cfg))
    run = ("--cores", "8", "--profile", "slurm", "--configfile", "config/preempt.yaml")
    # everything before training first (so the scheduler runs only training after);
    # --omit-from, not --until: the in-paint jobs exist only once the select checkpoint ran
    name = "microstructure005"
    first = snakemake(wf, "--omit-from", "train", *run, timeout=1800)
    assert (wf / f"data/training/{name}.png").is_file(), first.stdout[-3000:]
    before = set(scheduler_jobs())  # earlier tests' jobs stay listed (MinJobAge)
    target = f"data/models/{name}/{name}_Gen.pt"
    log_path = tmp_path / "preempt.log"
    with open(log_path, "w") as logf:
        proc = subprocess.Popen(
            [str(Path(env()["PATH"].split(os.pathsep)[0]) / "snakemake"), target, *run],
            cwd=wf,
            env=env(),
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        state = wf / f"data/models/{name}/resume/state.pt"
        deadline = time.time() + 900
        jid = None
        while time.time() < deadline and proc.poll() is None:
            running = [
                j
                for j, i in scheduler_jobs().items()
                if i["state"] == "RUNNING" and i["comment"] == f"rule_train_wildcards_{name}"
            ]
            if running and state.exists():
                jid = running[0]
                break
            time.sleep(1)
        assert jid is not None, log_path.read_text()[-4000:]
        subprocess.run(["scancel", "--signal=TERM", str(jid)], check=True)
        proc.wait(timeout=1800)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(timeout=120)
    log = log_path.read_text()
    assert proc.returncode == 0, log[-4000:]
    train_jobs = {
        j: i
        for j, i in scheduler_jobs().items()
        if j not in before and i["comment"] == f"rule_train_wildcards_{name}"
    }
    states = sorted(i["state"] for i in train_jobs.values())
    assert states == ["COMPLETED", "FAILED"], train_jobs
    rule_log = (wf / f"data/logs/train/{name}.log").read_text()
    assert re.search(r"resum\w* from iteration (\d+)", rule_log, re.I), rule_log[-3000:]
    params = json.loads((wf / f"data/models/{name}/{name}_params.json").read_text())
    assert params["finished"] is True
    assert params["training"]["iterations_done"] == 400
    assert not (wf / f"data/models/{name}/resume").exists()
    assert first.returncode == 0


def test_readme_cluster_command_runs_a_real_job_from_a_fresh_shell(cluster, tmp_path):
    """The README's cluster command after `source .venv/bin/activate`, in a shell with
    nothing else set up: its first job goes through sbatch and finds `microlib`. (With the
    offline demo's config and its first target: the real config would scrape the internet.)"""
    wf = workflow_copy(tmp_path / "fresh")
    venv = Path(env()["PATH"].split(os.pathsep)[0]).parent
    # what a login shell has before anything of ours is set up
    fresh = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path)}
    fresh.update({k: os.environ[k] for k in ("USER", "LOGNAME") if k in os.environ})
    # a development checkout may be importable only through PYTHONPATH; `make install`
    # (pip install -e .) needs nothing
    if os.environ.get("PYTHONPATH"):
        fresh["PYTHONPATH"] = os.environ["PYTHONPATH"]
    script = (
        f"source {venv}/bin/activate && "
        # the target first: --configfile takes every word after it
        "snakemake data/demo_site --cores 8 --profile slurm --configfile config/demo.yaml"
    )
    before = set(scheduler_jobs())
    proc = subprocess.run(
        ["bash", "-c", script], cwd=wf, env=fresh, capture_output=True, text=True, timeout=900
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert finished_jobs(log) == ["demo_site"], log[-3000:]
    subs = submitted(log)
    new = {j: i for j, i in scheduler_jobs().items() if j not in before}
    assert len(subs) == 1 and set(subs.values()) <= set(new), (subs, new)
    assert all(new[j]["state"] == "COMPLETED" for j in subs.values()), new
    assert any((wf / "data/demo_site").rglob("*.jpg"))
    assert "command not found" not in (wf / "data/logs/demo_site.log").read_text()
