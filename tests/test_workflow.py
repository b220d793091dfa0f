"""The Snakemake DAG: config validation, dry runs of the real and demo configs, named targets."""

from __future__ import annotations

import re

import pytest
import yaml
from workflow_helpers import snakemake, workflow_copy

from microlib.cli import command_flags


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
        "family",
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
    # the demo's family has its own target, like the entries
    assert set(re.findall(r"^(family_\w+)", out, re.M)) == {"family_blobs"}


def test_bad_config_is_rejected_with_the_offending_key(wf):
    bad = wf / "bad.yaml"
    bad.write_text(yaml.safe_dump({"train": {"preset": "huge"}}))
    proc = snakemake(wf, "-n", "--cores", "1", "--configfile", "bad.yaml", check=False)
    assert proc.returncode != 0
    assert "preset" in proc.stdout + proc.stderr


def test_a_misspelt_stage_key_fails_the_dry_run_in_one_line(wf):
    bad = wf / "typo.yaml"
    bad.write_text(yaml.safe_dump({"train": {"iteratons": 5}}))
    proc = snakemake(
        wf, "-n", "--cores", "1", "--configfile", "config/demo.yaml", "typo.yaml", check=False
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    reason = "config: train.iteratons: not an option of `microlib train` (did you mean iterations?)"
    assert reason in out.splitlines(), out


def test_valid_stage_keys_pass_including_booleans_and_rule_settings(wf):
    good = wf / "good.yaml"
    good.write_text(
        yaml.safe_dump(
            {
                "validate": {"tortuosity": False},  # --no-tortuosity
                "annotate": {"curation": None, "refine": True},
                "package": {"zip": False},
                "train": {"iterations": 7},
                "generate": {"voxel_size": None},  # null: flag left out, name still checked
            }
        )
    )
    snakemake(wf, "-n", "--cores", "1", "--configfile", "config/demo.yaml", "good.yaml")


def _stage_sections(wf) -> list[str]:
    """Config sections the schema declares as stage sections (options of a subcommand)."""
    schema = yaml.safe_load((wf / "workflow" / "schemas" / "config.schema.yaml").read_text())
    stage = {"$ref": "#/$defs/stage"}
    return [
        name
        for name, prop in schema["properties"].items()
        if prop == stage or stage in prop.get("allOf", [])
    ]


@pytest.fixture(scope="module")
def checked_commands(wf) -> dict[str, tuple[str, ...]]:
    """Section -> the subcommand the key check names, from one dry run with a bad key in
    every stage section (the check reports them all, one line each)."""
    sections = _stage_sections(wf)
    (wf / "every_typo.yaml").write_text(
        yaml.safe_dump({section: {"zz_not_a_flag": 1} for section in sections})
    )
    proc = snakemake(wf, "-n", "--cores", "1", "--configfile", "every_typo.yaml", check=False)
    assert proc.returncode != 0
    found = {}
    for line in (proc.stdout + proc.stderr).splitlines():
        m = re.match(
            r"config: (\w+)\.zz_not_a_flag: not an option of (`microlib ([^`]+)`|the)", line
        )
        if m:
            found[m.group(1)] = tuple(m.group(3).split()) if m.group(3) else ()
    assert set(found) == set(sections), (sections, proc.stdout[-3000:], proc.stderr[-3000:])
    return found


def test_every_stage_section_is_checked(checked_commands):
    assert checked_commands["train"] == ("train",)
    assert checked_commands["select"] == ("annotate", "select")
    assert checked_commands["package"] == ()  # read by the package rules, not passed on


def _marker_flags(wf, commands: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """Per section, a flag of its subcommand that the schema leaves untyped (any value
    passes it), to mark where that section's options end up."""
    schema = yaml.safe_load((wf / "workflow" / "schemas" / "config.schema.yaml").read_text())
    marks = {}
    for section, words in commands.items():
        if not words:
            continue
        typed = set()
        for part in schema["properties"][section].get("allOf", []):
            typed |= set(part.get("properties", {}))
        keys = sorted(
            flag[2:].replace("-", "_")
            for flag in command_flags(*words)
            if not flag.startswith("--no-")
        )
        marks[section] = next(k for k in keys if k not in typed and k != "curation")
    return marks


def test_stage_options_reach_the_subcommand_the_check_names(wf, checked_commands):
    marks = _marker_flags(wf, checked_commands)
    config = {section: {key: f"MARK_{section}"} for section, key in marks.items()}
    (wf / "marks.yaml").write_text(yaml.safe_dump(config))
    # run A: nothing yet, the scrape job is planned; run B: one entry scraped, so the
    # selection and every per-entry job of microstructure001 are planned
    fresh = snakemake(
        wf, "-n", "-p", "--cores", "1", "--configfile", "marks.yaml", "--config", "results=ra"
    )
    root = wf / "rb"
    (root / "raw").mkdir(parents=True)
    (root / "raw" / "000001.jpg").write_bytes(b"")
    (root / "raw" / "000001.json").write_text("{}")
    (root / "raw" / "index.json").write_text('{"entries": {"000001": {"status": "present"}}}')
    targets = [
        "rb/annotations/selection.json",
        "rb/microlibDataset/microstructure001/microstructure001.tif",
    ]
    scraped = snakemake(
        wf,
        *targets,
        "-n",
        "-p",
        "--cores",
        "1",
        "--configfile",
        "marks.yaml",
        "--config",
        "results=rb",
    )
    lines = (fresh.stdout + scraped.stdout).splitlines()
    for section, key in marks.items():
        flag = f"--{key.replace('_', '-')} MARK_{section}"
        calls = [line.strip() for line in lines if flag in line]
        assert calls, (section, flag)
        words = " ".join(checked_commands[section])
        for call in calls:
            assert f"microlib {words} " in call, (section, call)
