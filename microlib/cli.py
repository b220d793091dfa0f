"""``microlib`` command line: one subcommand per pipeline stage plus tools.

Each subcommand lives in ``microlib/commands/<stage>.py`` and provides
``add_arguments(parser)`` and ``run(args) -> int``; its one-line help is in ``COMMANDS``
below, the only copy. Modules are imported lazily so ``microlib --help`` does not pay for
torch.

Errors are reported here and nowhere else (commands just raise):

- :class:`~microlib.errors.MicrolibError` and the exceptions expected from bad files
  (missing, unreadable, truncated, not JSON, not an image, not a zip, ...; see
  :func:`microlib.errors.expected_error_line`) become one line on stderr,
  ``microlib <cmd>: error: <entry or file>: <reason>``, and exit status 2. With ``-v`` the
  traceback is printed before that line.
- Any other exception is a bug: its traceback is printed, then one summary line
  ``microlib <cmd>: internal error: ...``, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import traceback

from microlib import __version__
from microlib.errors import MicrolibError, expected_error_line

# subcommand -> (module, one-line help). Order is the pipeline's order.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo-site": (
        "microlib.commands.demo_site",
        "write the built-in DoITPoMS-shaped demo library (offline, with ground truth)",
    ),
    "scrape": (
        "microlib.commands.scrape",
        "download DoITPoMS records and images (polite, resumable, cached)",
    ),
    "annotate": (
        "microlib.commands.annotate",
        "crop, scale bar, phases and exclusion filters (entry | select | import-prelabelled)",
    ),
    "segment": (
        "microlib.commands.segment",
        "threshold into phase labels, write the scale-bar mask",
    ),
    "inpaint": (
        "microlib.commands.inpaint",
        "fill the scale bar (per-type default method, or GAN / exemplar / diffusion)",
    ),
    "train": ("microlib.commands.train", "train a SliceGAN generator"),
    "generate": ("microlib.commands.generate", "synthesise a 3D volume from a trained generator"),
    "validate": ("microlib.commands.validate", "compare 2D training image and 3D volume metrics"),
    "media": ("microlib.commands.media", "previews and animations of an entry"),
    "family": (
        "microlib.commands.family",
        "a family generator: feature size vs code (metrics) and the code sweep (sweep)",
    ),
    "package": ("microlib.commands.package", "assemble the MicroLib-style dataset and zip"),
    "dataset": (
        "microlib.commands.dataset",
        "use a packaged dataset: fetch, list, show, extract, synthesise",
    ),
    "bench": ("microlib.commands.bench", "benchmarks with ratios against in-run baselines"),
}

# exit statuses
EXIT_ERROR = 2  # bad input or an expected failure: one line on stderr
EXIT_BUG = 1  # an unexpected exception: traceback on stderr
EXIT_INTERRUPTED = 130


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The ``microlib`` parser; only the subcommand named in ``argv`` is imported."""
    parser = argparse.ArgumentParser(prog="microlib", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"microlib {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="debug logging; tracebacks for errors too"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    wanted = _wanted_command(sys.argv[1:] if argv is None else argv)
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        if wanted == name:
            # only the chosen subcommand's module is imported (keeps --help cheap)
            mod = importlib.import_module(module)
            mod.add_arguments(p)
            p.set_defaults(_run=mod.run)
    return parser


def _wanted_command(argv: list[str]) -> str | None:
    for a in argv:
        if a in COMMANDS:
            return a
    return None


def command_flags(command: str, *modes: str) -> set[str]:
    """The long options (``--opt-steps``) that ``microlib COMMAND [MODE ...]`` accepts.

    Built from the subcommand's own ``add_arguments``, importing only that module, so a
    flag added there is known here at once. The workflow uses it to check each config
    stage section against its subcommand before any job runs.

    Parameters
    ----------
    command : str
        A key of ``COMMANDS`` (``train``, ``annotate``, ...).
    *modes : str
        Nested subcommands, e.g. ``"entry"`` for ``microlib annotate entry``.

    Returns
    -------
    set of str
        Every ``--long`` option string, ``--help`` excluded.

    Raises
    ------
    KeyError
        For an unknown command or mode.
    """
    module, help_ = COMMANDS[command]
    parser = argparse.ArgumentParser(prog=f"microlib {command}", description=help_)
    importlib.import_module(module).add_arguments(parser)
    # argparse has no public API to list a parser's options; `_actions` is stable since 3.2
    for mode in modes:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs or mode not in subs[0].choices:
            raise KeyError(f"microlib {command} has no mode {mode!r}")
        parser = subs[0].choices[mode]
    return {
        opt
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction)
        for opt in action.option_strings
        if opt.startswith("--")
    }


def _report(command: str, line: str, exc: BaseException, verbose: bool) -> int:
    if verbose:
        traceback.print_exception(exc)
    print(f"microlib {command}: error: {line}", file=sys.stderr)
    return EXIT_ERROR


def main(argv: list[str] | None = None) -> int:
    """Run ``microlib ARGV``; returns the exit status (see the module docstring)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    if not getattr(args, "_run", None):
        parser.print_help()
        return EXIT_ERROR
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print(f"microlib {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader went away (`microlib dataset list ... | head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BUG
    except MicrolibError as exc:
        line = " ".join(str(exc).split()) or "MicrolibError (no reason given)"
        return _report(args.command, line, exc, args.verbose)
    except Exception as exc:
        line = expected_error_line(exc)
        if line is not None:
            return _report(args.command, line, exc, args.verbose)
        traceback.print_exception(exc)
        detail = " ".join(str(exc).split())[:200]
        print(
            f"microlib {args.command}: internal error: {type(exc).__name__}"
            f"{': ' + detail if detail else ''} (a bug: the traceback above shows where)",
            file=sys.stderr,
        )
        return EXIT_BUG


if __name__ == "__main__":
    raise SystemExit(main())
