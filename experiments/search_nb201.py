"""Black-box search on the NAS-Bench-201 table with many seeds.

    python -m experiments.search_nb201 --strategy rea --budget 150 --seeds 20 --fitness c10valid_val_acc_200ep \\
        --report c10_test_acc_200ep --data-dir ../shared/data --out runs/search_nb201/rea

``--mode vmap`` (default) runs all seeds as one jitted ``vmap`` over ``lax.scan`` searches;
``--devices k`` splits the seeds over k local devices (``shard_map``, same results);
``--mode driver`` runs seeds one by one through the Python driver, logging every evaluation
to ``logs/seed_<s>.jsonl`` (a killed run resumes without repeating evaluations).
``--fitness`` and ``--report`` take any column of the table. Writes ``curves.csv`` (best-so-far
fitness and the incumbent's report per seed and evaluation), ``summary.json`` and
``curves.png``.

Reference (Dong & Yang, ICLR 2020, Table 5; CIFAR-10 test accuracy; fitness = 12-epoch
validation accuracy; budget 12,000 s of simulated training, not a query count): REA
93.92 +- 0.30, RS 93.70 +- 0.36, REINFORCE 93.85 +- 0.37, BOHB 93.61 +- 0.52; optimum 94.37.
Runtime (2-core CPU): a few seconds per strategy for 100 seeds x 150 queries.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from typing import Sequence

import numpy as np

from experiments.common import parse, plot_curves, prepare_out
from jnas import strategies
from jnas.benchmarks import nb201 as bench
from jnas.records import write_json
from jnas.strategies.seeds import run_seeds


@dataclasses.dataclass(frozen=True)
class Config:
    strategy: str = dataclasses.field(default="rea", metadata={"help": f"one of {sorted(strategies.STRATEGIES)}"})
    budget: int = dataclasses.field(default=150, metadata={"help": "queries per search", "min": 1})
    seeds: int = dataclasses.field(default=20, metadata={"help": "independent searches", "min": 1})
    fitness: str = dataclasses.field(default=strategies.objectives.DEFAULT_FITNESS, metadata={"help": "table column maximised"})
    report: str = dataclasses.field(default=strategies.objectives.DEFAULT_REPORT, metadata={"help": "table column reported"})
    mode: str = dataclasses.field(default="vmap", metadata={"help": "vmap (one jitted call) or driver (Python, resumable logs)", "choices": ("vmap", "driver")})
    seed: int = dataclasses.field(default=0, metadata={"help": "first seed"})
    devices: int = dataclasses.field(default=1, metadata={"help": "vmap mode: local devices the seeds are split over", "min": 1})
    data_dir: str | None = dataclasses.field(default=None, metadata={"help": "data root (else $JNAS_DATA)"})
    out: str = dataclasses.field(default="runs/search_nb201", metadata={"help": "output folder"})


def main(argv: Sequence[str] | None = None) -> dict:
    cfg = parse(Config, argv, __doc__.splitlines()[0])
    strategies.get(cfg.strategy)  # validate the name before any work
    table = bench.load(cfg.data_dir)
    out = prepare_out(cfg.out, cfg, resume_keys=["strategy", "budget", "fitness", "report", "seed"])
    strategy = strategies.get(cfg.strategy)
    objective = strategies.objectives.tabular(table, cfg.fitness, cfg.report)
    bf, br = run_seeds(strategy, objective, cfg.budget, cfg.seeds, cfg.seed, cfg.mode, logs=out / "logs",
                       devices=cfg.devices)
    with open(out / "curves.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["strategy", "seed", "evaluation", "best_fitness", "best_report"])
        for i in range(cfg.seeds):
            for t in range(cfg.budget):
                w.writerow([cfg.strategy, cfg.seed + i, t + 1, float(bf[i, t]), float(br[i, t])])
    final = br[:, -1]
    summary = {"strategy": cfg.strategy, "fitness": cfg.fitness, "report": cfg.report, "budget": cfg.budget,
               "report_mean": float(final.mean()), "report_std": float(final.std(ddof=1)) if cfg.seeds > 1 else 0.0,
               "seeds": cfg.seeds, "report_optimum": float(np.nanmax(np.asarray(table.columns[cfg.report])))}
    write_json(out / "summary.json", summary)
    plot_curves({cfg.strategy: br}, cfg.report, f"fitness {cfg.fitness}, {cfg.seeds} seeds", out / "curves.png",
                summary["report_optimum"])
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
