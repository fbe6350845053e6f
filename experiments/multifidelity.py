"""Successive halving, Hyperband, BOHB, ASHA, DEHB and random search at equal cost.

    python -m experiments.multifidelity --method all --seeds 20 --cost 20000 --data-dir ../shared/data --out runs/multifidelity

Objective ``table`` (default): NAS-Bench-201 per-epoch columns of ``--fitness`` (any metric the
table carries at several epoch counts, ``<metric>_<E>ep``; CIFAR-10: ``c10valid_val_acc`` at 12
and 200 epochs). A budget reads the longest training the table holds within it and costs
those epochs. Objective ``train``: real training with :mod:`jnas.train` (C=8, N=1, local
CIFAR-10 subset, NB201 split), budget = epochs, validation accuracy as fitness.

Each method runs ``--seeds`` times until ``--cost`` epochs are spent. The incumbent (best
fitness at the largest budget seen) is tracked with its ``--report`` value (table objective:
any column, default ``c10_test_acc_200ep``). ``--warm-start PROXY`` ranks ``--warm-factor``
times more random candidates by a zero-cost proxy (jnas.proxies, on a 64-image CIFAR batch,
C=8, N=1) before each first rung. Every method runs through the ask/tell driver
(:func:`jnas.strategies.run` with ``max_cost``); random search is
:func:`jnas.strategies.random_search` at the full budget. Writes
``evals/<method>_<seed>.jsonl`` (every evaluation; rerunning resumes from them),
``curves.csv``, ``summary.json`` and ``curves.png``.

Runtime (2-core CPU): the table objective takes seconds per method for 20 seeds. Reference
(NB201 paper, Table 5, 12-epoch validation accuracy as fitness, about 12k seconds of
simulated training): BOHB 93.61 +- 0.52, RS 93.70 +- 0.36 CIFAR-10 test accuracy.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from tqdm.auto import tqdm

from experiments.common import mean_band, parse, prepare_out, save_incumbent_plot, write_csv
from jnas import strategies
from jnas.estimation import multifidelity as mf
from jnas.records import write_json
from jnas.spaces import nb201 as space

METHODS = [*mf.METHODS, "rs"]


@dataclasses.dataclass(frozen=True)
class Config:
    method: str = dataclasses.field(default="all", metadata={"help": f"comma-separated subset of {METHODS}, or all"})
    objective: str = dataclasses.field(default="table", metadata={"help": "objective", "choices": ("table", "train")})
    fitness: str = dataclasses.field(default="c10valid_val_acc", metadata={"help": "metric with <metric>_<E>ep columns"})
    report: str = dataclasses.field(default="c10_test_acc_200ep", metadata={"help": "table column reported for the incumbent"})
    cost: float = dataclasses.field(default=20000.0, metadata={"help": "epochs each run may spend", "above": 0.0})
    r_min: float = dataclasses.field(default=0.0, metadata={"help": "smallest budget (0: the smallest fidelity)", "min": 0.0})
    r_max: float = dataclasses.field(default=0.0, metadata={"help": "largest budget (0: the largest fidelity)", "min": 0.0})
    eta: float = dataclasses.field(default=3.0, metadata={"help": "halving rate", "above": 1.0})
    sh_n: int = dataclasses.field(default=27, metadata={"help": "configurations per successive-halving round", "min": 1})
    workers: int = dataclasses.field(default=4, metadata={"help": "ASHA's simulated workers", "min": 1})
    warm_start: str = dataclasses.field(default="none", metadata={"help": "zero-cost proxy for the warm start, or none"})
    warm_factor: int = dataclasses.field(default=4, metadata={"help": "candidates per slot ranked by the proxy"})
    seeds: int = dataclasses.field(default=20, metadata={"help": "independent runs per method", "min": 1})
    seed: int = dataclasses.field(default=0, metadata={"help": "first seed"})
    data_dir: str | None = dataclasses.field(default=None, metadata={"help": "data root (else $JNAS_DATA)"})
    out: str = dataclasses.field(default="runs/multifidelity", metadata={"help": "output folder"})


def main(argv: Sequence[str] | None = None) -> dict:
    from jnas.benchmarks import nb201 as bench

    cfg = parse(Config, argv, __doc__.splitlines()[0])
    methods = METHODS if cfg.method == "all" else cfg.method.split(",")
    if any(m not in METHODS for m in methods):
        raise ValueError(f"unknown method {cfg.method!r}; valid methods are {METHODS} or 'all'")
    table = bench.load(cfg.data_dir)
    if cfg.report not in table.columns:
        raise ValueError(f"unknown report column {cfg.report!r}; the table has {table.metrics}")
    out = prepare_out(cfg.out, cfg, resume_keys=[f.name for f in dataclasses.fields(Config)
                                                  if f.name not in ("out", "data_dir", "method", "seeds")])
    objective, (r_lo, r_hi) = _objective(cfg, table, out)
    r_min, r_max = cfg.r_min or r_lo, cfg.r_max or r_hi
    report_col = np.asarray(table.columns[cfg.report])
    report = lambda a: float(report_col[int(space.to_index(a))])
    fidelity_objective = mf.batched(objective, report)
    base = lambda k, n: np.array(space.sample(k, n))
    sample = None if cfg.warm_start == "none" else mf.warm_start(base, _proxy_score(cfg), cfg.warm_factor)
    (out / "evals").mkdir(exist_ok=True)
    rows = []
    for m in methods:
        for s in tqdm(range(cfg.seed, cfg.seed + cfg.seeds), desc=m):
            log = out / "evals" / f"{m}_{s}.jsonl"
            if m == "rs":  # every configuration at the full budget: plain random search
                strategy = _at_budget(strategies.random_search(space.SPACE) if sample is None else
                                      strategies.random_search(_Sampled(sample)), r_max)
            else:
                kw = {"sh": dict(n=cfg.sh_n), "asha": dict(workers=cfg.workers)}.get(m, {})
                if m != "dehb":  # DEHB draws unit-cube vectors, not architectures
                    kw["sample"] = sample
                strategy = mf.METHODS[m](space.SPACE, r_min=r_min, r_max=r_max, eta=cfg.eta, **kw)
            trace = strategies.run(strategy, None, fidelity_objective, None, jax.random.key(s), log=log, progress=False,
                                   max_cost=cfg.cost)
            curve = mf.incumbent_curve(mf.history(trace))
            rows += [{"method": m, "seed": s, "evaluation": i + 1, **{k: c[k] for k in ("total_cost", "value", "report")}}
                     for i, c in enumerate(curve)]
    write_csv(out / "curves.csv", rows)
    summary = _summarise(rows, methods, cfg, report_col)
    write_json(out / "summary.json", summary)
    _plot(rows, methods, cfg, out / "curves.png", float(np.nanmax(report_col)))
    for m in methods:
        s = summary["methods"][m]
        print(f"{m:5s} {cfg.report} {s['report_mean']:.2f} +- {s['report_std']:.2f}  evaluations {s['evaluations_mean']:.0f}")
    return summary


class _Sampled:
    """NB201 with its sampler replaced (the warm start), for random search."""

    def __init__(self, sample):
        self.sample, self.arch_shape, self.jittable = sample, space.SPACE.arch_shape, False


def _at_budget(strategy: strategies.Strategy, budget: float) -> strategies.Strategy:
    """``strategy`` asking every architecture at ``budget`` (a Query), so the driver counts cost."""
    def ask(key, state, params=None):
        archs, state = strategy.ask(key, state, params)
        return strategies.Query(archs, np.full(archs.shape[0], budget)), state

    def tell(key, query, fitness, state, params=None):
        return strategy.tell(key, query.archs, fitness, state, params)

    return strategy._replace(ask=ask, tell=tell, jittable=False)


def _objective(cfg: Config, table, out: Path):
    """The objective and its natural (r_min, r_max)."""
    if cfg.objective == "table":
        obj = mf.tabular_objective(table, cfg.fitness, lambda a: int(space.to_index(a)))
        eps = sorted(mf.fidelities(table.columns, cfg.fitness))
        return obj, (eps[0], eps[-1])
    from jnas import data, train

    full = data.load("cifar10", "train", cfg.data_dir)
    tr, va = data.split(full, jax.random.key(0))

    def objective(arch, budget):
        epochs = max(1, int(round(budget)))
        net, a = train.realise("nb201", space.to_string(arch), full.spec.num_classes, 8, 1, select="mask")
        folder = out / "train" / f"{int(space.to_index(arch))}_{epochs}ep"
        _, hist = train.fit(net, a, tr, va, train.TrainConfig(epochs=epochs, batch_size=128), jax.random.key(1),
                            out=folder, progress=False)
        return hist[-1]["val_acc"], float(epochs)

    return objective, (1.0, 9.0)


def _proxy_score(cfg: Config):
    """Zero-cost scores on one 64-image CIFAR batch (C=8, N=1 network), cached per cell."""
    from jnas import data, proxies
    from jnas.nets import NB201Network

    d = data.load("cifar10", "train", cfg.data_dir)
    batch = (data.normalize(d.x[:64], d.spec.mean, d.spec.std), d.y[:64])
    cache: dict[int, float] = {}

    def score(archs):
        idx = [int(i) for i in np.asarray(space.to_index(archs))]
        todo = sorted({i for i in idx if i not in cache})
        if todo:
            s = proxies.score(cfg.warm_start, space.from_index(np.array(todo)), batch, jax.random.key(0),
                              net=NB201Network(C=8, N=1), progress=False)
            cache.update(zip(todo, np.asarray(s).tolist()))
        return np.array([cache[i] for i in idx])

    return score


def _summarise(rows, methods, cfg, report_col) -> dict:
    out = {"fitness": cfg.fitness, "report": cfg.report, "cost": cfg.cost, "seeds": cfg.seeds,
           "warm_start": cfg.warm_start, "report_optimum": float(np.nanmax(report_col)), "methods": {}}
    for m in methods:
        finals = {}
        for r in rows:
            if r["method"] == m:
                finals[r["seed"]] = r
        rep = np.array([r["report"] for r in finals.values()])
        out["methods"][m] = {"report_mean": float(rep.mean()), "report_std": float(rep.std(ddof=1)) if len(rep) > 1 else 0.0,
                             "evaluations_mean": float(np.mean([r["evaluation"] for r in finals.values()])),
                             "cost_mean": float(np.mean([r["total_cost"] for r in finals.values()]))}
    return out


def _plot(rows, methods, cfg, path, optimum) -> None:
    grid = np.linspace(0, cfg.cost, 101)[1:]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for m in methods:
        curves = []
        for s in sorted({r["seed"] for r in rows if r["method"] == m}):
            rs = [r for r in rows if r["method"] == m and r["seed"] == s]
            cost = np.array([r["total_cost"] for r in rs])
            rep = np.array([r["report"] for r in rs])
            pos = np.searchsorted(cost, grid, side="right") - 1
            curves.append(np.where(pos >= 0, rep[np.maximum(pos, 0)], np.nan))
        mean_band(ax, grid, np.array(curves), m)
    save_incumbent_plot(fig, ax, optimum, path, xlabel="cost (training epochs)", ylabel=f"incumbent {cfg.report}",
                        title=f"fitness {cfg.fitness}, {cfg.seeds} seeds (mean, 95% CI)")


if __name__ == "__main__":
    main()
