"""Families in the pipeline: config checks, the family target, packaging and the reader.

The CLI chain (train with --codes, generate at each code, `microlib family metrics|sweep`,
`microlib package family|dataset`, the dataset reader and `microlib dataset`) runs on
real files with a family trained for two iterations; the workflow tests use real
Snakemake runs (dry runs, and one reduced run of the demo's family, marked slow).
"""

from __future__ import annotations

import json
import re
import zipfile

import numpy as np
import pytest
import yaml
from scipy import ndimage
from workflow_helpers import finished_jobs, snakemake, workflow_copy

from microlib.cli import main
from microlib.dataset import Dataset
from microlib.io import read_json, read_tif, write_json, write_png
from tests.test_family import TINY_CLI

CODES = (0.15, 0.35, 0.6)
MEMBERS = ("microstructure036", "microstructure037", "microstructure038")


# --------------------------------------------------------------------------- config


def _planned(out: str) -> dict[str, int]:
    rows = dict(re.findall(r"^(\w+)\s+(\d+)\s*$", out, re.M))
    rows.pop("total", None)
    return {k: int(v) for k, v in rows.items()}


@pytest.fixture(scope="module")
def wf(tmp_path_factory):
    return workflow_copy(tmp_path_factory.mktemp("wf"))


def test_bad_families_fail_the_dry_run_with_one_line_each(wf):
    bad = {
        "families": {
            "unknown": {"members": {36: 0.1, 99: 0.5}},
            "single": {"members": {36: 0.1}},
            "twins": {"members": {36: 0.2, 37: 0.2, 38: 0.4}},
            "wordy": {"members": {36: 0.1, "microstructure037": "coarse"}},
            "outside": {"members": {36: 0.1, 37: 0.5}, "codes": [0.3, 0.9]},
            "typo": {"members": {36: 0.1, 37: 0.5}, "train": {"ema_decy": 0.9}},
        },
        "source": {"ids": "1-40"},
    }
    (wf / "bad_families.yaml").write_text(yaml.safe_dump(bad))
    proc = snakemake(
        wf,
        "-n",
        "--cores",
        "1",
        "--configfile",
        "config/demo.yaml",
        "bad_families.yaml",
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    lines = out.splitlines()
    for line in (
        "config: families.unknown: member microstructure099 is not among the configured ids "
        "(source.ids)",
        "config: families.single: a family needs at least 2 members, it has 1",
        "config: families.twins: duplicate code 0.2 (microstructure036, microstructure037): "
        "each member needs its own code",
        "config: families.wordy: the code of microstructure037 is not a number: 'coarse'",
        "config: families.outside: codes: 0.9 is outside the members' range [0.1, 0.5]",
        "config: families.typo: train.ema_decy: not an option of `microlib train`",
    ):
        assert line in lines, (line, out[-3000:])


def test_the_family_target_plans_the_family_jobs(wf):
    """`snakemake -n family_blobs` once the selection exists: the members' segment and
    inpaint jobs, then the family's own jobs; no per-entry training (individual: false)."""
    root = wf / "rf"
    (root / "raw").mkdir(parents=True)
    (root / "annotations").mkdir()
    ids = ["000036", "000037", "000038"]
    for i in ids:
        (root / "raw" / f"{i}.jpg").write_bytes(b"")
        (root / "raw" / f"{i}.json").write_text("{}")
    entries = {i: {"status": "present"} for i in ids}
    (root / "raw" / "index.json").write_text(json.dumps({"entries": entries}))
    for i in ids:
        (root / "annotations" / f"{i}.json").write_text("{}")
    sel = {"included": ids, "excluded": {}}
    (root / "annotations" / "selection.json").write_text(json.dumps(sel))
    fam = {"blobs": {"members": {36: 0.15, 37: 0.35, 38: 0.6}, "individual": False}}
    (wf / "fam.yaml").write_text(yaml.safe_dump({"families": fam}))
    args = ("--cores", "1", "--configfile", "fam.yaml", "--config", "results=rf")
    out = snakemake(wf, "family_blobs", "-n", "--quiet", "rules", *args).stdout
    planned = _planned(out)
    assert planned.pop("family_blobs") == 1
    assert planned == {
        "segment": 3,
        "inpaint": 3,
        "train_family": 1,
        "generate_family": 5,  # the members' codes and the midpoints between them
        "validate_family": 1,
        "media_family": 1,
        "package_family": 1,
    }, out


# --------------------------------------------------------------------------- CLI chain


def _member(sigma: float, seed: int, size: int = 64) -> np.ndarray:
    f = ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal((size, size)), sigma)
    return (f > np.median(f)).astype(np.uint8)


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """A family trained for two iterations, three cubes, metrics, sweep, package."""
    d = tmp_path_factory.mktemp("chain")
    images, metas = [], []
    for i, (name, sigma) in enumerate(zip(MEMBERS, (2.0, 3.3, 5.3), strict=True)):
        ident = int(name[-3:])
        meta = {"id": f"{ident:06d}", "data_type": "twophase", "n_phases": 2}
        meta |= {"phase_grey_values": [60.0, 190.0], "voxel_size_um": 0.5}
        write_png(d / f"{name}.png", _member(sigma, i), meta)
        images.append(str(d / f"{name}.png"))
        raw = {"id": ident, "name": name, "brief_descr": f"member {i}", "record_url": "u"}
        raw |= {"contributor": "A N Other", "organisation": "Uni X", "licence": "CC"}
        write_json(d / f"{ident:06d}.json", raw)
        metas.append(str(d / f"{ident:06d}.json"))
    codes = ",".join(map(str, CODES))
    model = d / "models/blobs"
    assert (
        main(
            ["train", *images, "--codes", codes, "--out", str(model), "--name", "blobs"] + TINY_CLI
        )
        == 0
    )
    vols = []
    for code in (0.15, 0.25, 0.6):
        vols.append(str(d / f"blobs_code{code}.tif"))
        gen = ["generate", str(model), "--code", str(code), "--size", "32", "--out", vols[-1]]
        assert main([*gen, "--threads", "1"]) == 0
    common = ["--name", "blobs", "--volumes", *vols, "--members", *images, "--codes", codes]
    assert main(["family", "metrics", *common, "--out", str(d / "blobs.json")]) == 0
    assert main(["family", "sweep", *common, "--out-dir", str(d / "media")]) == 0
    ds = d / "microlibDataset"
    assert (
        main(
            ["package", "family", "--name", "blobs", "--model-dir", str(model)]
            + ["--metrics", str(d / "blobs.json"), "--media-dir", str(d / "media")]
            + ["--raw-meta", *metas, "--no-individual", "--out-dir", str(ds / "families/blobs")]
        )
        == 0
    )
    write_json(d / "selection.json", {"included": [], "excluded": {}})
    assert (
        main(
            ["package", "dataset", "--selection", str(d / "selection.json")]
            + ["--dataset-dir", str(ds), "--zip", str(d / "microlibDataset.zip")]
            + ["--families", "blobs"]
        )
        == 0
    )
    return d


def test_feature_size_is_measured_at_every_code_and_member(chain):
    doc = read_json(chain / "blobs.json")
    assert [r["code"] for r in doc["codes"]] == [0.15, 0.25, 0.6]
    assert [r["code"] for r in doc["members"]] == list(CODES)
    at = {r["code"]: r for r in doc["codes"]}
    assert at[0.15]["training_code"] and not at[0.25]["training_code"]
    # the members' own sizes rise with the code (blur widths 2.0 / 3.3 / 5.3 px)
    sizes = [r["correlation_length_px"] for r in doc["members"]]
    assert sizes == sorted(sizes) and doc["summary"]["members_monotone"]
    assert at[0.15]["member_correlation_length_px"] == sizes[0]
    assert "member_correlation_length_px" not in at[0.25]
    assert isinstance(doc["summary"]["monotone"], bool)


def test_the_family_is_packaged_with_its_generator_sweep_and_credits(chain):
    folder = chain / "microlibDataset/families/blobs"
    names = sorted(p.name for p in folder.iterdir())
    assert names == [
        f"blobs{s}"
        for s in sorted(
            [
                "_Disc.pt",
                "_Gen.pt",
                "_metadata.json",
                "_metrics.json",
                "_params.json",
                "_sweep.gif",
                "_sweep.png",
            ]
        )
    ]
    index = read_json(chain / "microlibDataset/families.json")
    rec = index["blobs"]
    assert [m["name"] for m in rec["members"]] == list(MEMBERS)
    assert [m["code"] for m in rec["members"]] == list(CODES)
    assert all(not m["packaged_individually"] for m in rec["members"])
    assert rec["members"][0]["credit"].startswith("A N Other, Uni X")
    assert rec["code_range"] == [0.15, 0.6] and rec["codes"] == [0.15, 0.25, 0.6]
    from jsonschema import validate
    from workflow_helpers import ROOT

    validate(index, yaml.safe_load((ROOT / "workflow/schemas/families.schema.yaml").read_text()))
    # members packaged only in the family are still credited
    credits = (chain / "microlibDataset/CREDITS").read_text()
    assert all(name in credits for name in MEMBERS)
    assert "families/" in (chain / "microlibDataset/README").read_text()
    with zipfile.ZipFile(chain / "microlibDataset.zip") as zf:
        members = set(zf.namelist())
    assert "microlibDataset/families.json" in members
    assert "microlibDataset/families/blobs/blobs_Gen.pt" in members
    sums = (chain / "microlibDataset/SHA256SUMS").read_text()
    assert "families/blobs/blobs_params.json" in sums


def test_the_reader_and_the_cli_list_show_and_synthesise_a_family(chain, tmp_path, capsys):
    archive = str(chain / "microlibDataset.zip")
    with Dataset(archive) as ds:
        assert list(ds.families) == ["blobs"] and ds.names == []
        vol = ds.synthesise_family("blobs", 0.3, size=32, seed=1)
        assert vol.shape == (32, 32, 32) and set(np.unique(vol)) <= {0, 1}
        with pytest.raises(Exception, match="outside the trained range"):
            ds.synthesise_family("blobs", 0.9, size=32)
    assert main(["dataset", "list", archive, "--families"]) == 0
    listed = capsys.readouterr().out
    assert "blobs" in listed and "microstructure037@0.35" in listed
    assert main(["dataset", "show", archive, "blobs"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "blobs"
    out = tmp_path / "between.tif"
    cmd = ["dataset", "synthesise", archive, "blobs", "--code", "0.25", "--size", "32"]
    assert main([*cmd, "--out", str(out)]) == 0
    assert read_tif(out).shape == (32, 32, 32)
    assert main(["dataset", "synthesise", archive, "blobs", "--out", str(out)]) == 2
    assert "give --code" in capsys.readouterr().err


def test_a_dataset_without_families_has_no_index(chain, tmp_path):
    ds = chain / "microlibDataset"
    write_json(tmp_path / "selection.json", {"included": [], "excluded": {}})
    cmd = ["package", "dataset", "--selection", str(tmp_path / "selection.json")]
    assert main([*cmd, "--dataset-dir", str(ds), "--no-zip"]) == 0
    assert not (ds / "families.json").exists()
    with Dataset(ds) as reader:
        assert reader.families == {}
    # put it back for any later test of the module
    assert main([*cmd, "--dataset-dir", str(ds), "--no-zip", "--families", "blobs"]) == 0


# --------------------------------------------------------------------------- workflow

REDUCED = {
    "source": {"ids": "36-38"},
    "inpaint": {"iterations": 10, "opt_steps": 20, "opt_restarts": 1},
    "generate": {"size": 32},
    "validate": {"tortuosity": False},
    "families": {"blobs": {"iterations": 4, "size": 32, "codes": [0.15, 0.25, 0.6]}},
}
RUN = ("--cores", "2", "--configfile", "config/demo.yaml", "config/family.yaml")


@pytest.fixture(scope="module")
def family_run(tmp_path_factory):
    """The demo's family on three demo ids: the selection first, a dry run of the family
    target, then the whole run."""
    wf = workflow_copy(tmp_path_factory.mktemp("family_run"))
    (wf / "config/family.yaml").write_text(yaml.safe_dump(REDUCED))
    snakemake(wf, "data/annotations/selection.json", *RUN, timeout=600)
    dry = snakemake(wf, "family_blobs", *RUN, "-n", "--quiet", "rules", timeout=600).stdout
    proc = snakemake(wf, *RUN, timeout=1200)
    return wf, dry, proc.stdout + proc.stderr


@pytest.mark.slow
def test_the_family_target_plans_the_family_jobs_only(family_run):
    _, dry, _ = family_run
    planned = _planned(dry)
    assert planned.pop("family_blobs") == 1
    assert planned == {
        "segment": 3,
        "inpaint": 3,
        "train_family": 1,
        "generate_family": 3,
        "validate_family": 1,
        "media_family": 1,
        "package_family": 1,
    }, dry


@pytest.mark.slow
def test_the_demo_family_is_trained_once_and_packaged(family_run):
    wf, _, log = family_run
    jobs = finished_jobs(log)
    # members packaged only in the family: no per-entry generator
    assert "train" not in jobs and "package_entry" not in jobs
    assert jobs.count("train_family") == 1 and jobs.count("generate_family") == 3
    data = wf / "data"
    fams = read_json(data / "microlibDataset/families.json")
    assert [m["name"] for m in fams["blobs"]["members"]] == list(MEMBERS)
    assert read_json(data / "microlibDataset/data_anns.json") == {}
    with zipfile.ZipFile(data / "microlibDataset.zip") as zf:
        assert "microlibDataset/families/blobs/blobs_sweep.png" in zf.namelist()
    out = snakemake(wf, *RUN, "-n")
    assert "Nothing to be done" in out.stdout + out.stderr
