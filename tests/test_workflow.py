"""The Snakemake DAG: config validation, dry runs of the real and demo configs, named targets."""

from __future__ import annotations

import ast
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


def _stage_commands(wf) -> dict[str, tuple[str, ...] | None]:
    """STAGE_COMMANDS of common.smk: config section -> the subcommand its rule calls."""
    text = (wf / "workflow" / "rules" / "common.smk").read_text()
    literal = re.search(r"^STAGE_COMMANDS = (\{.*?^\})", text, re.M | re.S)
    assert literal, "common.smk defines STAGE_COMMANDS"
    return ast.literal_eval(literal.group(1))


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


@pytest.mark.parametrize(
    "section, options, reason",
    [
        (
            "select",
            {"iso_maxx": 1.5},
            "config: select.iso_maxx: not an option of "
            "`microlib annotate select` (did you mean iso_max?)",
        ),
        ("package", {"zipp": False}, "config: package.zipp: not an option of the package rules"),
    ],
)
def test_stage_keys_are_checked_for_modes_and_rule_settings(wf, section, options, reason):
    bad = wf / f"typo_{section}.yaml"
    bad.write_text(yaml.safe_dump({section: options}))
    proc = snakemake(wf, "-n", "--cores", "1", "--configfile", bad.name, check=False)
    assert proc.returncode != 0
    assert any(line.startswith(reason) for line in (proc.stdout + proc.stderr).splitlines())


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


def test_every_stage_section_maps_to_the_subcommand_its_rule_calls(wf):
    stages = _stage_commands(wf)
    seen = set()
    for smk in sorted((wf / "workflow" / "rules").glob("*.smk")):
        for block in re.split(r"^\s*(?:rule|checkpoint) ", smk.read_text(), flags=re.M)[1:]:
            used = re.findall(r'cli_args\(stage\("(\w+)"\)', block)
            if not used:
                continue
            (section,) = used
            call = re.search(r'"(?:microlib|\{[\w.]+\}) ([a-z][\w-]*)(?: ([a-z][\w-]*))?', block)
            assert call, (smk.name, section)
            words = tuple(w for w in call.groups() if w)
            assert section in stages, (smk.name, section)
            assert words[: len(stages[section])] == stages[section], (section, words)
            seen.add(section)
    assert seen == {s for s, command in stages.items() if command}
