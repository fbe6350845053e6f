"""A search driven from Python: any strategy, any objective (tabular, proxy or real training),
a tqdm bar, every evaluation appended to a JSONL file, and resume after interruption.

Keys are derived exactly as in :func:`jnas.strategies.base.search`, so for a jittable strategy
and objective the Python run and the scanned run evaluate the same architectures. On
restart, the recorded steps are replayed: the strategy is asked again with the same keys,
the architectures are checked against the record, and the recorded fitness is told back
without calling the objective. No evaluation is lost or repeated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import jax
import numpy as np
from jaxtyping import PRNGKeyArray
from tqdm.auto import tqdm

from jnas.records import Records
from jnas.strategies.base import PyTree, Strategy, Trace, resolve


def run(
    strategy: Strategy, params: PyTree, objective: Callable, budget: int, key: PRNGKeyArray,
    log: str | Path | None = None, progress: bool = True,
) -> Trace:
    """Search until ``budget`` architectures are evaluated (rounded up to whole asks).

    Args:
      objective: ``archs (B, ...) -> (fitness (B,), report (B,))``; numpy or jax arrays.
      log: JSONL file, one line per ask: ``{"step", "archs", "fitness", "report", "metrics"}``.
    Returns:
      the :class:`Trace` of the whole search, including replayed steps; ``metrics`` stacks
      what each ``tell`` returned (a dict of ``(steps, ...)`` arrays).
    """
    params = resolve(params, strategy.params)
    steps = -(-budget // strategy.batch)
    k_init, k_run = jax.random.split(key)
    keys = jax.random.split(k_run, steps)
    ask = jax.jit(strategy.ask) if strategy.jittable else strategy.ask
    tell = jax.jit(strategy.tell) if strategy.jittable else strategy.tell
    state = strategy.init(k_init, params)
    records = None if log is None else Records(log)
    done = [] if records is None else records.read()
    archs_all, fit_all, rep_all, metrics_all = [], [], [], []
    for t in tqdm(range(steps), desc="search", disable=not progress):
        k_ask, k_tell = jax.random.split(keys[t])
        archs, state = ask(k_ask, state, params)
        archs = np.asarray(archs)
        if t < len(done):
            rec = done[t]
            if np.asarray(rec["archs"]).tolist() != archs.tolist():
                raise ValueError(f"{log} holds another search: step {t} evaluated {rec['archs']}, now {archs.tolist()}; "
                                 "resume with the same settings or use a fresh log")
            fit, rep = np.asarray(rec["fitness"], np.float32), np.asarray(rec["report"], np.float32)
            state, metrics = tell(k_tell, archs, fit, state, params)
        else:
            fit, rep = (np.asarray(v, np.float32) for v in objective(archs))
            state, metrics = tell(k_tell, archs, fit, state, params)
            if records is not None:
                records.append({"step": t, "archs": archs.tolist(), "fitness": fit.tolist(), "report": rep.tolist(),
                                "metrics": {k: np.asarray(v).tolist() for k, v in metrics.items()}})
        archs_all.append(archs)
        fit_all.append(fit)
        rep_all.append(rep)
        metrics_all.append({k: np.asarray(v) for k, v in metrics.items()})
    stacked = {k: np.stack([m[k] for m in metrics_all]) for k in (metrics_all[0] if metrics_all else {})}
    return Trace(np.stack(archs_all), np.stack(fit_all), np.stack(rep_all), stacked)
