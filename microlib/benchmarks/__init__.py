"""Benchmarks run by ``microlib bench``; each prints a ratio against an in-run baseline."""
