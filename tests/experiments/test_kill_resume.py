"""A kill -9 in the middle of an experiment, then a rerun, gives the results of a run that was
never interrupted: for every experiment that writes incrementally.

The killed run is a real process ended by SIGKILL (no cleanup, no flushing), at a chosen
write so the test is deterministic: either just after the k-th record or checkpoint is
durable, or half-way through writing the k-th record (a torn last line, as from power loss
or a full disk). The rerun must report the torn line, redo its unit and end with the same
records and summaries, byte for byte apart from the output path."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from tests.conftest import REPO

# The killed process: counts writes through jnas.records and jnas.checkpoints, and on the
# KILL_AT-th sends itself SIGKILL after the write; with KILL_TORN, half-way through the first
# record written at or after the KILL_AT-th write instead.
_KILLER = """
import importlib, json, os, signal, sys
import jax
jax.config.update("jax_compilation_cache_dir", os.environ["JNAS_TEST_COMPILATION_CACHE"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
from jnas import checkpoints, records
at, torn, count = int(os.environ["KILL_AT"]), os.environ["KILL_TORN"] == "1", [0]
append, save = records.Records.append, checkpoints.save

def kill_append(self, record):
    count[0] += 1
    if count[0] >= at and torn:
        line = json.dumps(records._finite(record), allow_nan=False).encode()
        with open(self.path, "ab") as f:
            f.write(line[: len(line) // 2]); f.flush(); os.fsync(f.fileno())
        os.kill(os.getpid(), signal.SIGKILL)
    append(self, record)
    if count[0] == at:
        os.kill(os.getpid(), signal.SIGKILL)

def kill_save(*a, **k):
    count[0] += 1
    save(*a, **k)
    if count[0] == at and not torn:
        os.kill(os.getpid(), signal.SIGKILL)

records.Records.append, checkpoints.save = kill_append, kill_save
importlib.import_module("experiments." + sys.argv[1]).main(sys.argv[2:])
"""

# experiment -> (arguments at toy size, the write to die at)
SMALL = {
    "search_nb201": (["--mode", "driver", "--strategy", "rea", "--seeds", "1", "--budget", "20"], 9),
}
SLOW = {
    "multifidelity": (["--method", "hb,dehb", "--seeds", "2", "--cost", "1500"], 40),
    "proxy_correlation": (["--n", "150", "--proxies", "params,flops"], 3),
    "darts_nb201": (["--method", "darts1", "--epochs", "3", "--n-images", "256", "--C", "4", "--batch", "32"], 3),
    "curve_extrapolation": (["--n-archs", "2", "--epochs", "3", "--fractions", "0.5", "--C", "4", "--mcmc-steps", "40"], 5),
    "genetic_cnn_mnist": (["--nodes", "3", "--r-c", "1", "--r-m", "1", "--population", "2", "--generations", "2", "--n-train", "256", "--n-val", "128",
                           "--epochs", "1", "--C", "4"], 2),
    "psocnn_mnist": (["--swarm", "2", "--iterations", "2", "--n-train", "256", "--n-val", "128", "--final-epochs", "1",
                      "--max-layers", "4", "--max-channels", "8", "--max-units", "16"], 2),
    "gnas_multiattr": (["--hidden-blocks", "2", "--C", "4", "--sweeps", "1", "--steps-per-layer", "5", "--final-steps", "10",
                        "--n-train", "256", "--n-val", "128"], 2),
    "train_arch": (["--epochs", "3", "--C", "4", "--data-fraction", "0.05", "--batch-size", "32"], 2),
}
NO_RECORDS = ("train_arch",)  # writes only checkpoints (atomic) and the trainer's metrics: a clean kill only
# Every case is slow (a child process compiles its own programs); the default tier's twins are
# the torn-line and torn-append tests of tests/test_records.py and the driver resume tests.
CASES = [pytest.param(name, args, at, torn, id=f"{name}-{'torn' if torn else 'clean'}", marks=pytest.mark.slow)
         for name, (args, at) in {**SMALL, **SLOW}.items() for torn in (True, False) if not (torn and name in NO_RECORDS)]


TIMINGS = ("seconds",)  # measured wall time: the one column a rerun may not reproduce


def _outputs(folder: Path) -> dict[str, object]:
    """Every result file (JSON, JSON lines, CSV) by relative path, without wall-time columns;
    PNGs, locks and checkpoints (binary, compared through what was computed from them) are left
    out. A unit redone after a kill may log its record twice: identical records in a row count
    once (a reader keeps the last record of a key)."""
    found = {}
    for p in sorted(folder.rglob("*")):
        if p.suffix not in (".json", ".jsonl", ".csv") or not p.is_file():
            continue
        text = p.read_text().replace(str(folder), "<out>")
        if p.suffix == ".jsonl":
            rows = [json.loads(x) for x in text.splitlines()]
            found[str(p.relative_to(folder))] = [r for i, r in enumerate(rows) if i == 0 or r != rows[i - 1]]
        elif p.suffix == ".csv":
            rows = list(csv.DictReader(io.StringIO(text)))
            found[str(p.relative_to(folder))] = [{k: v for k, v in r.items() if k not in TIMINGS} for r in rows]
        else:
            found[str(p.relative_to(folder))] = text
    return found


@pytest.mark.parametrize("name,args,at,torn", CASES)
def test_a_killed_run_resumes_to_the_uninterrupted_results(tmp_path, data_dir, name, args, at, torn):
    import importlib

    main = importlib.import_module(f"experiments.{name}").main
    args = args + ["--data-dir", str(data_dir)]
    main(args + ["--out", str(tmp_path / "a")])
    env = {**os.environ, "KILL_AT": str(at), "KILL_TORN": "1" if torn else "0", "PYTHONPATH": str(REPO)}
    killed = subprocess.run([sys.executable, "-c", _KILLER, name, *args, "--out", str(tmp_path / "b")],
                            cwd=REPO, env=env, capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr[-3000:]  # it died at the chosen write, not before or after
    tore = [p for p in (tmp_path / "b").rglob("*.jsonl") if not p.read_bytes().endswith(b"\n")]
    assert len(tore) == (1 if torn else 0)
    with pytest.warns(UserWarning, match=rf"{tore[0].name}.*line") if tore else warnings.catch_warnings():
        if not tore:
            warnings.simplefilter("error", UserWarning)  # nothing to report after a clean kill
        main(args + ["--out", str(tmp_path / "b")])
    a, b = _outputs(tmp_path / "a"), _outputs(tmp_path / "b")
    a.pop("config.json"), b.pop("config.json")
    assert a.keys() == b.keys()
    for path in a:
        assert b[path] == a[path], path
