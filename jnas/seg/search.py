"""Zero-shot search in the hybrid space: candidates are scored by the dense proxies
(:mod:`jnas.seg.proxies`) aggregated against a reference pool, and searched with
``jnas.strategies``' NSGA-II (score against FLOPs and per-device latency) and regularized
evolution (score minus the complexity term above a FLOPs budget).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import jax
import numpy as np

from jnas import strategies
from jnas.seg import latency, proxies
from jnas.seg.losses import complexity
from jnas.spaces.hybrid import HybridSpace
from jnas.strategies import nsga2 as N


class Scorer:
    """Scores, aggregate and costs of candidates, memoised by architecture string (searches
    revisit candidates; each is scored once, with the same key, so a revisit changes nothing)."""

    def __init__(self, space: HybridSpace, chosen, images, key, reference: np.ndarray,
                 tables: dict[str, dict[str, float]], mode: str = "map", chunk: int = 16):
        self.space, self.chosen, self.images, self.key = space, tuple(chosen), images, key
        self.reference, self.tables, self.mode, self.chunk = reference, tables, mode, chunk
        self.params = proxies.init_params(space, jax.random.split(key)[0])
        self.cache: dict[str, np.ndarray] = {}

    def raw(self, archs) -> np.ndarray:
        archs = np.atleast_2d(self.space.check(archs))
        names = [self.space.to_string(a) for a in archs]
        todo = sorted({n for n in names if n not in self.cache})
        if todo:
            new = np.stack([self.space.from_string(n) for n in todo])
            vals = proxies.score(self.chosen, self.space, new, self.images, self.key, self.mode, self.chunk,
                                 progress=False, params=self.params)
            self.cache.update(zip(todo, vals))
        return np.stack([self.cache[n] for n in names])

    def costs(self, archs) -> dict[str, np.ndarray]:
        """``flops`` (analytic) and ``latency_<device>`` (seconds, from each table)."""
        out = {"flops": proxies.analytic(self.space, archs)[:, 1]}
        for device, table in self.tables.items():
            out[f"latency_{device}"] = latency.predict(self.space, table, archs)
        return out

    def remember(self, trace, space: HybridSpace | None = None) -> None:
        """Cache the raw scores a search logged as its report (replayed steps included), so a
        resumed run does not score its candidates again. ``space``: the variant the search ran
        in (:func:`searched`)."""
        archs = searched(self, trace, space)
        report = np.asarray(trace.report, np.float64).reshape(len(archs), -1)
        self.cache.update({self.space.to_string(a): r for a, r in zip(archs, report)})

    def aggregate(self, archs) -> np.ndarray:
        return proxies.aggregate(self.raw(archs), self.reference)


def searched(scorer: Scorer, trace, space: HybridSpace | None = None) -> np.ndarray:
    """A search trace's candidates as genomes of the scorer's space (a search may run in a
    variant of it, e.g. one resolution only: genes are re-encoded by value)."""
    space = scorer.space if space is None else space
    return scorer.space.convert(np.asarray(trace.archs).reshape(-1, *space.arch_shape), space)


def nsga2_objective(scorer: Scorer, space: HybridSpace | None = None) -> tuple[Callable, list[str]]:
    """``archs -> ((B, 1 + C) fitness, (B, P) raw scores)``: the aggregate, then every cost
    negated (NSGA-II maximises); and the column names. ``space``: the variant the searched
    genomes belong to (default: the scorer's)."""
    space = scorer.space if space is None else space

    def objective(archs):
        archs = scorer.space.convert(archs, space)
        c = scorer.costs(archs)
        F = np.column_stack([scorer.aggregate(archs)] + [-c[k] for k in sorted(c)])
        return F, scorer.raw(archs)
    costs = sorted(["flops"] + [f"latency_{device}" for device in scorer.tables])  # the keys of Scorer.costs
    return objective, ["aggregate"] + [f"-{k}" for k in costs]


def run_nsga2(scorer: Scorer, population: int, generations: int, key, log: Path, progress: bool = True,
              space: HybridSpace | None = None):
    """NSGA-II over ``space`` (default: the scorer's; its trace holds that variant's genomes,
    :func:`searched` turns them into the scorer's)."""
    space = scorer.space if space is None else space
    objective, columns = nsga2_objective(scorer, space)
    strategy = N.nsga2(space, population=population, num_objectives=len(columns))
    trace = strategies.run(strategy, None, objective, population * (generations + 1), key, log=log, progress=progress)
    scorer.remember(trace, space)
    return trace, columns


def run_rea(scorer: Scorer, flops_budget: float, evaluations: int, key, log: Path, penalty: float = 10.0,
            population: int = 20, sample_size: int = 5, progress: bool = True, space: HybridSpace | None = None):
    """Regularized evolution on ``aggregate - penalty * complexity(flops, budget)`` over
    ``space`` (as :func:`run_nsga2`)."""
    space = scorer.space if space is None else space

    def objective(archs):
        archs = scorer.space.convert(archs, space)
        flops = scorer.costs(archs)["flops"]
        fit = scorer.aggregate(archs) - penalty * np.array([complexity(f, flops_budget) for f in flops])
        return fit, scorer.raw(archs)

    strategy = strategies.regularized_evolution(space, population=population, sample_size=sample_size)
    trace = strategies.run(strategy, None, objective, evaluations, key, log=log, progress=progress)
    scorer.remember(trace, space)
    return trace


def pareto_under(score: np.ndarray, cost: np.ndarray, budget: float) -> np.ndarray:
    """Indices of the candidates within ``budget`` that no other such candidate beats on both
    score (higher) and cost (lower), by increasing cost."""
    ok = np.flatnonzero(cost <= budget)
    if not len(ok):
        return ok
    front = ok[N.pareto_front(np.column_stack([score[ok], -cost[ok]]))]
    return front[np.argsort(cost[front])]
