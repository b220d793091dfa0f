"""The benchmark entry points run and print their ratio against the in-run baseline."""

from __future__ import annotations

import re

from microlib.cli import main


def test_bench_scrape_prints_its_warm_cold_ratio(capsys):
    assert main(["bench", "scrape"]) == 0
    out = capsys.readouterr().out
    ratio = re.search(r"warm/cold ratio: requests [\d.]+, bytes ([\d.]+)", out)
    assert ratio, out
    assert float(ratio.group(1)) <= 0.05, out


def test_bench_train_prints_the_optimised_over_baseline_ratio(capsys):
    args = [
        "bench",
        "train",
        "--device",
        "cpu",
        "--preset",
        "demo",
        "--iterations",
        "1",
        "--warmup",
        "0",
        "--rounds",
        "1",
        "--image-size",
        "64",
        "--threads",
        "1",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert re.search(r"ratio optimised/baseline: [\d.]+x; projected 5000 iterations", out), out
