"""Benchmarks and the soak: run by hand (`python -m bench.soak`), not by the default suite."""
