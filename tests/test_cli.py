"""The CLI edge: one source for help texts, one handler that turns errors into one line."""

from __future__ import annotations

import errno
import importlib
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from microlib.cli import COMMANDS, command_flags
from microlib.errors import MicrolibError, expected_error_line
from microlib.io import write_json
from microlib.slicegan.params import ModelParams
from microlib.slicegan.presets import PRESETS


def microlib(*args: str | os.PathLike, cwd: Path, env: dict | None = None):
    """``python -m microlib ARGS`` as a user runs it (a fresh process, real files)."""
    env = dict(os.environ if env is None else env)
    env["COLUMNS"] = "1000"  # argparse wraps help at the terminal width (also inside words)
    return subprocess.run(
        [sys.executable, "-m", "microlib", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def one_error_line(proc: subprocess.CompletedProcess, command: str) -> str:
    """The single stderr line of a failed run, checked for status and shape."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    prefix = f"microlib {command}: error: "
    assert lines[0].startswith(prefix), lines[0]
    assert lines[0][len(prefix) :].strip(), lines[0]
    assert "Traceback" not in proc.stderr
    return lines[0]


# --------------------------------------------------------------------------- help texts


def test_help_texts_live_only_in_the_command_registry(tmp_path):
    for name, (module, help_) in COMMANDS.items():
        assert help_.strip(), name
        assert not hasattr(importlib.import_module(module), "HELP"), module
    top = " ".join(microlib("--help", cwd=tmp_path).stdout.split())
    for name, (_, help_) in COMMANDS.items():
        assert f"{name} {help_}" in top, name
        sub = " ".join(microlib(name, "--help", cwd=tmp_path).stdout.split())
        assert help_ in sub, name


def test_command_flags_come_from_the_subcommand_parser():
    train = command_flags("train")
    assert {"--iterations", "--preset", "--device"} <= train
    assert "--help" not in train
    assert "--curation" in command_flags("annotate", "entry")
    assert "--curation" not in command_flags("annotate", "select")
    assert "--no-tortuosity" in command_flags("validate")
    with pytest.raises(KeyError):
        command_flags("annotate", "no-such-mode")
    with pytest.raises(KeyError):
        command_flags("no-such-command")


def test_parsers_and_the_dataset_reader_load_without_torch():
    # every snakemake start builds the train and generate parsers to check the config, and
    # torch costs about 1.3 s of CPU: only running a command may import it
    code = textwrap.dedent(
        """
        import sys
        from microlib.cli import command_flags
        for name in ("train", "generate", "package", "dataset", "validate"):
            command_flags(name)
        import microlib.dataset, microlib.slicegan
        assert "--augment" in command_flags("train")
        print(sorted(m for m in sys.modules if m == "torch" or m.startswith("torch.")))
        """
    )
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- one error line


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """Bad inputs of every kind, side by side in ``tmp_path``."""
    (tmp_path / "not.json").write_text("this is not JSON\n")
    (tmp_path / "latin1.json").write_bytes(b'{"name": "\xe9t\xe9"}')
    (tmp_path / "deep.json").write_text("[" * 100_000)
    (tmp_path / "not.zip").write_text("this is not a zip\n")
    (tmp_path / "not.png").write_text("this is not an image\n")
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("a file where a folder is expected\n")
    tifffile.imwrite(tmp_path / "vol.tif", np.zeros((8, 8, 8), np.uint8))
    return tmp_path


def _package(selection: str) -> list[str]:
    return ["package", "dataset", "--selection", selection, "--dataset-dir", "ds", "--no-zip"]


CASES = {
    # name: (argv, command, words the line must hold)
    "missing file": (_package("nope.json"), "package", ["nope.json", "no such file"]),
    "not JSON": (_package("not.json"), "package", ["not.json", "not valid JSON"]),
    "not UTF-8": (_package("latin1.json"), "package", ["latin1.json", "not UTF-8"]),
    "too deep": (_package("deep.json"), "package", ["deep.json", "RecursionError"]),
    "a directory": (_package("adir"), "package", ["adir", "is a directory"]),
    "under a file": (_package("afile/x.json"), "package", ["afile/x.json", "not a directory"]),
    "not a zip": (["dataset", "extract", "not.zip", "out"], "dataset", ["not.zip", "zip"]),
    "missing zip": (["dataset", "extract", "nope.zip", "out"], "dataset", ["nope.zip"]),
    "not an image": (
        ["validate", "--image", "not.png", "--volume", "vol.tif", "--out", "m.json"],
        "validate",
        ["not.png", "not an image"],
    ),
    "validate, missing": (
        ["validate", "--image", "nope.png", "--volume", "vol.tif", "--out", "m.json"],
        "validate",
        ["nope.png"],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_expected_failures_are_one_line_and_exit_2(files, case):
    argv, command, words = CASES[case]
    line = one_error_line(microlib(*argv, cwd=files), command)
    for word in words:
        assert word in line, (word, line)


def _model_dir(d: Path, name: str = "microstructure042") -> Path:
    p = PRESETS["tiny"]
    params = ModelParams(
        name=name,
        image_type="nphase",
        gk=list(p.gk),
        gs=list(p.gs),
        gp=list(p.gp),
        gf=p.gf(2),
        dk=list(p.dk),
        ds=list(p.ds),
        dp=list(p.dp),
        df=p.df(2),
        lz=p.lz,
        l=p.l,
    )
    d.mkdir()
    write_json(d / f"{name}_params.json", params.to_json())
    (d / f"{name}_Gen.pt").write_bytes(b"")
    return d


def test_generate_with_an_empty_generator_file_is_one_line(tmp_path):
    model = _model_dir(tmp_path / "model")
    line = one_error_line(
        microlib("generate", model, "--size", "32", "--out", "v.tif", cwd=tmp_path), "generate"
    )
    assert "microstructure042_Gen.pt" in line


def test_generate_with_an_empty_params_json_is_one_line(tmp_path):
    model = _model_dir(tmp_path / "model")
    (model / "microstructure042_params.json").write_bytes(b"")
    proc = microlib("generate", model, "--size", "32", "--out", "v.tif", cwd=tmp_path)
    line = one_error_line(proc, "generate")
    assert "microstructure042_params.json" in line


def test_verbose_adds_the_traceback_of_an_expected_failure(files):
    proc = microlib("-v", *_package("not.json"), cwd=files)
    assert proc.returncode == 2
    assert "Traceback" in proc.stderr
    assert proc.stderr.splitlines()[-1].startswith("microlib package: error: not.json: ")


def test_a_bug_keeps_its_traceback_and_exits_1(tmp_path):
    # a command registered like the real ones whose run() has a genuine bug
    (tmp_path / "buggy_command.py").write_text(
        textwrap.dedent(
            """
            def add_arguments(parser):
                parser.add_argument("n", type=int)

            def run(args):
                return 1 // args.n - 1
            """
        )
    )
    script = (
        "import sys, microlib.cli as cli\n"
        "cli.COMMANDS['buggy'] = ('buggy_command', 'divides by its argument')\n"
        "sys.exit(cli.main(sys.argv[1:]))\n"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
    run = [sys.executable, "-c", script]
    ok = subprocess.run([*run, "buggy", "1"], cwd=tmp_path, env=env, capture_output=True)
    assert ok.returncode == 0, ok.stderr
    bug = subprocess.run(
        [*run, "buggy", "0"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert bug.returncode == 1
    assert "Traceback" in bug.stderr and "ZeroDivisionError" in bug.stderr
    assert bug.stderr.splitlines()[-1].startswith(
        "microlib buggy: internal error: ZeroDivisionError"
    )


# --------------------------------------------------------------------------- the formatter


def test_an_exception_without_a_message_still_gives_a_clear_line(tmp_path):
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    try:
        torch.load(path, weights_only=True)
    except EOFError as exc:
        assert str(exc) == ""  # torch's own message is empty: the reason must not be
        line = expected_error_line(exc)
    else:  # pragma: no cover - torch changed behaviour
        pytest.fail("torch.load read an empty file")
    assert line == f"{path}: the file ends too early (empty or truncated) (EOFError)"


def test_a_bad_pickle_names_its_file(tmp_path):
    path = tmp_path / "bad.pkl"
    path.write_bytes(b"garbage")
    try:
        with open(path, "rb") as fh:
            pickle.load(fh)
    except pickle.UnpicklingError as exc:
        line = expected_error_line(exc)
    assert line is not None and line.startswith(f"{path}: not a readable pickle")
    assert "UnpicklingError" in line


def test_permission_and_other_os_errors_name_the_path():
    denied = PermissionError(errno.EACCES, os.strerror(errno.EACCES), "secret.json")
    assert expected_error_line(denied) == "secret.json: permission denied"
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/data/volumes/x.tif")
    assert expected_error_line(full) == "/data/volumes/x.tif: no space left on device"
    # a rename onto a directory names the target, not the temporary file
    moved = IsADirectoryError(errno.EISDIR, "Is a directory", "/d/.x.part", None, "/d/out")
    assert expected_error_line(moved) == "/d/out: is a directory"


def test_bugs_and_microlib_errors_are_not_reformatted():
    assert expected_error_line(ZeroDivisionError("division by zero")) is None
    assert expected_error_line(KeyError("iterations")) is None
    assert expected_error_line(OSError("no errno: not a file problem")) is None
    # MicrolibError has its own line (entry: reason), written by the CLI itself
    assert expected_error_line(MicrolibError("bad", entry="000237")) is None
