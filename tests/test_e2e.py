"""The whole demo pipeline for real, on a reduced config: every stage runs, a second run has
nothing to do, and deleting one entry's cube rebuilds only that entry's downstream files.

Three demo ids keep it to about a minute: 003 (two-phase) and 005 (two-phase) are included,
024 is a near-duplicate of 003 that the uniqueness filter must exclude.
"""

from __future__ import annotations

import json
import re
import zipfile

import pytest
import yaml
from workflow_helpers import finished_jobs, snakemake, workflow_copy

REDUCED = {
    "source": {"ids": "3,5,24"},
    "inpaint": {"iterations": 10, "opt_steps": 20, "opt_restarts": 1},
    "train": {"iterations": 12, "checkpoint_every": 5},
    "generate": {"size": 64},
    "validate": {"tortuosity": False},
    "families": None,  # the demo's family members (36-38) are not among these ids
}
RUN = ("--cores", "2", "--configfile", "config/demo.yaml", "config/e2e.yaml")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    wf = workflow_copy(tmp_path_factory.mktemp("e2e"))
    (wf / "config/e2e.yaml").write_text(yaml.safe_dump(REDUCED))
    proc = snakemake(wf, *RUN, timeout=1200)
    return wf, proc.stdout + proc.stderr


def test_the_demo_run_produces_a_valid_dataset(run):
    from jsonschema import validate

    wf, _ = run
    data = wf / "data"
    anns = json.loads((data / "microlibDataset/data_anns.json").read_text())
    schema = yaml.safe_load((wf / "workflow/schemas/data_anns.schema.yaml").read_text())
    validate(anns, schema)
    names = sorted(r["name"] for r in anns.values())
    assert names == ["microstructure003", "microstructure005"]
    excluded = json.loads((data / "microlibDataset/excluded.json").read_text())
    assert set(excluded) == {"000024"}, excluded
    (rec,) = excluded.values()
    assert "uniqueness" in rec["criteria"], rec
    with zipfile.ZipFile(data / "microlibDataset.zip") as zf:
        members = set(zf.namelist())
    for name in names:
        for suffix in (".tif", "_Gen.pt", "_params.data", "_inpainted.png", "_original.png"):
            assert any(m.endswith(f"{name}/{name}{suffix}") for m in members), (name, suffix)
    assert any(m.endswith("data_anns.json") for m in members)


def test_a_second_run_has_nothing_to_do(run):
    wf, _ = run
    # Snakemake touches outputs after each job: a packaged file sharing an inode with a
    # pipeline file would make that file newer than its consumers (seen with hard links)
    data = wf / "data"
    inodes = {
        p.stat().st_ino: p
        for p in data.rglob("*")
        if p.is_file() and "microlibDataset" not in p.parts
    }
    shared = [
        (p, inodes[p.stat().st_ino])
        for p in (data / "microlibDataset").rglob("*")
        if p.is_file() and p.stat().st_ino in inodes
    ]
    assert not shared, shared[:3]
    out = snakemake(wf, *RUN, "-n")
    text = out.stdout + out.stderr
    assert "Nothing to be done" in text, text[-3000:]


def test_deleting_one_cube_rebuilds_only_that_entry_by_name(run):
    wf, _ = run
    name = "microstructure005"
    cube = wf / f"data/volumes/{name}.tif"
    other = wf / "data/microlibDataset/microstructure003/microstructure003.tif"
    other_mtime = other.stat().st_mtime_ns
    # both copies: Snakemake (by design) does not rerun a job whose outputs exist just
    # because an intermediate input is gone, so removing only data/volumes/ does nothing
    cube.unlink()
    (wf / f"data/microlibDataset/{name}/{name}.tif").unlink()
    proc = snakemake(wf, name, *RUN)
    log = proc.stdout + proc.stderr
    assert sorted(finished_jobs(log)) == ["generate", "media", "package_entry", "validate"], log[
        -3000:
    ]
    # every job that ran was for this entry
    wildcards = re.findall(r"^\s+wildcards: (.*)$", log, re.M)
    assert wildcards and all(w == f"name={name}" for w in wildcards), wildcards
    assert cube.is_file()
    assert (wf / f"data/microlibDataset/{name}/{name}.tif").is_file()
    assert other.stat().st_mtime_ns == other_mtime


def test_forcerun_with_a_named_target_touches_only_that_entry(run):
    wf, _ = run
    out = snakemake(
        wf, "microstructure003", *RUN, "-n", "--quiet", "rules", "--forcerun", "generate"
    ).stdout
    planned = dict(re.findall(r"^(\w+)\s+(\d+)\s*$", out, re.M))
    planned.pop("total", None)
    planned = {k: int(v) for k, v in planned.items() if not k.startswith("microstructure")}
    assert planned == {"generate": 1, "validate": 1, "media": 1, "package_entry": 1}, out


def test_the_zip_serves_users_through_the_dataset_cli(run, tmp_path, capsys):
    """What a user does with the download: list, show, extract, synthesise a new volume."""
    from microlib.cli import main
    from microlib.io import read_tif

    wf, _ = run
    archive = str(wf / "data/microlibDataset.zip")
    assert main(["dataset", "list", archive]) == 0
    listed = capsys.readouterr().out
    assert "microstructure003" in listed and "microstructure005" in listed
    assert main(["dataset", "list", archive, "--excluded"]) == 0
    assert "uniqueness" in capsys.readouterr().out
    assert main(["dataset", "show", archive, "microstructure005"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "microstructure005"
    out = tmp_path / "new.tif"
    assert (
        main(
            [
                "dataset",
                "synthesise",
                archive,
                "microstructure005",
                "--size",
                "32,32,64",
                "--seed",
                "3",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    vol = read_tif(out)
    assert vol.shape == (32, 32, 64) and set(map(int, vol.ravel()[:4096])) <= {0, 1}
    assert main(["dataset", "extract", archive, str(tmp_path / "x")]) == 0
    assert any((tmp_path / "x").rglob("data_anns.json"))
    assert any((tmp_path / "x").rglob("microstructure003_Gen.pt"))


def test_the_run_report_and_the_checksums(run, tmp_path):
    """`snakemake --report` gives one self-contained HTML with the dataset summary figure,
    the excluded entries and every preview; both SHA256SUMS files verify."""
    import shutil
    import subprocess

    wf, _ = run
    report = tmp_path / "report.html"
    snakemake(wf, "--report", str(report), *RUN[2:])
    text = report.read_text()
    for name in ("summary.svg", "excluded.html"):
        assert name in text
    for name in ("microstructure003", "microstructure005"):
        assert f"{name}_preview.png" in text
    if shutil.which("sha256sum"):
        from microlib.dataset import safe_extract

        subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=wf / "data", check=True)
        # inside the zip (the folder may hold an entry rebuilt by name since it was zipped)
        safe_extract(wf / "data/microlibDataset.zip", tmp_path / "x")
        subprocess.run(
            ["sha256sum", "-c", "--quiet", "SHA256SUMS"],
            cwd=tmp_path / "x/microlibDataset",
            check=True,
        )
