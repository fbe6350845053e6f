"""Multi-fidelity search: successive halving, Hyperband, BOHB and ASHA (plus random search at
full budget as the reference), over any objective ``(arch, budget) -> (value, cost)``.

* Successive halving (Jamieson & Talwalkar 2016): n configurations at budget r, keep the
  best 1/eta at eta times the budget, until one rung reaches r_max.
* Hyperband (Li et al. 2018): brackets s = s_max..0 of successive halving with
  n = ceil((s_max + 1) / (s + 1) * eta^s) configurations starting at r_max * eta^-s
  (:func:`hyperband_brackets` reproduces the paper's Table 1 for R = 81, eta = 3).
* BOHB (Falkner et al. 2018): Hyperband whose new configurations come, with probability
  1 - rho, from a TPE-style density ratio l(x)/g(x) fitted on the largest budget with enough
  observations (Aitchison-Aitken kernels for the categorical op choices, statsmodels'
  normal-reference bandwidths, bandwidth factor 3, 64 candidates, top 15% as "good").
* ASHA (Li et al. 2020): asynchronous promotions -- a free worker promotes the best
  not-yet-promoted configuration in the top 1/eta of the highest rung it can, else starts a
  new one at the bottom; simulated with ``workers`` workers and job length = cost.

Larger values are better. An :class:`Evaluator` counts the cost (epochs) spent, stops a
method once ``max_cost`` is used, records every evaluation, and -- given a cache file --
replays finished evaluations when a killed run is restarted with the same settings, so no
evaluation is lost or repeated. Configurations are categorical vectors (e.g. NB201 cells);
``sampler(key, n) -> (n, d)`` draws them and :func:`warm_start` makes a sampler that ranks
``factor * n`` random candidates by a zero-cost proxy and keeps the best n.
"""

from __future__ import annotations

import heapq
import math
from pathlib import Path
from typing import Callable

import jax
import numpy as np
from jaxtyping import PRNGKeyArray

from jnas.records import Records

Objective = Callable[[np.ndarray, float], tuple[float, float]]
Sampler = Callable[[PRNGKeyArray, int], np.ndarray]


class BudgetExhausted(Exception):
    """Raised by :class:`Evaluator` when the cost budget is spent."""


class Evaluator:
    """Counts cost, records evaluations, and replays them from ``cache`` after a restart.

    Args:
      objective: ``(arch, budget) -> (value, cost)``.
      max_cost: total cost allowed; the evaluation that crosses it is the last one.
      cache: JSONL file of finished evaluations (one line each, in call order).
      report: optional ``arch -> float`` logged beside each evaluation (e.g. test accuracy).
    """

    def __init__(self, objective: Objective, max_cost: float, cache: str | Path | None = None,
                 report: Callable[[np.ndarray], float] | None = None):
        self.objective, self.max_cost, self.report = objective, max_cost, report
        self.cache = Path(cache) if cache else None
        self._records = Records(self.cache) if cache else None
        self.history: list[dict] = []
        self._replay = self._records.read() if cache else []

    @property
    def cost(self) -> float:
        return self.history[-1]["total_cost"] if self.history else 0.0

    def __call__(self, arch, budget: float, tag: str = "") -> float:
        if self.cost >= self.max_cost:
            raise BudgetExhausted
        arch = [int(a) for a in np.asarray(arch).ravel()]
        i = len(self.history)
        if i < len(self._replay):
            rec = self._replay[i]
            if rec["arch"] != arch or not math.isclose(rec["budget"], budget):
                raise ValueError(
                    f"{self.cache} holds another run: evaluation {i} was {rec['arch']} at budget {rec['budget']}, "
                    f"now {arch} at {budget}; resume with the same settings or use a fresh cache"
                )
        else:
            value, cost = self.objective(np.asarray(arch), budget)
            rec = {"arch": arch, "budget": float(budget), "value": float(value), "cost": float(cost),
                   "total_cost": self.cost + float(cost), "tag": tag}
            if self.report is not None:
                rec["report"] = float(self.report(np.asarray(arch)))
            if self._records is not None:
                self._records.append(rec)
        self.history.append(rec)
        return rec["value"]


def incumbent_curve(history: list[dict]) -> list[dict]:
    """After each evaluation: the incumbent (best value at the largest budget seen so far) and
    its report. Returns ``[{"total_cost", "value", "report", "arch"}]``."""
    out, top, best = [], -math.inf, None
    for rec in history:
        if rec["budget"] > top or (rec["budget"] == top and rec["value"] > best["value"]):
            top, best = rec["budget"], rec
        out.append({"total_cost": rec["total_cost"], "value": best["value"], "report": best.get("report"),
                    "arch": best["arch"]})
    return out


# ---------------------------------------------------------------- schedules


def hyperband_brackets(r_min: float, r_max: float, eta: float = 3) -> list[list[tuple[int, float]]]:
    """Hyperband's brackets as lists of rungs ``(n_i, r_i)``, s = s_max first.

    With R = r_max / r_min and s_max = floor(log_eta R): bracket s starts
    n = ceil((s_max + 1) / (s + 1) * eta^s) configurations at r = r_max * eta^-s, and rung i
    keeps floor(n * eta^-i) of them at r * eta^i.
    """
    if r_min <= 0 or r_max < r_min or eta <= 1:
        raise ValueError(f"need 0 < r_min <= r_max and eta > 1, got r_min={r_min}, r_max={r_max}, eta={eta}")
    s_max = int(math.floor(math.log(r_max / r_min) / math.log(eta) + 1e-9))
    brackets = []
    for s in range(s_max, -1, -1):
        n = int(math.ceil((s_max + 1) / (s + 1) * eta**s - 1e-9))
        r = r_max * eta ** (-s)
        brackets.append([(int(math.floor(n * eta ** (-i) + 1e-9)), r * eta**i) for i in range(s + 1)])
    return brackets


def sh_rungs(n: int, r_min: float, r_max: float, eta: float = 3) -> list[tuple[int, float]]:
    """Successive halving from n configurations at r_min: rungs ``(floor(n eta^-i), r_min eta^i)``
    up to r_max (the last rung is at r_max exactly)."""
    rungs = int(math.floor(math.log(r_max / r_min) / math.log(eta) + 1e-9))
    return [(int(math.floor(n * eta ** (-i) + 1e-9)), min(r_min * eta**i, r_max) if i < rungs else r_max)
            for i in range(rungs + 1)]


# ---------------------------------------------------------------- methods


def _run_rungs(ev: Evaluator, configs: np.ndarray, rungs: list[tuple[int, float]], tag: str,
               observe: Callable | None = None) -> None:
    """Successive halving over given rungs: evaluate, keep the best n_{i+1}, raise the budget."""
    for i, (n_i, r_i) in enumerate(rungs):
        configs = configs[:max(n_i, 1)]
        values = np.array([ev(c, r_i, f"{tag} rung {i}") for c in configs])
        if observe is not None:
            observe(configs, values, r_i)
        order = np.argsort(-values, kind="stable")
        configs = configs[order]


def successive_halving(ev: Evaluator, sampler: Sampler, key: PRNGKeyArray, n: int, r_min: float, r_max: float,
                       eta: float = 3) -> None:
    """Repeat successive halving (fresh configurations each round) until the budget is spent."""
    try:
        for round_ in range(10**9):
            configs = np.asarray(sampler(jax.random.fold_in(key, round_), n))
            _run_rungs(ev, configs, sh_rungs(n, r_min, r_max, eta), f"sh {round_}")
    except BudgetExhausted:
        pass


def hyperband(ev: Evaluator, sampler: Sampler, key: PRNGKeyArray, r_min: float, r_max: float, eta: float = 3,
              propose: Callable | None = None, observe: Callable | None = None) -> None:
    """Hyperband iterations (all brackets, largest s first) until the budget is spent.

    ``propose(key, n) -> configs`` replaces the sampler for new configurations (BOHB's model)
    and ``observe(configs, values, budget)`` sees every rung's results.
    """
    propose = propose or sampler
    try:
        for it in range(10**9):
            for b, rungs in enumerate(hyperband_brackets(r_min, r_max, eta)):
                configs = np.asarray(propose(jax.random.fold_in(key, it * 1000 + b), rungs[0][0]))
                _run_rungs(ev, configs, rungs, f"hb {it} bracket {b}", observe)
    except BudgetExhausted:
        pass


def random_search(ev: Evaluator, sampler: Sampler, key: PRNGKeyArray, r_max: float, batch: int = 16) -> None:
    """Every configuration at the full budget r_max."""
    try:
        for i in range(10**9):
            for c in np.asarray(sampler(jax.random.fold_in(key, i), batch)):
                ev(c, r_max, "rs")
    except BudgetExhausted:
        pass


class TPE:
    """BOHB's model: per-budget observations and the l(x)/g(x) density ratio on categorical vectors.

    Args:
      cardinalities: number of categories of each dimension (NB201: (5,) * 6).
      gamma: fraction of observations that count as good (BOHB: 0.15).
      n_candidates: samples drawn from l(x) per proposal (BOHB: 64).
      bw_factor: bandwidth inflation when sampling candidates (BOHB: 3).
      min_bw: smallest bandwidth (BOHB: 1e-3).
    """

    def __init__(self, cardinalities, gamma: float = 0.15, n_candidates: int = 64, bw_factor: float = 3.0,
                 min_bw: float = 1e-3):
        self.card = np.asarray(cardinalities, np.int64)
        self.gamma, self.n_candidates, self.bw_factor, self.min_bw = gamma, n_candidates, bw_factor, min_bw
        self.min_points = len(self.card) + 1
        self.data: dict[float, tuple[list, list]] = {}

    def observe(self, configs, values, budget) -> None:
        xs, ys = self.data.setdefault(float(budget), ([], []))
        xs.extend(np.asarray(configs).tolist())
        ys.extend(np.asarray(values).tolist())

    def bandwidth(self, x: np.ndarray) -> np.ndarray:
        """statsmodels' normal-reference rule 1.06 sd n^(-1/(4+d)), clipped to [min_bw, (c-1)/c]."""
        n, d = x.shape
        bw = 1.06 * x.std(axis=0) * n ** (-1.0 / (4 + d))
        return np.clip(bw, self.min_bw, (self.card - 1) / self.card)

    def density(self, x: np.ndarray, data: np.ndarray, bw: np.ndarray) -> np.ndarray:
        """Aitchison-Aitken product-kernel density of rows ``x`` (m, d) given ``data`` (n, d)."""
        same = x[:, None, :] == data[None, :, :]
        k = np.where(same, 1.0 - bw, bw / (self.card - 1))
        return np.prod(k, axis=-1).mean(axis=1)

    def split(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(good, bad) observations on the largest budget that has enough of them, or None."""
        for budget in sorted(self.data, reverse=True):
            xs, ys = self.data[budget]
            if len(ys) < self.min_points + 2:
                continue
            x, y = np.asarray(xs), np.asarray(ys)
            order = np.argsort(-y, kind="stable")
            n_good = max(self.min_points, int(self.gamma * len(y)))
            n_bad = max(self.min_points, len(y) - n_good)
            return x[order[:n_good]], x[order[-n_bad:]]
        return None

    def propose(self, key: PRNGKeyArray, good: np.ndarray, bad: np.ndarray) -> np.ndarray:
        """The candidate maximising l(x)/g(x) among ``n_candidates`` drawn from the widened l."""
        bw_g, bw_b = self.bandwidth(good), self.bandwidth(bad)
        k_pick, k_keep, k_new = jax.random.split(key, 3)
        m, d = self.n_candidates, len(self.card)
        base = good[np.asarray(jax.random.randint(k_pick, (m,), 0, len(good)))]
        p_random = np.minimum(bw_g * self.bw_factor, 1.0)
        resample = np.asarray(jax.random.uniform(k_keep, (m, d))) < p_random
        fresh = np.floor(np.asarray(jax.random.uniform(k_new, (m, d))) * self.card).astype(np.int64)
        cand = np.where(resample, fresh, base)
        ratio = self.density(cand, good, bw_g) / np.maximum(self.density(cand, bad, bw_b), 1e-32)
        return cand[int(np.argmax(ratio))]


def bohb(ev: Evaluator, sampler: Sampler, key: PRNGKeyArray, r_min: float, r_max: float, cardinalities,
         eta: float = 3, random_fraction: float = 1 / 3, **tpe_kwargs) -> TPE:
    """Hyperband with TPE proposals; a fraction ``random_fraction`` of configurations stay random."""
    model = TPE(cardinalities, **tpe_kwargs)

    def propose(k, n):
        k_rand, k_mix, k_model = jax.random.split(k, 3)
        configs = np.array(sampler(k_rand, n))
        split = model.split()
        if split is None:
            return configs
        use_model = np.asarray(jax.random.uniform(k_mix, (n,))) >= random_fraction
        for i in np.flatnonzero(use_model):
            configs[i] = model.propose(jax.random.fold_in(k_model, int(i)), *split)
        return configs

    hyperband(ev, sampler, key, r_min, r_max, eta, propose=propose, observe=model.observe)
    return model


def asha(ev: Evaluator, sampler: Sampler, key: PRNGKeyArray, r_min: float, r_max: float, eta: float = 3,
         workers: int = 4) -> None:
    """Asynchronous successive halving, simulated: a job's duration is its cost."""
    budgets = [r for _, r in sh_rungs(1, r_min, r_max, eta)]
    top = len(budgets) - 1
    rungs: list[list[tuple[float, int]]] = [[] for _ in budgets]  # (value, config id) per rung
    promoted: list[set[int]] = [set() for _ in budgets]
    configs: list[np.ndarray] = []
    events: list[tuple[float, int, int, int, float]] = []  # (finish time, seq, config id, rung, value)
    seq = 0

    def get_job() -> tuple[int, int]:
        for k in range(top - 1, -1, -1):
            ranked = sorted(rungs[k], key=lambda t: -t[0])[: len(rungs[k]) // int(eta)]
            for _, cid in ranked:
                if cid not in promoted[k]:
                    promoted[k].add(cid)
                    return cid, k + 1
        configs.append(np.asarray(sampler(jax.random.fold_in(key, len(configs)), 1))[0])
        return len(configs) - 1, 0

    def start(now: float) -> None:
        nonlocal seq
        cid, k = get_job()
        before = ev.cost
        value = ev(configs[cid], budgets[k], f"asha rung {k}")
        heapq.heappush(events, (now + (ev.cost - before), seq, cid, k, value))
        seq += 1

    try:
        for _ in range(workers):
            start(0.0)
        while events:
            now, _, cid, k, value = heapq.heappop(events)
            rungs[k].append((value, cid))
            start(now)
    except BudgetExhausted:
        pass


def warm_start(sampler: Sampler, score: Callable[[np.ndarray], np.ndarray], factor: int = 4) -> Sampler:
    """A sampler that draws ``factor * n`` candidates and keeps the n best by a zero-cost score."""
    if factor < 1:
        raise ValueError(f"warm-start factor must be >= 1, got {factor}")

    def sample(key, n):
        cand = np.asarray(sampler(key, factor * n))
        s = np.asarray(score(cand))
        return cand[np.argsort(-s, kind="stable")[:n]]

    return sample


METHODS = ("sh", "hb", "bohb", "asha", "rs")


# ---------------------------------------------------------------- objectives


def fidelities(columns, metric: str) -> dict[float, str]:
    """Epoch budgets a table measures ``metric`` at: ``{E: "<metric>_<E>ep"}`` for every such column.

    Raises:
      ValueError: no ``<metric>_<E>ep`` column, listing the metrics that have some.
    """
    import re

    pat = re.compile(r"^(.*)_(\d+)ep$")
    found = {float(m.group(2)): c for c in columns if (m := pat.match(c)) and m.group(1) == metric}
    if not found:
        valid = sorted({m.group(1) for c in columns if (m := pat.match(c))})
        raise ValueError(f"no per-epoch columns for metric {metric!r}; metrics with <name>_<E>ep columns: {valid}")
    return dict(sorted(found.items()))


def tabular_objective(table, metric: str, space_index: Callable[[np.ndarray], int]) -> Objective:
    """``(arch, budget) -> (value, cost)`` read from a tabular benchmark.

    The value at ``budget`` is the metric of the longest training the table holds with at most
    ``budget`` epochs, and the cost is those epochs (the training that value actually needs).
    NAS-Bench-201's CIFAR-10 table has 12- and 200-epoch columns, each from its own cosine
    schedule, so a budget of 22 reads the 12-epoch value and costs 12.
    """
    cols = fidelities(table.columns, metric)
    epochs = np.array(sorted(cols))
    arrays = {e: np.asarray(table.columns[c]) for e, c in cols.items()}

    def objective(arch, budget):
        usable = epochs[epochs <= budget + 1e-9]
        if len(usable) == 0:
            raise ValueError(f"budget {budget} is below the smallest fidelity {epochs[0]} of {metric!r}")
        e = float(usable[-1])
        return float(arrays[e][space_index(arch)]), e

    return objective
