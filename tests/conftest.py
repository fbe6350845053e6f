"""Shared fixtures: PRNG key, data root, the NB201 table and a tiny network."""

from __future__ import annotations

import gc
import os
from pathlib import Path

# The suite runs in several pytest-xdist workers; on a GPU each would otherwise reserve
# most of its memory at start-up.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
# Experiments' main() gives JAX one CPU device per core when it starts JAX first
# (experiments.cli.use_cpu_cores); the suite keeps one device whatever the test order, and
# tests the split over devices in a process of its own.
os.environ.setdefault("JNAS_CPU_DEVICES", "1")

import jax  # noqa: E402
import pytest

from jnas.nets import NB201Network

REPO = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    """``$JNAS_DATA`` if set, else ``../shared/data`` beside the repository."""
    return Path(os.environ.get("JNAS_DATA") or REPO.parent / "shared" / "data")


@pytest.fixture(autouse=True, scope="module")
def _release_compiled():
    """Drop JAX's compiled executables after each test module. Each holds memory mappings
    of its machine code; a whole suite in one process otherwise passes the kernel's limit on
    mappings per process (``vm.max_map_count``, 65,530 by default) and XLA crashes while
    compiling."""
    yield
    jax.clear_caches()
    gc.collect()


@pytest.fixture
def key():
    return jax.random.key(0)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    root = data_root()
    if not (root / "nb201").is_dir():
        pytest.fail(f"test data not found under {root}; set JNAS_DATA to the jnas data folder")
    return root


@pytest.fixture(scope="session")
def table(data_dir):
    from jnas.benchmarks import nb201

    return nb201.load(data_dir)


@pytest.fixture
def tiny_net():
    """C=2, N=1 NB201 network: every structural feature, a few hundred parameters."""
    return NB201Network(C=2, N=1, num_classes=3)
