"""experiments.score_all: the parquet store, resume after a kill, and the same scores from two
processes with two devices each as from one process with one device."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pyarrow.dataset as ds
import pytest

from tests.conftest import REPO

TINY = ["--proxies", "params,naswot", "--n", "40", "--chunk", "16", "--C", "2", "--N", "1", "--call-chunk", "4"]

# Runs score_all in a fresh process; with KILL_AFTER=k it SIGKILLs itself right after the
# k-th chunk file is in place (no cleanup), as a crash would.
_RUN = """
import os, signal, sys
import jax
jax.config.update("jax_compilation_cache_dir", os.environ["JNAS_TEST_COMPILATION_CACHE"])
from experiments import score_all
after, count, write = int(os.environ.get("KILL_AFTER", "0")), [0], score_all._write_chunk
def killing(*args):
    write(*args)
    count[0] += 1
    if count[0] == after:
        os.kill(os.getpid(), signal.SIGKILL)
score_all._write_chunk = killing
score_all.main(sys.argv[1:])
"""


def _run(args, env_extra=None, check=True):
    env = {**os.environ, **(env_extra or {})}
    proc = subprocess.run([sys.executable, "-c", _RUN, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"score_all failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def _store(out):
    """{proxy: scores in index order} read back from the parquet store."""
    t = ds.dataset(out / "store", format="parquet", partitioning="hive").to_table()
    proxy, index, score = (np.asarray(t.column(c).to_pylist()) for c in ("proxy", "index", "score"))
    return {p: score[proxy == p][np.argsort(index[proxy == p])] for p in np.unique(proxy)}


def test_impossible_process_and_device_settings_are_refused_before_output(tmp_path, data_dir):
    from experiments import score_all

    with pytest.raises(ValueError, match="--num-processes 2 needs --coordinator"):
        score_all.main(TINY + ["--num-processes", "2", "--data-dir", str(data_dir), "--out", str(tmp_path / "a")])
    with pytest.raises(ValueError, match="--devices 64 but this process sees"):
        score_all.main(TINY + ["--devices", "64", "--data-dir", str(data_dir), "--out", str(tmp_path / "b")])
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.slow  # three fresh processes, each compiling the proxies (about 1 minute)
def test_killed_run_resumes_without_recomputing_and_the_store_is_complete(tmp_path, data_dir):
    out = tmp_path / "run"
    args = TINY + ["--data-dir", str(data_dir), "--out", str(out)]
    killed = _run(args, {"KILL_AFTER": "4"}, check=False)
    assert killed.returncode == -9
    files = sorted((out / "store").rglob("*.parquet"))
    assert len(files) == 4  # params' 3 chunks and naswot's first; nothing half-written is left
    before = {f: f.stat().st_mtime_ns for f in files}
    _run(args)
    assert {f: f.stat().st_mtime_ns for f in files} == before  # finished chunks were not rewritten
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stored_rows"] == {"params": 40, "naswot": 40}
    assert summary["throughput"]["params"]["cells"] == 0 and summary["throughput"]["naswot"]["cells"] == 24
    fresh = tmp_path / "fresh"
    _run(TINY + ["--data-dir", str(data_dir), "--out", str(fresh)])
    a, b = _store(out), _store(fresh)
    for p in ("params", "naswot"):
        np.testing.assert_array_equal(a[p], b[p])  # resumed store = uninterrupted store
    assert not list((out / "store").rglob("*.tmp*"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # two jax.distributed processes plus a reference run (about 1 minute)
def test_two_processes_with_two_devices_each_give_the_one_device_scores(tmp_path, data_dir):
    one = tmp_path / "one"
    _run(TINY + ["--devices", "1", "--data-dir", str(data_dir), "--out", str(one)])
    two = tmp_path / "two"
    port = _free_port()
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    args = TINY + ["--data-dir", str(data_dir), "--out", str(two), "--devices", "2", "--coordinator", f"localhost:{port}",
                   "--num-processes", "2"]
    procs = [subprocess.Popen([sys.executable, "-c", _RUN, *args, "--process-id", str(i)], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
    summary = json.loads((two / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["devices"] == 2 and summary["stored_rows"] == {"params": 40, "naswot": 40}
    a, b = _store(one), _store(two)
    for p in ("params", "naswot"):
        np.testing.assert_allclose(b[p], a[p], rtol=1e-6)  # sharded over 4 devices in 2 processes
    # The correlations are computed from the gathered scores on process 0: equal only if
    # every process's block came back in its place.
    c1, c2 = (json.loads((d / "correlations.json").read_text()) for d in (one, two))
    assert c1.keys() == c2.keys()
    for col in c1:
        for p in ("params", "naswot"):
            assert c2[col][p]["n"] == c1[col][p]["n"] == 40
            assert c2[col][p]["spearman"] == pytest.approx(c1[col][p]["spearman"], abs=1e-9)
