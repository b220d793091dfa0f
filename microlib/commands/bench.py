"""``microlib bench WHAT``: benchmarks that print a ratio against a baseline run in-process.

Targets live here, never in timed tests. Each benchmark module in
``microlib/benchmarks/`` provides ``HELP``, ``add_arguments(parser)`` and ``run(args)``.
"""

from __future__ import annotations

import argparse
import importlib

BENCHMARKS: dict[str, str] = {
    "train": "microlib.benchmarks.train",
    "generate": "microlib.benchmarks.generate",
    "scrape": "microlib.benchmarks.scrape",
    "annotate": "microlib.benchmarks.annotate",
    "inpaint": "microlib.benchmarks.inpaint",
    "validate": "microlib.benchmarks.validate",
    "fidelity": "microlib.benchmarks.fidelity",
    "adain": "microlib.benchmarks.adain",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="benchmark", metavar="WHAT", required=True)
    for name, module in BENCHMARKS.items():
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue  # benchmark not written yet
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_bench=mod.run)


def run(args: argparse.Namespace) -> int:
    return int(args._bench(args) or 0)
