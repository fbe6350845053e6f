"""Ray dispatch (jnas.strategies.remote): the same search as in one process, a killed worker
costs no finished evaluation, a restarted driver repeats none."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from jnas import strategies  # noqa: E402
from jnas.estimation import multifidelity as mf  # noqa: E402
from jnas.spaces import nb201  # noqa: E402
from jnas.strategies.remote import ray_objective  # noqa: E402


def table_lookup(arch, acc, log=None, kill_index=None, marker=None):
    """Table accuracy of ``arch`` (fitness and report). With ``kill_index``, the worker that
    first gets that cell dies (os._exit, as a killed process) before finishing it."""
    index = int(nb201.to_index(np.asarray(arch)))
    if index == kill_index and not Path(marker).exists():
        Path(marker).write_text("died")
        os._exit(1)
    if log is not None:
        with open(log, "a") as f:
            f.write(f"{index}\n")
    return float(acc[index]), float(acc[index])


def table_fidelity(arch, budget, acc12, acc200, spans=None):
    """A two-fidelity objective read from the table: budget >= 200 reads the 200-epoch column.
    With ``spans``, each call appends its start and end time there after 0.2 s of sleep."""
    import time

    index = int(nb201.to_index(np.asarray(arch)))
    if spans is not None:
        start = time.time()
        time.sleep(0.2)
        with open(spans, "a") as f:
            f.write(f"{start} {time.time()}\n")
    value, cost = (acc200[index], 200.0) if budget >= 200 else (acc12[index], 12.0)
    return float(value), float(value), cost


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def _serial(acc):
    def objective(archs):
        f = np.array([acc[int(nb201.to_index(a))] for a in np.asarray(archs)], np.float32)
        return f, f
    return objective


def test_a_search_on_ray_equals_the_serial_search_even_when_a_worker_dies(local_ray, table, tmp_path):
    acc = np.asarray(table.column("c10_test_acc_200ep"))
    rs = strategies.get("rs", batch=6)
    key = __import__("jax").random.key(3)
    serial = strategies.run(rs, None, _serial(acc), 24, key, progress=False)
    victim = int(nb201.to_index(serial.archs.reshape(-1, 6)[7]))  # a cell of the second ask
    log, marker = tmp_path / "evaluated.txt", tmp_path / "died"
    evaluate = functools.partial(table_lookup, acc=acc, log=str(log), kill_index=victim, marker=str(marker))
    remote = strategies.run(rs, None, ray_objective(evaluate, cache=tmp_path / "cache.jsonl"), 24, key, progress=False)
    assert marker.exists()  # the worker did die mid-search, and Ray reran its task
    np.testing.assert_array_equal(remote.archs, serial.archs)
    np.testing.assert_array_equal(remote.fitness, serial.fitness)
    finished = [int(v) for v in log.read_text().split()]
    assert sorted(finished) == sorted(set(finished)) and len(finished) == len({tuple(a) for a in serial.archs.reshape(-1, 6)})
    # A restarted driver (fresh strategy log, same cache) sends nothing to the workers again.
    again = strategies.run(rs, None, ray_objective(evaluate, cache=tmp_path / "cache.jsonl"), 24, key, progress=False)
    np.testing.assert_array_equal(again.fitness, serial.fitness)
    assert [int(v) for v in log.read_text().split()] == finished


def test_multi_fidelity_queries_run_on_ray_as_in_one_process(local_ray, table, tmp_path):
    import jax

    acc12, acc200 = (np.asarray(table.column(c)) for c in ("c10_test_acc_12ep", "c10_test_acc_200ep"))
    sh = mf.successive_halving(nb201.SPACE, n=9, r_min=12, r_max=200, eta=3)
    evaluate = functools.partial(table_fidelity, acc12=acc12, acc200=acc200)
    serial_obj = mf.batched(lambda a, b: (table_fidelity(a, b, acc12, acc200)[0], table_fidelity(a, b, acc12, acc200)[2]))
    key = jax.random.key(0)
    serial = strategies.run(sh, None, serial_obj, None, key, max_cost=800, progress=False)
    remote = strategies.run(sh, None, ray_objective(evaluate), None, key, max_cost=800, progress=False)
    np.testing.assert_array_equal(remote.archs, serial.archs)
    np.testing.assert_array_equal(remote.budgets, serial.budgets)
    np.testing.assert_array_equal(remote.fitness, serial.fitness)
    np.testing.assert_array_equal(remote.cost, serial.cost)
    # Whole rungs: each rung is one ask whose evaluations run side by side on the two workers,
    # and the evaluations are the serial run's.
    spans = tmp_path / "spans.txt"
    rungs = mf.successive_halving(nb201.SPACE, n=9, r_min=12, r_max=200, eta=3, whole_rungs=True)
    parallel = strategies.run(rungs, None, ray_objective(functools.partial(evaluate, spans=str(spans))), None, key,
                              max_cost=800, progress=False)
    n = min(len(parallel.archs), serial.archs.size // 6)
    np.testing.assert_array_equal(parallel.archs.reshape(-1, 6)[:n], serial.archs.reshape(-1, 6)[:n])
    np.testing.assert_array_equal(parallel.fitness.ravel()[:n], serial.fitness.ravel()[:n])
    times = sorted(tuple(map(float, line.split())) for line in spans.read_text().splitlines())
    assert any(b[0] < a[1] for a, b in zip(times, times[1:]))  # some evaluation started before another ended
