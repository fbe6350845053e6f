"""Multi-fidelity search on the ask/tell API: successive halving, Hyperband, BOHB, ASHA and
DEHB ask for ``(architecture, budget)`` pairs and are told the results, so the same driver
(:func:`jnas.strategies.run`, with ``max_cost``), the same logs and the same resume run them
as every other strategy.

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
  new one at the bottom; simulated with ``workers`` workers, a job lasting its budget.
* DEHB (Awad, Mallik & Hutter, IJCAI 2021): Hyperband's brackets, where each budget keeps a
  differential-evolution subpopulation of unit-cube vectors (a gene's category is
  floor(u * choices)). The first bracket samples at random and seeds each budget's
  subpopulation with the configurations promoted to it; afterwards every rung evolves its
  budget's subpopulation: rand/1 mutation (F = 0.5) with parents from the best members of
  the lower budget's subpopulation (from the subpopulation itself at the bracket's first
  rung), binomial crossover (CR = 0.5), and the trial replaces its target when it is at
  least as good at that budget. Departure: DEHB draws mutation parents from a global
  population when a pool has fewer than three members; here the budget's own subpopulation
  tops it up.

A method is a generator over its own schedule that yields ``(configuration, budget)`` and is
sent each value, or yields a whole rung (a list of them) and is sent the list of values
(successive halving, Hyperband and BOHB; with ``whole_rungs=True`` a rung is one ask, whose
evaluations can run in parallel; ASHA and DEHB decide one query at a time); its ask/tell state is only the key and the results so far, and ``ask``
replays the results into the schedule (kept alive between calls, rebuilt after a resume), so
every query is a pure function of ``(key, results)``. Larger values are better.
Configurations are architectures of any space with ``choices`` (BOHB's TPE and DEHB's
vectors need categorical genes; SH, Hyperband and ASHA need only ``sample``); ``sample(key,
n)`` overrides the space's, e.g. :func:`warm_start`, which ranks ``factor * n`` random
candidates by a zero-cost proxy and keeps the best n. The objective the driver calls is
``(archs (B, ...), budgets (B,)) -> (fitness (B,), report (B,), cost (B,))``.
"""

from __future__ import annotations

import heapq
import itertools
import math
from typing import Callable, Generator, NamedTuple

import jax
import numpy as np
from jaxtyping import PRNGKeyArray

from jnas.spaces.base import Space, require
from jnas.strategies.base import Query, Strategy

Objective = Callable[[np.ndarray, float], tuple[float, float]]  # (arch, budget) -> (value, cost)
Sampler = Callable[[PRNGKeyArray, int], np.ndarray]
Schedule = Generator[tuple[np.ndarray, float] | list[tuple[np.ndarray, float]], float | list[float], None]


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
    _check_budgets(r_min, r_max, eta)
    s_max = int(math.floor(math.log(r_max / r_min) / math.log(eta) + 1e-9))
    brackets = []
    for s in range(s_max, -1, -1):
        n = int(math.ceil((s_max + 1) / (s + 1) * eta**s - 1e-9))
        r = r_max * eta ** (-s)
        brackets.append([(int(math.floor(n * eta ** (-i) + 1e-9)), r * eta**i) for i in range(s + 1)])
    return brackets


def _check_budgets(r_min: float, r_max: float, eta: float) -> None:
    if not (0 < r_min <= r_max and eta > 1 and math.isfinite(r_max) and math.isfinite(eta)):
        raise ValueError(f"need 0 < r_min <= r_max (finite) and eta > 1, got r_min={r_min}, r_max={r_max}, eta={eta}")


def sh_rungs(n: int, r_min: float, r_max: float, eta: float = 3) -> list[tuple[int, float]]:
    """Successive halving from n configurations at r_min: rungs ``(floor(n eta^-i), r_min eta^i)``
    up to r_max (the last rung is at r_max exactly)."""
    _check_budgets(r_min, r_max, eta)
    if n < 1:
        raise ValueError(f"successive halving needs n >= 1 configurations, got {n}")
    rungs = int(math.floor(math.log(r_max / r_min) / math.log(eta) + 1e-9))
    return [(int(math.floor(n * eta ** (-i) + 1e-9)), min(r_min * eta**i, r_max) if i < rungs else r_max)
            for i in range(rungs + 1)]


# ---------------------------------------------------------------- the ask/tell wrapper


class MFState(NamedTuple):
    key: PRNGKeyArray  # the schedule's own randomness
    results: tuple  # ((configuration as a tuple, budget, value), ...) in query order


def as_strategy(schedule: Callable[[PRNGKeyArray], Schedule], space: Space, whole_rungs: bool = False) -> Strategy:
    """A multi-fidelity :class:`Strategy` from ``schedule(key) -> generator`` (see module doc).

    A schedule yields one ``(configuration, budget)`` and is sent its value, or yields a list
    of queries that do not depend on each other (a rung) and is sent their values as a list.
    ``whole_rungs`` asks such a list in one ask (its evaluations can run in parallel, e.g. on
    Ray: :mod:`jnas.strategies.remote`); otherwise every ask is one query, so ``max_cost``
    stops the driver after a single evaluation. Both give the same queries and results."""
    live: dict = {}  # the running generator and the results it has consumed (a cache, never a source)

    def start(item) -> None:
        live["rung"] = isinstance(item, list)
        live["pending"], live["got"] = (item if live["rung"] else [item]), []

    def next_queries(state: MFState) -> list:
        done = state.results
        if live.get("key") is not state.key or live.get("seen") != done[: len(live.get("seen", ()))]:
            live.update(key=state.key, gen=schedule(state.key), seen=())
            start(next(live["gen"]))
        for rec in done[len(live["seen"]):]:  # replay results the generator has not seen yet
            config, budget = live["pending"][len(live["got"])]
            if tuple(np.asarray(config).ravel().tolist()) != rec[0] or not math.isclose(budget, rec[1]):
                raise ValueError(f"the results do not follow this schedule: it asked {np.asarray(config).tolist()} at "
                                 f"{budget}, the record holds {list(rec[0])} at {rec[1]}")
            live["got"].append(rec[2])
            live["seen"] = live["seen"] + (rec,)
            if len(live["got"]) == len(live["pending"]):
                start(live["gen"].send(live["got"] if live["rung"] else live["got"][0]))
        return live["pending"][len(live["got"]):]

    def init(key, params=None):
        return MFState(key, ())

    def ask(key, state, params=None):
        queries = next_queries(state)
        queries = queries if whole_rungs else queries[:1]
        return Query(np.stack([np.asarray(c, np.int32) for c, _ in queries]),
                     np.array([b for _, b in queries], np.float64)), state

    def tell(key, query, fitness, state, params=None):
        recs = tuple((tuple(np.asarray(a).ravel().tolist()), float(b), float(f))
                     for a, b, f in zip(np.asarray(query.archs), np.asarray(query.budgets), np.asarray(fitness)))
        return MFState(state.key, state.results + recs), {}

    return Strategy(init, ask, tell, 1, jittable=False, vmappable=False)


def _sampler(space: Space, sample: Sampler | None) -> Sampler:
    return sample if sample is not None else (lambda k, n: np.asarray(space.sample(k, n)))


def _rungs(configs: np.ndarray, rungs: list[tuple[int, float]], observe: Callable | None = None) -> Schedule:
    """Successive halving over given rungs: evaluate, keep the best n_{i+1}, raise the budget."""
    for n_i, r_i in rungs:
        configs = configs[:max(n_i, 1)]
        values = np.asarray((yield [(c, r_i) for c in configs]), np.float64)
        if observe is not None:
            observe(configs, values, r_i)
        configs = configs[np.argsort(-values, kind="stable")]


# ---------------------------------------------------------------- methods


def successive_halving(space: Space, n: int, r_min: float, r_max: float, eta: float = 3,
                       sample: Sampler | None = None, whole_rungs: bool = False) -> Strategy:
    """Rounds of successive halving, fresh configurations each round, until the cost is spent;
    ``whole_rungs`` asks each rung at once (:func:`as_strategy`)."""
    draw = _sampler(space, sample)
    sh_rungs(n, r_min, r_max, eta)  # validate now, not at the first ask

    def schedule(key):
        for round_ in itertools.count():
            yield from _rungs(np.asarray(draw(jax.random.fold_in(key, round_), n)), sh_rungs(n, r_min, r_max, eta))

    return as_strategy(schedule, space, whole_rungs)


def _hyperband_schedule(key, draw: Sampler, r_min, r_max, eta, propose=None, observe=None) -> Schedule:
    propose = propose or draw
    for it in itertools.count():
        for b, rungs in enumerate(hyperband_brackets(r_min, r_max, eta)):
            configs = np.asarray(propose(jax.random.fold_in(key, it * 1000 + b), rungs[0][0]))
            yield from _rungs(configs, rungs, observe)


def hyperband(space: Space, r_min: float, r_max: float, eta: float = 3, sample: Sampler | None = None,
              whole_rungs: bool = False) -> Strategy:
    """Hyperband iterations (all brackets, largest s first) until the cost is spent;
    ``whole_rungs`` asks each rung at once (:func:`as_strategy`)."""
    draw = _sampler(space, sample)
    hyperband_brackets(r_min, r_max, eta)  # validate now, not at the first ask
    return as_strategy(lambda key: _hyperband_schedule(key, draw, r_min, r_max, eta), space, whole_rungs)


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


def bohb(space: Space, r_min: float, r_max: float, eta: float = 3, random_fraction: float = 1 / 3,
         sample: Sampler | None = None, whole_rungs: bool = False, **tpe_kwargs) -> Strategy:
    """Hyperband with TPE proposals; a fraction ``random_fraction`` of configurations stay random;
    ``whole_rungs`` asks each rung at once (:func:`as_strategy`)."""
    require(space, "choices", who="BOHB")
    draw = _sampler(space, sample)
    hyperband_brackets(r_min, r_max, eta)

    def schedule(key):
        model = TPE(space.choices, **tpe_kwargs)

        def propose(k, n):
            k_rand, k_mix, k_model = jax.random.split(k, 3)
            configs = np.array(draw(k_rand, n))
            split = model.split()
            if split is None:
                return configs
            use_model = np.asarray(jax.random.uniform(k_mix, (n,))) >= random_fraction
            for i in np.flatnonzero(use_model):
                configs[i] = model.propose(jax.random.fold_in(k_model, int(i)), *split)
            return configs

        yield from _hyperband_schedule(key, draw, r_min, r_max, eta, propose, model.observe)

    return as_strategy(schedule, space, whole_rungs)


def asha(space: Space, r_min: float, r_max: float, eta: float = 3, workers: int = 4,
         sample: Sampler | None = None) -> Strategy:
    """Asynchronous successive halving, simulated: ``workers`` workers, a job lasts its budget."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    draw = _sampler(space, sample)
    budgets = [r for _, r in sh_rungs(1, r_min, r_max, eta)]
    top = len(budgets) - 1

    def schedule(key):
        rungs: list[list[tuple[float, int]]] = [[] for _ in budgets]  # (value, config id) per rung
        promoted: list[set[int]] = [set() for _ in budgets]
        configs: list[np.ndarray] = []
        events: list[tuple[float, int, int, int, float]] = []  # (finish time, seq, config id, rung, value)

        def get_job() -> tuple[int, int]:
            for k in range(top - 1, -1, -1):
                ranked = sorted(rungs[k], key=lambda t: -t[0])[: len(rungs[k]) // int(eta)]
                for _, cid in ranked:
                    if cid not in promoted[k]:
                        promoted[k].add(cid)
                        return cid, k + 1
            configs.append(np.asarray(draw(jax.random.fold_in(key, len(configs)), 1))[0])
            return len(configs) - 1, 0

        seq, now = 0, 0.0
        while True:
            if seq >= workers:  # every worker busy: the earliest job finishes and its worker is free
                now, _, cid, k, value = heapq.heappop(events)
                rungs[k].append((value, cid))
            cid, k = get_job()
            value = yield configs[cid], budgets[k]
            heapq.heappush(events, (now + budgets[k], seq, cid, k, value))
            seq += 1

    return as_strategy(schedule, space)


def dehb(space: Space, r_min: float, r_max: float, eta: float = 3, mutation_factor: float = 0.5,
         crossover_prob: float = 0.5) -> Strategy:
    """DEHB (module docstring): Hyperband's brackets with a differential-evolution
    subpopulation per budget (rand/1/bin, F = ``mutation_factor``, CR = ``crossover_prob``)."""
    require(space, "choices", who="DEHB")
    if not 0 < mutation_factor <= 2 or not 0 <= crossover_prob <= 1:
        raise ValueError(f"need 0 < mutation_factor <= 2 and 0 <= crossover_prob <= 1, got {mutation_factor}, {crossover_prob}")
    choices = np.asarray(space.choices)
    brackets = hyperband_brackets(r_min, r_max, eta)
    sizes: dict[float, int] = {}  # subpopulation size per budget: the most configurations any bracket runs there
    for rungs in brackets:
        for n_i, r_i in rungs:
            sizes[r_i] = max(sizes.get(r_i, 0), n_i)

    def config(u: np.ndarray) -> np.ndarray:
        return np.minimum(np.floor(u * choices), choices - 1).astype(np.int32)

    def schedule(key):
        pops: dict[float, list[list]] = {}  # budget -> [[vector, value], ...]
        cursor: dict[float, int] = {}  # budget -> next target to evolve
        draws = itertools.count()
        rng = lambda: np.random.default_rng(np.asarray(jax.random.key_data(jax.random.fold_in(key, next(draws)))))

        def evolve(u_target, pool: list[np.ndarray], r) -> np.ndarray:
            g = rng()
            if len(pool) < 3:  # top the parent pool up from the budget's own subpopulation
                pool = pool + [m[0] for m in pops[r]]
            a, b, c = (pool[i] for i in g.choice(len(pool), 3, replace=len(pool) < 3))
            mutant = np.clip(a + mutation_factor * (b - c), 0.0, 1.0)
            cross = g.random(len(choices)) < crossover_prob
            cross[g.integers(len(choices))] = True  # at least one gene from the mutant
            return np.where(cross, mutant, u_target)

        for it in itertools.count():
            for rungs in brackets:
                promoted: list[np.ndarray] | None = None  # vectors the previous rung passes up, best first
                for i, (n_i, r_i) in enumerate(rungs):
                    n_i = max(n_i, 1)
                    pop = pops.setdefault(r_i, [])
                    if it == 0:
                        # First round: Hyperband with random configurations; the subpopulation fills up.
                        vecs = rng().random((n_i, len(choices))) if i == 0 else promoted[:n_i]
                        trials = []
                        for u in vecs:
                            value = yield config(u), r_i
                            trials.append((u, value))
                            if len(pop) < sizes[r_i]:
                                pop.append([u, value])
                    else:
                        pool = [m[0] for m in pop] if i == 0 else list(promoted[:n_i])
                        trials = []
                        for _ in range(n_i):
                            j = cursor.get(r_i, 0) % len(pop)
                            cursor[r_i] = j + 1
                            u = evolve(pop[j][0], pool, r_i)
                            value = yield config(u), r_i
                            trials.append((u, value))
                            if value >= pop[j][1]:  # selection: the trial replaces its target
                                pop[j] = [u, value]
                    if it == 0:  # Hyperband: this rung's best go up
                        promoted = [u for u, _ in sorted(trials, key=lambda t: -t[1])]
                    else:  # DEHB: the best of this budget's subpopulation parent the next rung
                        promoted = [u for u, _ in sorted(pop, key=lambda m: -m[1])]

    return as_strategy(schedule, space)


def warm_start(sampler: Sampler, score: Callable[[np.ndarray], np.ndarray], factor: int = 4) -> Sampler:
    """A sampler that draws ``factor * n`` candidates and keeps the n best by a zero-cost score."""
    if factor < 1:
        raise ValueError(f"warm-start factor must be >= 1, got {factor}")

    def sample(key, n):
        cand = np.asarray(sampler(key, factor * n))
        s = np.asarray(score(cand))
        return cand[np.argsort(-s, kind="stable")[:n]]

    return sample


# name -> factory(space, r_min, r_max, eta, **kw); random search at full budget is
# jnas.strategies.random_search with the objective fixed at r_max.
METHODS = {"sh": successive_halving, "hb": hyperband, "bohb": bohb, "asha": asha, "dehb": dehb}


def batched(objective: Objective, report: Callable[[np.ndarray], float] | None = None) -> Callable:
    """The driver's objective ``(archs, budgets) -> (fitness, report, cost)`` from a
    per-architecture ``objective(arch, budget) -> (value, cost)`` and an optional
    ``report(arch)`` (NaN without one)."""

    def run(archs, budgets):
        vals = [objective(np.asarray(a), float(b)) for a, b in zip(np.asarray(archs), np.asarray(budgets))]
        rep = [report(np.asarray(a)) if report is not None else math.nan for a in np.asarray(archs)]
        return (np.array([v for v, _ in vals], np.float32), np.array(rep, np.float32),
                np.array([c for _, c in vals], np.float64))

    return run


def history(trace) -> list[dict]:
    """The evaluations of a multi-fidelity :class:`jnas.strategies.Trace` as records
    ``{"arch", "budget", "value", "report", "cost", "total_cost"}`` (what
    :func:`incumbent_curve` reads)."""
    out, total = [], 0.0
    for a, b, v, r, c in zip(np.asarray(trace.archs).reshape(-1, *np.asarray(trace.archs).shape[2:]),
                             np.ravel(trace.budgets), np.ravel(trace.fitness), np.ravel(trace.report), np.ravel(trace.cost)):
        total += float(c)
        out.append({"arch": np.asarray(a).tolist(), "budget": float(b), "value": float(v), "report": float(r),
                    "cost": float(c), "total_cost": total})
    return out


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
