"""The Snakemake DAG: config validation, dry runs of the real and demo configs, named targets."""

from __future__ import annotations

import re

import pytest
import yaml
from workflow_helpers import snakemake, workflow_copy


@pytest.fixture(scope="module")
def wf(tmp_path_factory):
    return workflow_copy(tmp_path_factory.mktemp("wf"))


def test_dry_run_of_the_real_config(wf):
    # the real run starts by scraping DoITPoMS (a checkpoint): the dry run plans it and the
    # dataset without touching the network
    out = snakemake(wf, "-n", "--cores", "8", "--quiet", "rules").stdout
    assert re.search(r"^scrape\s+1\b", out, re.M), out
    assert "demo_site" not in out
    assert re.search(r"^package\s+1\b", out, re.M)


def test_dry_run_of_the_demo_config(wf):
    out = snakemake(
        wf, "-n", "--cores", "2", "--configfile", "config/demo.yaml", "--quiet", "rules"
    ).stdout
    for rule in ("demo_site", "scrape", "select", "package"):
        assert re.search(rf"^{rule}\s+1\b", out, re.M), (rule, out)


def test_every_stage_has_a_rule_with_log_benchmark_and_resources(wf):
    from pathlib import Path

    rules_dir = Path(wf) / "workflow" / "rules"
    stages = [
        "scrape",
        "annotate",
        "segment",
        "inpaint",
        "train",
        "generate",
        "validate",
        "media",
        "package",
    ]
    for stage in stages:
        text = (rules_dir / f"{stage}.smk").read_text()
        blocks = re.split(r"^(?:rule|checkpoint) ", text, flags=re.M)[1:]
        assert blocks, stage
        for block in blocks:
            name = block.split(":", 1)[0]
            if "shell:" not in block:
                continue
            for directive in ("log:", "benchmark:", "resources:"):
                assert directive in block, (stage, name, directive)
            assert "microlib " in block, (stage, name)


def test_named_target_rules_cover_the_configured_ids(wf):
    out = snakemake(wf, "--list-rules", "--configfile", "config/demo.yaml").stdout
    names = set(re.findall(r"^(microstructure\d+)", out, re.M))
    assert names == {f"microstructure{i:03d}" for i in range(1, 41)}


def test_bad_config_is_rejected_with_the_offending_key(wf):
    bad = wf / "bad.yaml"
    bad.write_text(yaml.safe_dump({"train": {"preset": "huge"}}))
    proc = snakemake(wf, "-n", "--cores", "1", "--configfile", "bad.yaml", check=False)
    assert proc.returncode != 0
    assert "preset" in proc.stdout + proc.stderr
