"""Every jnas strategy at equal budget and seeds on the NAS-Bench-201 table.

    python -m experiments.compare_strategies --budget 150 --seeds 20 --fitness c10valid_val_acc_12ep --data-dir ../shared/data --out runs/compare

Writes ``table.csv``, ``table.md`` (mean +- std of the incumbent's report, beside the NB201
paper's values where it has one for the strategy) and ``curves.png`` (mean best-so-far
curves with 95% confidence bands). Runtime (2-core CPU): seconds per strategy.

Published (Dong & Yang 2020, Table 5, CIFAR-10 test accuracy, fitness = 12-epoch validation
accuracy, budget 12,000 s of simulated training): REA 93.92 +- 0.30, RS 93.70 +- 0.36,
REINFORCE 93.85 +- 0.37, BOHB 93.61 +- 0.52; optimum 94.37.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from experiments.common import parse, plot_curves, prepare_out, write_csv
from jnas import strategies
from jnas.strategies.objectives import DEFAULT_REPORT
from jnas.benchmarks import nb201 as bench
from jnas.strategies.seeds import run_seeds

PUBLISHED = {"rea": (93.92, 0.30), "rs": (93.70, 0.36), "reinforce": (93.85, 0.37), "bohb": (93.61, 0.52)}


@dataclasses.dataclass(frozen=True)
class Config:
    strategies: str = dataclasses.field(default="all", metadata={"help": "comma-separated names, or all"})
    budget: int = dataclasses.field(default=150, metadata={"help": "queries per search", "min": 1})
    seeds: int = dataclasses.field(default=20, metadata={"help": "independent searches per strategy", "min": 1})
    fitness: str = dataclasses.field(default="c10valid_val_acc_12ep", metadata={"help": "table column maximised"})
    report: str = dataclasses.field(default=DEFAULT_REPORT, metadata={"help": "table column reported"})
    seed: int = dataclasses.field(default=0, metadata={"help": "first seed"})
    data_dir: str | None = dataclasses.field(default=None, metadata={"help": "data root (else $JNAS_DATA)"})
    out: str = dataclasses.field(default="runs/compare_strategies", metadata={"help": "output folder"})


def main(argv: Sequence[str] | None = None) -> dict:
    cfg = parse(Config, argv, __doc__.splitlines()[0])
    names = sorted(strategies.STRATEGIES) if cfg.strategies == "all" else cfg.strategies.split(",")
    for n in names:
        strategies.get(n)
    table = bench.load(cfg.data_dir)
    out = prepare_out(cfg.out, cfg, resume_keys=[])
    curves, rows = {}, []
    for n in names:
        strategy = strategies.get(n)
        _, br = run_seeds(strategy, strategies.objectives.tabular(table, cfg.fitness, cfg.report), cfg.budget, cfg.seeds,
                          cfg.seed, "vmap" if strategy.jittable else "driver")
        curves[n] = br
        pub = PUBLISHED.get(n) if cfg.fitness == "c10valid_val_acc_12ep" and cfg.report == "c10_test_acc_200ep" else None
        rows.append({"strategy": n, "report_mean": float(br[:, -1].mean()), "report_std": float(br[:, -1].std(ddof=1)),
                     "published_mean": pub[0] if pub else "", "published_std": pub[1] if pub else ""})
    write_csv(out / "table.csv", rows)
    lines = [f"| strategy | {cfg.report}, {cfg.budget} queries, {cfg.seeds} seeds | NB201 paper |", "|---|---|---|"]
    for r in rows:
        pub = "" if r["published_mean"] == "" else f"{r['published_mean']:.2f} +- {r['published_std']:.2f}"
        lines.append(f"| {r['strategy']} | {r['report_mean']:.2f} +- {r['report_std']:.2f} | {pub} |")
    (out / "table.md").write_text("\n".join(lines) + "\n")
    optimum = float(np.nanmax(np.asarray(table.columns[cfg.report])))
    plot_curves(curves, cfg.report, f"fitness {cfg.fitness}, {cfg.seeds} seeds", out / "curves.png", optimum)
    print("\n".join(lines))
    return {"rows": rows, "optimum": optimum}


if __name__ == "__main__":
    main()
