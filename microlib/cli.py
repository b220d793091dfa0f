"""``microlib`` command line: one subcommand per pipeline stage plus tools.

Each subcommand lives in ``microlib/commands/<stage>.py`` and provides ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``. Modules are imported lazily so
``microlib --help`` does not pay for torch.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from microlib import __version__
from microlib.errors import MicrolibError

# subcommand -> (module, one-line help). Order is the pipeline's order.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo-site": ("microlib.commands.demo_site", "write the built-in DoITPoMS-shaped demo library"),
    "scrape": ("microlib.commands.scrape", "download DoITPoMS records and images"),
    "annotate": ("microlib.commands.annotate", "crop, scale bar, phases and exclusion filters"),
    "segment": (
        "microlib.commands.segment",
        "threshold into phase labels, write the scale-bar mask",
    ),
    "inpaint": ("microlib.commands.inpaint", "fill the scale bar with a patch GAN"),
    "train": ("microlib.commands.train", "train a SliceGAN generator"),
    "generate": ("microlib.commands.generate", "synthesise a 3D volume from a trained generator"),
    "validate": ("microlib.commands.validate", "compare 2D training image and 3D volume metrics"),
    "media": ("microlib.commands.media", "previews and animations of an entry"),
    "package": ("microlib.commands.package", "assemble the MicroLib-style dataset and zip"),
    "dataset": ("microlib.commands.dataset", "use a packaged dataset: list, extract, synthesise"),
    "bench": ("microlib.commands.bench", "benchmarks with ratios against in-run baselines"),
}


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="microlib", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"microlib {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
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


def main(argv: list[str] | None = None) -> int:
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
        return 2
    try:
        return int(args._run(args) or 0)
    except MicrolibError as exc:
        print(f"microlib {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"microlib {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
