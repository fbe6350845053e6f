"""Wall time of many seeds of aging evolution: one vmapped, jitted search vs Python loops.

    python -m experiments.bench_strategies --seeds 100 --budget 150 --data-dir ../shared/data --out runs/bench_strategies

Three ways to run K seeds of REA on the NB201 table, in one process:

* ``vmap``: ``jit(vmap(search))`` over K keys -- the whole search is a ``lax.scan``;
* ``loop_scan``: a Python loop over seeds calling the jitted single-seed search;
* ``loop_driver``: a Python loop over seeds, each run step by step by the Python driver
  with jitted ask/tell (what a search with a real objective does).

With ``--devices 1,2,4`` the vmapped search is also timed with its seeds split over that many
local devices (``shard_map``, :func:`jnas.strategies.seeds.seed_searches`), and checked to give
the same searches. Compile time is measured on the first call and reported apart; run times
are the median of ``--repeats`` warm calls. Target (issue): vmap at least 10x faster than a loop over seeds.
Writes ``bench.json``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Sequence

import jax
import numpy as np

from experiments.common import parse, prepare_out
from jnas import strategies
from jnas.benchmarks import nb201 as bench
from jnas.records import write_json
from jnas.strategies.seeds import seed_searches


@dataclasses.dataclass(frozen=True)
class Config:
    seeds: int = dataclasses.field(default=100, metadata={"help": "K seeds"})
    budget: int = dataclasses.field(default=150, metadata={"help": "queries per search"})
    repeats: int = dataclasses.field(default=3, metadata={"help": "warm repetitions (median)"})
    driver_seeds: int = dataclasses.field(default=10, metadata={"help": "seeds timed for the driver loop (scaled to K)"})
    devices: str = dataclasses.field(default="1", metadata={"help": "comma-separated local device counts the vmapped seeds are split over"})
    data_dir: str | None = dataclasses.field(default=None, metadata={"help": "data root (else $JNAS_DATA)"})
    out: str = dataclasses.field(default="runs/bench_strategies", metadata={"help": "output folder"})


def _time(fn, repeats: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - t0
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        runs.append(time.perf_counter() - t0)
    return first, float(np.median(runs))


def main(argv: Sequence[str] | None = None) -> dict:
    cfg = parse(Config, argv, __doc__.splitlines()[0])
    table = bench.load(cfg.data_dir)
    out = prepare_out(cfg.out, cfg, resume_keys=[])
    rea = strategies.get("rea")
    objective = strategies.objectives.tabular(table)
    keys = jax.random.split(jax.random.key(0), cfg.seeds)
    one = jax.jit(lambda k: strategies.best_so_far(strategies.search(rea, None, objective, cfg.budget, k)))
    many = seed_searches(rea, objective, cfg.budget)
    counts = [int(d) for d in cfg.devices.split(",")]
    split = {d: seed_searches(rea, objective, cfg.budget, devices=d) for d in counts}  # validates the counts first

    first_v, t_vmap = _time(lambda: many(keys), cfg.repeats)
    reference = jax.tree.leaves(many(keys)[0])
    devices = {}
    for d, fn in split.items():
        first, t = _time(lambda: fn(keys), cfg.repeats)
        same = all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(fn(keys)[0]), reference))
        devices[str(d)] = {"s": t, "compile_s": first - t, "speedup_vs_vmap": t_vmap / t, "same_searches": same}
    first_s, t_scan = _time(lambda: [one(k) for k in keys], cfg.repeats)
    n_drv = min(cfg.driver_seeds, cfg.seeds)
    obj_np = lambda a: tuple(np.asarray(v) for v in objective(a))
    first_d, t_drv = _time(lambda: [strategies.run(rea, None, obj_np, cfg.budget, k, progress=False) for k in keys[:n_drv]], 1)
    t_drv_k = t_drv * cfg.seeds / n_drv
    # The three give the same searches: check one seed.
    bf_v = np.asarray(many(keys)[0][1][0])
    bf_d = np.asarray(strategies.best_so_far(strategies.run(rea, None, obj_np, cfg.budget, keys[0], progress=False))[1])
    result = {
        "seeds": cfg.seeds, "budget": cfg.budget, "device": str(jax.devices()[0]),
        "vmap_s": t_vmap, "vmap_compile_s": first_v - t_vmap,
        "loop_scan_s": t_scan, "loop_scan_compile_s": first_s - t_scan,
        "loop_driver_s": t_drv_k, "loop_driver_timed_seeds": n_drv,
        "speedup_vs_loop_scan": t_scan / t_vmap, "speedup_vs_loop_driver": t_drv_k / t_vmap,
        "archs_per_s_vmap": cfg.seeds * cfg.budget / t_vmap,
        "same_search_vmap_vs_driver": bool(np.array_equal(bf_v, bf_d.reshape(-1)[: len(bf_v)])),
        "devices": devices,
    }
    write_json(out / "bench.json", result, indent=2)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
