"""Evaluations as Ray tasks: an objective for :func:`jnas.strategies.run` that sends every
architecture of an ask to a Ray cluster, so the evaluations of one ask (each a network
trained for minutes to hours) run in parallel on the cluster's workers.

The strategy, its keys and the driver's log stay on the driver process; only ``evaluate``
runs remotely, so a search gives the same result on Ray as in one process whenever
``evaluate`` is deterministic. Robustness:

* a worker that dies mid-evaluation (killed, out of memory, node lost) is replaced and the
  task rerun by Ray (``max_retries`` system failures per task);
* each finished evaluation is appended to ``cache`` (a :class:`jnas.records.Records` file)
  the moment it arrives, and an item found there is never sent again, so neither a lost
  worker nor a restarted driver loses or repeats finished work.

Ray is optional (``pip install -e ".[ray]"``); this module imports it only when an
objective is built. Connect first (``ray.init()`` locally, ``ray.init(address="auto")`` on
a cluster); otherwise Ray starts a local instance.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from jnas.records import Records


def ray_objective(evaluate: Callable[..., tuple], *, cache: str | Path | None = None, max_retries: int = 3,
                  options: dict[str, Any] | None = None) -> Callable:
    """The driver objective that runs ``evaluate`` once per item as a Ray task.

    Args:
      evaluate: ``arch -> (fitness, report)``, or for strategies that ask with budgets
        (successive halving, Hyperband, BOHB, ASHA, DEHB) ``(arch, budget) -> (fitness,
        report, cost)``; must be picklable (a module-level function or a functools.partial).
      cache: JSON-lines file of finished evaluations, keyed by architecture (and budget).
      max_retries: reruns of a task whose worker died.
      options: Ray task options, e.g. ``{"num_cpus": 2}`` or ``{"num_gpus": 1}`` per evaluation.
    Returns:
      ``objective(archs) -> (fitness, report)`` or ``objective(archs, budgets) -> (fitness,
      report, cost)``, results in the order asked.
    """
    try:
        import ray
    except ImportError as e:
        raise ImportError('ray_objective needs Ray: pip install -e ".[ray]" (or pip install ray)') from e
    if max_retries < 0:
        raise ValueError(f"max_retries must be >= 0, got {max_retries}")
    task = ray.remote(_apply).options(max_retries=max_retries, retry_exceptions=False, **(options or {}))
    fn = ray.put(evaluate)  # shipped to the object store once, not with every task
    records = None if cache is None else Records(cache, key=lambda r: _key(r["arch"], r.get("budget")))
    done = {} if records is None else records.done()  # read once; kept up to date as results arrive

    def objective(archs, budgets=None):
        archs = np.asarray(archs)
        keys = [_key(a.tolist(), None if budgets is None else float(b))
                for a, b in zip(archs, budgets if budgets is not None else [None] * len(archs))]
        results: dict[int, tuple] = {i: tuple(done[k]["result"]) for i, k in enumerate(keys) if k in done}
        pending = {}
        for i, a in enumerate(archs):
            if i not in results:
                args = (a,) if budgets is None else (a, float(budgets[i]))
                pending[task.remote(fn, *args)] = i
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                i = pending.pop(ref)
                results[i] = tuple(float(v) for v in ray.get(ref))
                if records is not None:
                    rec = {"arch": archs[i].tolist(), "result": list(results[i])}
                    if budgets is not None:
                        rec["budget"] = float(budgets[i])
                    records.append(rec)
                    done[keys[i]] = rec
        columns = list(zip(*(results[i] for i in range(len(archs)))))
        return tuple(np.asarray(c) for c in columns)

    return objective


def _apply(evaluate: Callable[..., tuple], *args) -> tuple:
    """The remote task: one evaluation (Ray passes ``evaluate`` from the object store)."""
    return evaluate(*args)


def _key(arch: list, budget: float | None) -> str:
    return json.dumps([arch, budget])
