"""Shared fixtures: PRNG key, data root, the NB201 table and a tiny network."""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
from pathlib import Path

# The suite runs in several pytest-xdist workers; on a GPU each would otherwise reserve
# most of its memory at start-up.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
# Experiments' main() gives JAX one CPU device per core when it starts JAX first
# (experiments.common.use_cpu_cores); the suite keeps one device whatever the test order, and
# tests the split over devices in a process of its own.
os.environ.setdefault("JNAS_CPU_DEVICES", "1")
# Most of the suite's time is XLA compilation of small networks, and most of that is LLVM
# optimising machine code. Tests check values, not speed, so they compile with LLVM's
# optimisation off (XLA's HLO passes, fusion included, still run; the programs compute the
# same operations in the same order): about 2.7x less compile time (tests/nets/test_conv.py:
# 154 -> 54 s of CPU). JAX_DISABLE_MOST_OPTIMIZATIONS=0 restores full optimisation; the
# subprocesses that tests start inherit the setting.
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")

import jax  # noqa: E402
import pytest

from jnas.nets import NB201Network

# One persistent compilation cache per test run, shared by the pytest-xdist workers (the
# controller makes the folder before it starts them, and they inherit the variable): a
# program compiled in one test module is read back, not compiled again, by a later module
# or the other worker, although every module releases its executables (_release_compiled).
# The folder is new for every run, so each run starts from a cold cache, and the process
# that made it removes it at the end. Measured on a full run: 40 hits saved 55 s of compiling.
_OWN_CACHE = "JNAS_TEST_COMPILATION_CACHE" not in os.environ
if _OWN_CACHE:
    os.environ["JNAS_TEST_COMPILATION_CACHE"] = tempfile.mkdtemp(prefix="jnas-test-xla-cache-")
jax.config.update("jax_compilation_cache_dir", os.environ["JNAS_TEST_COMPILATION_CACHE"])
# Experiments that tests start as subprocesses use the same folder, never ~/.cache/jnas/xla.
os.environ["JNAS_COMPILATION_CACHE"] = os.environ["JNAS_TEST_COMPILATION_CACHE"]
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def pytest_unconfigure(config):
    if _OWN_CACHE:
        shutil.rmtree(os.environ.pop("JNAS_TEST_COMPILATION_CACHE"), ignore_errors=True)

REPO = Path(__file__).resolve().parents[1]


# Fixtures that read the jnas data folder; a test using any of them (directly or through
# another fixture) is marked ``data``, so ``pytest -m "not data"`` runs without the folder.
DATA_FIXTURES = ("data_dir", "table")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if any(name in DATA_FIXTURES for name in getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.data)


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
