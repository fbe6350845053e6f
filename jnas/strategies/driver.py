"""A search driven from Python: any strategy, any objective (tabular, proxy or real training),
a tqdm bar, every evaluation appended to a JSONL log, and resume after interruption.

Keys are derived exactly as in :func:`jnas.strategies.base.search`, so for a jittable strategy
and objective the Python run and the scanned run evaluate the same architectures. On
restart, the recorded steps are replayed: the strategy is asked again with the same keys,
the architectures (and budgets) are checked against the record, and the recorded results
are told back without calling the objective. No evaluation is lost or repeated; a record
torn by a kill is dropped and its evaluation redone (:class:`jnas.records.Records`).

Multi-fidelity strategies (:mod:`jnas.estimation.multifidelity`) ask for a
:class:`~jnas.strategies.base.Query` of architectures and budgets; their objective returns
a cost as well, and ``max_cost`` stops the run once that much is spent (the evaluation
that crosses it is the last).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Callable

import jax
import numpy as np
from jaxtyping import PRNGKeyArray
from tqdm.auto import tqdm

from jnas.records import Records
from jnas.strategies.base import FIX_NONFINITE, PyTree, Query, Strategy, Trace, check_nonfinite_option, resolve


def run(
    strategy: Strategy, params: PyTree, objective: Callable, budget: int | None, key: PRNGKeyArray,
    log: str | Path | None = None, progress: bool = True, max_cost: float | None = None,
    nonfinite: str = "raise",
) -> Trace:
    """Search until ``budget`` architectures are evaluated (rounded up to whole asks), or
    until ``max_cost`` is spent.

    Args:
      objective: ``archs (B, ...) -> (fitness (B,), report (B,))``; for a strategy that asks
        :class:`Query` objects, ``(archs, budgets) -> (fitness, report, cost)``. numpy or jax.
      budget: most evaluations (None: no limit; then ``max_cost`` is required).
      log: JSONL file, one record per ask: ``{"step", "archs", "fitness", "report", "metrics"}``
        (plus ``"budgets"`` and ``"cost"`` for queries with budgets).
      max_cost: stop once the objective's summed cost reaches it (queries with budgets only).
      nonfinite: what a NaN or infinite fitness does: ``"raise"`` (default) stops with a
        ValueError naming the step and architectures; ``"worst"`` tells the strategy the worst
        finite fitness seen so far instead (per objective; 0 before any), so a diverged
        training or a missing table entry never becomes an incumbent or freezes a policy. The
        log and the returned trace keep the value the objective returned.
    Returns:
      the :class:`Trace` of the whole search, including replayed steps; ``metrics`` stacks
      what each ``tell`` returned (a dict of ``(steps, ...)`` arrays).
    Raises:
      ValueError: no limit given, a bad limit, or a log that holds another search.
    """
    if budget is None and max_cost is None:
        raise ValueError("give a budget (evaluations), a max_cost, or both")
    if budget is not None and budget < 1:
        raise ValueError(f"budget must be >= 1 evaluation, got {budget}")
    if max_cost is not None and not max_cost > 0:
        raise ValueError(f"max_cost must be > 0, got {max_cost}")
    check_nonfinite_option(nonfinite)
    worst = None  # running minimum of the finite fitness told so far (per objective)
    params = resolve(params, strategy.params)
    steps = None if budget is None else -(-budget // strategy.batch)
    k_init, k_run = jax.random.split(key)
    keys = jax.random.split(k_run, steps) if steps is not None else None
    ask = jax.jit(strategy.ask) if strategy.jittable else strategy.ask
    tell = jax.jit(strategy.tell) if strategy.jittable else strategy.tell
    state = strategy.init(k_init, params)
    records = None if log is None else Records(log)
    done = [] if records is None else records.read()
    out = {k: [] for k in ("archs", "fitness", "report", "metrics", "budgets", "cost")}
    spent, evaluated = 0.0, 0
    with tqdm(total=steps, desc="search", disable=not progress) as bar:
        for t in itertools.count() if steps is None else range(steps):
            step_key = keys[t] if keys is not None else jax.random.fold_in(k_run, t)
            k_ask, k_tell = jax.random.split(step_key)
            query, state = ask(k_ask, state, params)
            fidelity = isinstance(query, Query)
            archs = np.asarray(query.archs if fidelity else query)
            budgets = np.asarray(query.budgets, np.float64) if fidelity else None
            if t < len(done):
                rec = done[t]
                if (np.asarray(rec["archs"]).tolist() != archs.tolist()
                        or (fidelity and not np.allclose(rec.get("budgets", []), budgets))):
                    raise ValueError(f"{log} holds another search: step {t} evaluated {rec['archs']}"
                                     f"{' at ' + str(rec.get('budgets')) if fidelity else ''}, now {archs.tolist()}"
                                     f"{' at ' + str(budgets.tolist()) if fidelity else ''}; "
                                     "resume with the same settings or use a fresh log")
                fit, rep = np.asarray(rec["fitness"], np.float32), np.asarray(rec["report"], np.float32)
                cost = np.asarray(rec["cost"], np.float64) if fidelity else None
                told, worst = _finite_fitness(fit, worst, nonfinite, t, archs)
                state, metrics = tell(k_tell, query, told, state, params)
            else:
                if fidelity:
                    fit, rep, cost = objective(archs, budgets)
                    cost = np.asarray(cost, np.float64)
                else:
                    fit, rep = objective(archs)
                    cost = None
                fit, rep = np.asarray(fit, np.float32), np.asarray(rep, np.float32)
                told, worst = _finite_fitness(fit, worst, nonfinite, t, archs)
                state, metrics = tell(k_tell, query, told, state, params)
                if records is not None:
                    rec = {"step": t, "archs": archs.tolist(), "fitness": fit.tolist(), "report": rep.tolist(),
                           "metrics": {k: np.asarray(v).tolist() for k, v in metrics.items()}}
                    if fidelity:
                        rec.update(budgets=budgets.tolist(), cost=cost.tolist())
                    records.append(rec)
            for k, v in (("archs", archs), ("fitness", fit), ("report", rep), ("budgets", budgets), ("cost", cost)):
                out[k].append(v)
            out["metrics"].append({k: np.asarray(v) for k, v in metrics.items()})
            bar.update()
            evaluated += len(archs)
            if budget is not None and evaluated >= budget:  # asks of varying size (whole rungs) end early
                break
            if fidelity and max_cost is not None:
                spent += float(np.sum(cost))
                if spent >= max_cost:
                    break
    metrics = {k: np.stack([m[k] for m in out["metrics"]]) for k in (out["metrics"][0] if out["metrics"] else {})}
    fidelity_run = bool(out["budgets"]) and out["budgets"][0] is not None
    ragged = len({len(a) for a in out["archs"]}) > 1

    def rows(k: str) -> np.ndarray:  # (steps, B, ...), or one row per evaluation when asks vary in size
        return np.concatenate(out[k])[:, None] if ragged else np.stack(out[k])

    return Trace(rows("archs"), rows("fitness"), rows("report"), metrics,
                 rows("budgets") if fidelity_run else None, rows("cost") if fidelity_run else None)


def _finite_fitness(fit: np.ndarray, worst: np.ndarray | None, nonfinite: str, step: int, archs: np.ndarray):
    """The fitness to tell (see ``run``'s ``nonfinite``) and the updated running minimum."""
    finite = np.isfinite(fit)
    if not finite.all() and nonfinite == "raise":
        raise ValueError(f"the objective returned non-finite fitness {fit.tolist()} at step {step} for "
                         f"{archs.tolist()}; {FIX_NONFINITE}")
    flat = fit.reshape(fit.shape[0], -1)
    batch_min = np.where(np.isfinite(flat), flat, np.inf).min(0)
    worst = batch_min if worst is None else np.minimum(worst, batch_min)
    fill = np.where(np.isfinite(worst), worst, 0.0)
    told = np.where(np.isfinite(flat), flat, fill[None, :]).reshape(fit.shape).astype(np.float32)
    return told, worst
