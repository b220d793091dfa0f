import difflib
import json
import os
import re
import shlex

import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from microlib.annotate import load_curation
from microlib.cli import command_flags
from microlib.errors import MicrolibError
from microlib.io import entry_id, entry_name, parse_id_spec

validate(config, schema="../schemas/config.schema.yaml")


# --------------------------------------------------------------------------- stage keys
# Each stage section becomes --flags of one subcommand (`cli_args`). The schema cannot know
# those flags, so a misspelt key (`train: {iteratons: 5}`) would pass it and `snakemake -n`
# and fail only when the job runs. Every key is checked here, at parse time, against the
# flags the subcommand's own argparse parser accepts, so a flag added there needs no edit.

# section -> the subcommand (and mode) its rule passes the section to
STAGE_COMMANDS = {
    "scrape": ("scrape",),
    "annotate": ("annotate", "entry"),
    "select": ("annotate", "select"),
    "segment": ("segment",),
    "inpaint": ("inpaint",),
    "train": ("train",),
    "generate": ("generate",),
    "validate": ("validate",),
    "media": ("media",),
    "package": None,  # nothing passed as flags: the package rules read `zip` themselves
}
# keys a rule reads itself instead of passing them on (the `skip=` of its cli_args)
RULE_KEYS = {"annotate": ("curation",), "package": ("zip",)}


def stage_key_error(section, key, value):
    """Why `section.key: value` is not accepted, as one line, or None when it is."""
    own = RULE_KEYS.get(section, ())
    if key in own:
        return None
    command = STAGE_COMMANDS[section]
    flags = command_flags(*command) if command else set()
    flag = f"--{key}".replace("_", "-")  # the spelling cli_args uses
    if value is False:
        flag = f"--no-{flag[2:]}"
    if flag in flags:
        return None
    where = f"config: {section}.{key}"
    what = f"`microlib {' '.join(command)}`" if command else f"the {section} rules"
    if value is False and f"--{key}".replace("_", "-") in flags:
        return f"{where}: false needs {flag}, which {what} does not accept (leave the key out)"
    keys = {f[2:].replace("-", "_") for f in flags} | set(own)
    # `--no-x` of a boolean flag `--x` is spelt `x: false`: list only `x`
    keys = sorted(k for k in keys if not (k.startswith("no_") and k[3:] in keys))
    close = difflib.get_close_matches(key, keys, n=1)
    if close:
        return f"{where}: not an option of {what} (did you mean {close[0]}?)"
    return f"{where}: not an option of {what} (it takes: {', '.join(keys)})"


def check_stage_keys(cfg):
    """Raise a WorkflowError with one line per stage key its subcommand rejects."""
    reasons = [
        stage_key_error(section, key, value)
        for section in STAGE_COMMANDS
        for key, value in (cfg.get(section) or {}).items()
    ]
    if any(reasons):
        raise WorkflowError("\n".join(r for r in reasons if r))


check_stage_keys(config)

RESULTS = config["results"].rstrip("/")
DEMO = config["source"]["kind"] == "demo"
IDS = parse_id_spec(config["source"]["ids"])
NAMES = [entry_name(i) for i in IDS]


# --------------------------------------------------------------------------- families
# `families:` maps a family name to its members (entry id or name -> code) and optional
# codes to generate at, preset, iterations, cube size and `individual`. The schema checks
# the shape; the meaning (members among the configured ids, numeric and distinct codes)
# is checked here, at parse time, so `snakemake -n` stops with one line per bad family.

FAMILY_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _code_text(code):
    # the spelling in file names and on the command line: 0.475, not 0.47500000000000003
    return f"{round(float(code), 6):g}"


def _family_member(key, ids):
    """`36`, `"000036"` or `"microstructure036"` -> the entry name, or an error line."""
    try:
        name = entry_name(key)
    except (TypeError, ValueError):
        return None, f"member {key!r} is not an entry id or microstructureNNN name"
    if int(entry_id(name)) not in ids:
        return None, f"member {name} is not among the configured ids (source.ids)"
    return name, None


def _parse_family(fam, spec, ids, cfg):
    """One family's settings, or the one-line reason it is refused."""
    if not FAMILY_NAME.match(str(fam)):
        return (
            None,
            "the name must be lower-case letters, digits and _, starting with a letter",
        )
    members = spec.get("members") or {}
    if len(members) < 2:
        return None, f"a family needs at least 2 members, it has {len(members)}"
    named = []
    for key, code in members.items():
        name, why = _family_member(key, ids)
        if why:
            return None, why
        if not _is_number(code) or code != code or abs(code) == float("inf"):
            return None, f"the code of {name} is not a number: {code!r}"
        named.append((name, float(code)))
    if len({n for n, _ in named}) != len(named):
        return None, "a member is listed twice"
    by_code = {}
    for name, code in named:
        by_code.setdefault(_code_text(code), []).append(name)
    dup = {c: n for c, n in by_code.items() if len(n) > 1}
    if dup:
        c, n = next(iter(dup.items()))
        return (
            None,
            f"duplicate code {c} ({', '.join(n)}): each member needs its own code",
        )
    named.sort(key=lambda m: m[1])
    lo, hi = named[0][1], named[-1][1]
    codes = spec.get("codes")
    if codes is None:
        # the members' codes and the midpoint between each neighbouring pair
        trained = [c for _, c in named]
        codes = trained + [(a + b) / 2 for a, b in zip(trained, trained[1:])]
    for code in codes:
        if not _is_number(code):
            return None, f"codes: {code!r} is not a number"
        if not lo <= code <= hi:
            return (
                None,
                f"codes: {code:g} is outside the members' range [{lo:g}, {hi:g}]",
            )
    codes = sorted({_code_text(c): None for c in codes}, key=float)
    train = spec.get("train") or {}
    flags = command_flags("train")
    for key, value in train.items():
        flag = f"--{key}".replace("_", "-")
        if (f"--no-{flag[2:]}" if value is False else flag) not in flags:
            return None, f"train.{key}: not an option of `microlib train`"
    size = spec.get("size", (cfg.get("generate") or {}).get("size"))
    return {
        "members": named,
        "codes": codes,
        "preset": spec.get("preset"),
        "iterations": spec.get("iterations"),
        "train": dict(train),
        "size": size,
        "individual": bool(spec.get("individual", True)),
    }, None


def check_families(cfg, ids):
    """The parsed `families:` section; a WorkflowError with one line per bad family."""
    families, reasons = {}, []
    for fam, spec in (cfg.get("families") or {}).items():
        parsed, why = _parse_family(fam, spec or {}, set(ids), cfg)
        if why:
            reasons.append(f"config: families.{fam}: {why}")
        else:
            families[fam] = parsed
    if reasons:
        raise WorkflowError("\n".join(reasons))
    return families


FAMILIES = check_families(config, IDS)
# members of a family with `individual: false` get no generator of their own
FAMILY_ONLY = {
    name
    for fam in FAMILIES.values()
    if not fam["individual"]
    for name, _ in fam["members"]
}


# (no {m,n} quantifiers: braces clash with Snakemake's wildcard syntax)
wildcard_constraints:
    id=r"\d\d\d\d\d\d",
    name=r"microstructure\d\d\d+",
    family=r"[a-z][a-z0-9_]*",
    code=r"-?[0-9][0-9.e+-]*",


# every rule runs the microlib CLI; with --use-conda this is the environment it needs
# (relative to the rule files; its pip section installs this checkout)
CONDA_ENV = "../../environment.yml"


def _microlib_command():
    """The `microlib` CLI installed beside the Python running Snakemake.

    `.venv/bin/snakemake` typed in a fresh shell has no `.venv/bin` on PATH, so a bare
    `microlib` would not be found; the absolute path (or `python -m microlib`) always is.
    With --use-conda the job runs inside its own environment, whose PATH has it.
    """
    import sys
    from pathlib import Path

    from snakemake_interface_executor_plugins.settings import DeploymentMethod

    if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method:
        return "microlib"
    exe = Path(sys.executable).parent / "microlib"
    if exe.is_file():
        return shlex.quote(str(exe))
    return f"{shlex.quote(sys.executable)} -m microlib"


MICROLIB = _microlib_command()
# rules call `microlib ...`; this shell function makes the name mean the command above in
# every job's shell (Snakemake's own default prefix, `set -euo pipefail; `, is kept). The
# rule code stays the same whatever the install location, so moving the venv reruns nothing.
if MICROLIB != "microlib":
    shell.prefix(f'set -euo pipefail; microlib() {{{{ {MICROLIB} "$@"; }}}}; ')


def R(path):
    """Path below the results root."""
    return f"{RESULTS}/{path}"


def log(path):
    return R(f"logs/{path}.log")


def bench(path):
    return R(f"benchmarks/{path}.tsv")


def stage(name):
    return config.get(name) or {}


def cli_args(options, skip=()):
    """A config mapping as --flags: `opt_steps: 200` -> `--opt-steps 200`.

    Booleans become `--flag` / `--no-flag`, lists are comma-joined, nulls are dropped.
    """
    parts = []
    for key, value in (options or {}).items():
        if key in skip or value is None:
            continue
        flag = f"--{key}".replace("_", "-")
        if isinstance(value, bool):
            parts.append(flag if value else f"--no-{flag[2:]}")
        elif isinstance(value, (list, tuple)):
            parts += [flag, shlex.quote(",".join(str(v) for v in value))]
        else:
            parts += [flag, shlex.quote(str(value))]
    return " ".join(parts)


def segment_args():
    """The `segment:` section as flags, for the segment rule and for annotate.

    annotate predicts each entry's phase fractions by segmenting the way the segment
    stage will (`microlib annotate entry` takes the same flags), so both rules get the
    same settings, and changing one re-runs both.
    """
    return cli_args(stage("segment"))


def annotate_segment_args():
    """The `segment:` settings `microlib annotate entry` shares with `microlib segment`.

    Only the flags both accept: a segment-only option in the config must not break annotate.
    """
    shared = command_flags("annotate", "entry")
    return cli_args(
        {
            k: v
            for k, v in stage("segment").items()
            if f"--{k}".replace("_", "-") in shared
        }
    )


def threads_for(rule_name):
    return int(config["threads"].get(rule_name, config["threads"]["default"]))


def id_of(wildcards):
    return entry_id(wildcards.name)


# --------------------------------------------------------------------------- curation


def _curation_file():
    return stage("annotate").get("curation")


def _load_curation():
    # the loader `microlib annotate entry --curation` uses: one schema check, one error
    path = _curation_file()
    if not path:
        return {}
    try:
        return load_curation(path)
    except MicrolibError as exc:
        raise WorkflowError(str(exc)) from None


CURATION = _load_curation()


def curation_of(wildcards):
    """This entry's curation record, as a stable string.

    It is a rule parameter, so editing the curation of one entry re-annotates that entry
    only (Snakemake's params rerun trigger) instead of every entry.
    """
    return json.dumps(CURATION.get(wildcards.id, {}), sort_keys=True)


# --------------------------------------------------------------------------- checkpoints


def present_ids():
    """Ids the scrape checkpoint found (status present)."""
    with checkpoints.scrape.get().output[0].open() as fh:
        index = json.load(fh)
    return sorted(
        k for k, v in index.get("entries", {}).items() if v.get("status") == "present"
    )


def selection():
    with checkpoints.select.get().output[0].open() as fh:
        return json.load(fh)


def included_names():
    return [entry_name(i) for i in selection()["included"]]


# --------------------------------------------------------------------------- targets

MEDIA_KINDS = ["preview.png", "rotation.gif", "slicing.gif", "inpaint.png"]
ENTRY_SUFFIXES = [
    ".tif",
    "_Gen.pt",
    "_Disc.pt",
    "_params.data",
    "_params.json",
    "_inpainted.png",
    "_original.png",
    "_metrics.json",
    "_metadata.json",
] + [f"_{kind}" for kind in MEDIA_KINDS]


def entry_files(name):
    """The packaged files of one entry: what `microstructureNNN` builds."""
    return [R(f"microlibDataset/{name}/{name}{suffix}") for suffix in ENTRY_SUFFIXES]


def named_target(name):
    """Inputs of the target named after an entry: the packaged entry, or only the selection if excluded."""

    def inputs(wildcards):
        sel = selection()
        ident = entry_id(name)
        if ident in sel["included"] and name in FAMILY_ONLY:
            # packaged only in its family: the name builds the family
            fams = [f for f, spec in FAMILIES.items() if name in dict(spec["members"])]
            print(f"{name} is packaged in its family only: {', '.join(fams)}")
            return [f for fam in fams for f in family_target(fam)(wildcards)]
        if ident in sel["included"]:
            return entry_files(name)
        why = sel.get("excluded", {}).get(ident, {}).get("reasons") or [
            "not present on the site"
        ]
        print(f"{name} is not in the dataset: {'; '.join(why)}")
        return [checkpoints.select.get().output[0]]

    return inputs


def packaged_names():
    """Included entries packaged as entries of their own (not only in a family)."""
    return [n for n in included_names() if n not in FAMILY_ONLY]


def dataset_inputs(wildcards):
    files = []
    for name in packaged_names():
        files += entry_files(name)
    return files


# --------------------------------------------------------------------------- family targets

FAMILY_SUFFIXES = [
    "_Gen.pt",
    "_Disc.pt",
    "_params.json",
    "_metrics.json",
    "_sweep.png",
    "_sweep.gif",
    "_metadata.json",
]


def family_files(fam):
    """The packaged files of one family: what `family_<name>` builds."""
    return [
        R(f"microlibDataset/families/{fam}/{fam}{suffix}") for suffix in FAMILY_SUFFIXES
    ]


def family_left_out(fam):
    """Why a family cannot be built (a member not in the dataset), or None."""
    sel = selection()
    for name, _ in FAMILIES[fam]["members"]:
        ident = entry_id(name)
        if ident not in sel["included"]:
            why = sel.get("excluded", {}).get(ident, {}).get("reasons") or [
                "not present on the site"
            ]
            return f"member {name} is not in the dataset: {'; '.join(why)}"
    return None


def packaged_families():
    """Families whose members are all included (the others are reported and left out)."""
    out = []
    for fam in FAMILIES:
        why = family_left_out(fam)
        if why:
            print(f"family {fam} is left out: {why}")
        else:
            out.append(fam)
    return out


def families_flag(wildcards):
    """`--families A B` for `microlib package dataset`, or nothing."""
    fams = packaged_families()
    return " ".join(["--families", *fams]) if fams else ""


def family_dataset_inputs(wildcards):
    return [f for fam in packaged_families() for f in family_files(fam)]


def family_target(fam):
    """Inputs of `family_<name>`: the packaged family, or only the selection (with the
    reason printed) when a member is not in the dataset."""

    def inputs(wildcards):
        why = family_left_out(fam)
        if why:
            print(f"family {fam} is not built: {why}")
            return [checkpoints.select.get().output[0]]
        return family_files(fam)

    return inputs


def family_members(wildcards):
    """The members' training images, in ascending code (the order of --codes)."""
    fam = wildcards.family
    if fam not in FAMILIES:
        raise WorkflowError(f"config: families: no family named {fam}")
    why = family_left_out(fam)
    if why:
        raise WorkflowError(f"family {fam}: {why}")
    return [R(f"training/{name}.png") for name, _ in FAMILIES[fam]["members"]]


def family_member_meta(wildcards):
    return [
        R(f"raw/{entry_id(n)}.json") for n, _ in FAMILIES[wildcards.family]["members"]
    ]


def family_member_codes(wildcards):
    return ",".join(_code_text(c) for _, c in FAMILIES[wildcards.family]["members"])


def family_volumes(wildcards):
    fam = wildcards.family
    return [
        R(f"volumes/families/{fam}/{fam}_code{code}.tif")
        for code in FAMILIES[fam]["codes"]
    ]


def family_train_args(wildcards):
    """The `train:` section with the family's own train options, preset and iterations
    over it."""
    fam = FAMILIES[wildcards.family]
    own = {k: fam[k] for k in ("preset", "iterations") if fam[k] is not None}
    return cli_args({**stage("train"), **fam["train"], **own})


def family_generate_args(wildcards):
    return cli_args({**stage("generate"), "size": FAMILIES[wildcards.family]["size"]})


def scrape_source(wildcards, input):
    # the demo library is served on 127.0.0.1 and scraped over HTTP like the real site
    if DEMO:
        return f"--serve {shlex.quote(str(input.site))}"
    return f"--base-url {shlex.quote(config['source']['base_url'])}"


def annotations_of_present(wildcards):
    return [R(f"annotations/{i}.json") for i in present_ids()]
