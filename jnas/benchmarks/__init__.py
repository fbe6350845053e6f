"""Tabular NAS benchmarks, readable inside jit."""

from jnas.benchmarks import nb201

BENCHMARKS = {"nb201": nb201.load}

__all__ = ["nb201", "BENCHMARKS"]
