"""Weight-sharing one-shot NAS on NAS-Bench-201: train a supernet one sampled cell at a time,
score cells with the weights they inherit, and measure that ranking against the table.

    python -m experiments.oneshot_ranking --method rsps --data-dir ../shared/data --out runs/oneshot_ranking/rsps

Methods, all on half of the local CIFAR-10 training subset (the other half scores):

* ``rsps`` (random search with parameter sharing, Li & Talwalkar 2019): the NB201 supernet
  trained one uniformly sampled cell per step (:mod:`jnas.oneshot.single_path`, DARTS's
  weight optimiser settings); the pick is the best of the scored random cells.
* ``spos`` (single-path one-shot, Guo et al. 2020): the same training, then regularised
  evolution with the inherited accuracy as fitness (``--evolution-budget`` evaluations).
* ``gdas`` (Dong & Yang 2019): DARTS's alternating search (first order) where every loss
  sees one op per edge drawn by a hard Gumbel-softmax, temperature 10 -> 0.1
  (``SearchConfig.gumbel_tau``); the pick is the argmax cell of alpha.
* ``smash`` / ``ghn`` (Brock et al. 2018 / Zhang et al. 2019): the single-path training with
  the cells' convolution kernels generated from the sampled cell by a hypernetwork
  (:mod:`jnas.oneshot.hyper`, ``--hidden``, ``--rounds``); cells are scored with the weights
  generated for them, and the pick is the best scored cell.

Scoring: each cell's batch-norm statistics are recomputed on ``--calib-images`` training
images (one pass: enough images for stable per-channel statistics, and the cost of a cell is
that pass plus the evaluation), then its accuracy on ``--eval-images`` validation images,
with the supernet's parameters run as a ``select="switch"`` network (only the cell's ops,
the same numbers), each chunk's cells split over ``--devices`` local devices. The batched
rate (cells per second, compile excluded) is set against a loop of one-cell calls on one
device over ``--loop-cells`` of the cells, timed in the same run.

``--cells`` distinct uniformly drawn cells are scored and compared with the table's
``--column`` (any accuracy column of the benchmark file): Kendall tau and Spearman rho
(scipy), the overlap of the top 10% by each, and the table accuracy of the picked cell.
CPU-sized defaults (C=8, N=1, 30 epochs, 1,000 cells) finish in well under an hour on 2
cores for every method (measured times in docs/oneshot.md).

Writes ``train.jsonl`` (per-epoch loss), ``scores.jsonl`` (one record per chunk of scored
cells), ``scores.csv``, ``summary.json`` and ``ranking.png``; training resumes per epoch,
scoring per chunk, evolution per evaluation.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Sequence

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from tqdm.auto import tqdm

from experiments.common import parse, prepare_out, rank_agreement, save_figure, write_csv
from jnas import strategies
from jnas.benchmarks import nb201 as bench
from jnas.data import load_cifar10_subset
from jnas.oneshot import SearchConfig, driver, single_path
from jnas.oneshot import nb201 as os201
from jnas.oneshot.hyper import HyperNet
from jnas.records import Records, write_json
from jnas.spaces import nb201 as space
from jnas.strategies.objectives import DEFAULT_REPORT

METHODS = ("rsps", "spos", "gdas", "smash", "ghn")
HYPER = ("smash", "ghn")


@dataclasses.dataclass(frozen=True)
class Config:
    method: str = dataclasses.field(default="rsps", metadata={"help": "one-shot method", "choices": METHODS})
    data_dir: str | None = dataclasses.field(default=None, metadata={"help": "data root (else $JNAS_DATA)"})
    out: str = dataclasses.field(default="runs/oneshot_ranking", metadata={"help": "output folder"})
    seed: int = dataclasses.field(default=0, metadata={"help": "PRNG seed"})
    C: int = dataclasses.field(default=8, metadata={"help": "supernet channels of the first stage", "min": 1})
    N: int = dataclasses.field(default=1, metadata={"help": "cells per stage", "min": 1})
    epochs: int = dataclasses.field(default=30, metadata={"help": "supernet training epochs", "min": 1})
    batch: int = dataclasses.field(default=64, metadata={"help": "training batch", "min": 2})
    n_images: int = dataclasses.field(default=0, metadata={"help": "use the first n training images (0: all)", "min": 0})
    cells: int = dataclasses.field(default=1000, metadata={"help": "distinct random cells scored (all of --pool when as many)", "min": 2, "max": space.SIZE})
    pool: str = dataclasses.field(default="all", metadata={"help": "cells drawn from all 15,625 or from the 6,466 non-isomorphic ones (NB201's rule)", "choices": ("all", "unique")})
    calib_images: int = dataclasses.field(default=256, metadata={"help": "training images each cell's batch-norm statistics are recomputed on", "min": 2})
    eval_images: int = dataclasses.field(default=1024, metadata={"help": "validation images each cell is scored on (whole batches of --eval-batch)", "min": 1})
    eval_batch: int = dataclasses.field(default=256, metadata={"help": "evaluation batch", "min": 1})
    chunk: int = dataclasses.field(default=25, metadata={"help": "cells per compiled call (and per resume record)", "min": 1})
    mode: str = dataclasses.field(default="map", metadata={"help": "cells in a chunk: lax.map (CPU) or vmap (GPU)", "choices": single_path.MODES})
    devices: int = dataclasses.field(default=0, metadata={"help": "local devices a chunk's cells are split over (0: all)", "min": 0})
    evolution_budget: int = dataclasses.field(default=500, metadata={"help": "spos: inherited-accuracy evaluations of the evolution", "min": 1})
    column: str = dataclasses.field(default=DEFAULT_REPORT, metadata={"help": "table column the ranking is compared with"})
    hidden: int = dataclasses.field(default=32, metadata={"help": "smash/ghn: width of the architecture code", "min": 1})
    rounds: int = dataclasses.field(default=2, metadata={"help": "ghn: rounds of forward and backward message passing", "min": 1})
    gumbel_tau: float = dataclasses.field(default=10.0, metadata={"help": "gdas: initial Gumbel-softmax temperature (decays linearly to 0.1)", "min": 0.1})
    loop_cells: int = dataclasses.field(default=100, metadata={"help": "cells timed in a loop of one-cell calls against the batched scoring (0: skip)", "min": 0})


def main(argv: Sequence[str] | None = None) -> dict:
    cfg = parse(Config, argv, __doc__.splitlines()[0])
    table = bench.load(cfg.data_dir)
    table.column(cfg.column)  # an unknown column fails now, not after training
    x, y = load_cifar10_subset(cfg.data_dir, "train")
    if cfg.n_images:
        x, y = x[: cfg.n_images], y[: cfg.n_images]
    key = jax.random.key(cfg.seed)
    train, val = driver.split_train_val(x, y, jax.random.fold_in(key, 0))
    n_eval = min(cfg.eval_images, len(val[0])) // cfg.eval_batch * cfg.eval_batch
    if n_eval == 0 or cfg.calib_images > len(train[0]):
        raise ValueError(f"{len(val[0])} validation and {len(train[0])} training images cannot give one --eval-batch of "
                         f"{cfg.eval_batch} and --calib-images {cfg.calib_images}")
    pool = np.arange(space.SIZE)
    if cfg.pool == "unique":  # the representatives: cells that are their own canonical form
        pool = np.flatnonzero(np.asarray(space.canonical_table()) == pool)
    if cfg.cells > len(pool):
        raise ValueError(f"--cells {cfg.cells} is more than the {len(pool)} cells of --pool {cfg.pool}")
    devices = cfg.devices or len(jax.local_devices())
    if devices > len(jax.local_devices()):
        raise ValueError(f"--devices {cfg.devices} but this process sees {len(jax.local_devices())} local devices "
                         "(on CPU set XLA_FLAGS=--xla_force_host_platform_device_count=N)")
    out = prepare_out(cfg.out, cfg, resume_keys=[f.name for f in dataclasses.fields(Config) if f.name not in ("out", "data_dir", "mode", "loop_cells", "devices")])
    net = os201.supernet(C=cfg.C, N=cfg.N)
    hyper_net = HyperNet(cfg.method, cfg.hidden, cfg.rounds) if cfg.method in HYPER else None

    t0 = time.perf_counter()
    if cfg.method == "gdas":
        state, alpha = train_gdas(cfg, net, train, val, jax.random.fold_in(key, 1), out)
    else:
        state = train_supernet(cfg, net, train, jax.random.fold_in(key, 1), out, hyper_net)
    train_s = time.perf_counter() - t0

    score_net = dataclasses.replace(net, select="switch")  # the same parameters; only each cell's ops run
    correct = single_path.make_inherited_accuracy(score_net, cfg.mode, hyper=hyper_net, devices=devices)
    # The baseline: one cell per call on one device.
    correct_one = correct if devices == 1 else single_path.make_inherited_accuracy(score_net, cfg.mode, hyper=hyper_net)
    calib = jnp.asarray(train[0][: cfg.calib_images])
    xs = jnp.asarray(val[0][:n_eval]).reshape(-1, cfg.eval_batch, *val[0].shape[1:])
    ys = jnp.asarray(val[1][:n_eval]).reshape(-1, cfg.eval_batch)

    def accuracy(cells, fn=correct) -> np.ndarray:
        return np.asarray(fn(state.params, state.batch_stats, jnp.asarray(cells), calib, xs, ys)) / n_eval

    t0 = time.perf_counter()
    cells = np.asarray(space.from_index(pool[np.asarray(jax.random.choice(jax.random.fold_in(key, 2), len(pool), (cfg.cells,), replace=False))]))
    one_shot, batched_rate = score_cells(cells, accuracy, cfg.chunk, out / "scores.jsonl")
    score_s = time.perf_counter() - t0
    loop_rate = loop_rate_of(lambda c: accuracy(c, correct_one), cells[: cfg.loop_cells]) if cfg.loop_cells else None
    truth = np.asarray(table.query(cells, cfg.column))
    agree = rank_agreement(one_shot, truth)

    if cfg.method == "spos":
        picked, search = evolve(cfg, accuracy, table, jax.random.fold_in(key, 3), out)
    elif cfg.method == "gdas":
        picked = np.asarray(os201.discretize(alpha))
        search = {"pick": "argmax of alpha", "weights": np.asarray(os201.mixing_weights(alpha)).round(4).tolist()}
    else:
        picked = cells[int(np.argmax(one_shot))]
        search = {"evaluations": cfg.cells, "pick": "best scored cell"}
    summary = {
        "method": cfg.method, "column": cfg.column, "n_cells": agree["n"],
        "kendall_tau": agree["kendall_tau"], "kendall_p": agree["kendall_p"], "spearman": agree["spearman"],
        "top10pct_overlap": agree["top_overlap"],
        "picked_arch": space.to_string(picked), "picked_test_acc": float(table.query(picked, cfg.column)),
        "best_in_table": float(jnp.nanmax(table.column(cfg.column))), "search": search,
        "setting": {"C": cfg.C, "N": cfg.N, "epochs": cfg.epochs, "train_images": len(train[0]), "calib_images": cfg.calib_images,
                    "eval_images": n_eval},
        "seconds": {"train": train_s, "score": score_s},
        "archs_per_s": {"batched": batched_rate, "loop": loop_rate, "mode": cfg.mode, "chunk": cfg.chunk, "devices": devices,
                        "loop_cells": min(cfg.loop_cells, cfg.cells),
                        "speedup": None if not (batched_rate and loop_rate) else batched_rate / loop_rate},
    }
    index = np.asarray(space.to_index(cells))
    write_csv(out / "scores.csv", [{"arch": space.to_string(c), "index": int(i), "one_shot_acc": float(o), cfg.column: float(t)}
                                   for c, i, o, t in zip(cells, index, one_shot, truth)])
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter(truth, 100 * one_shot, s=6)
    ax.set(xlabel=f"table: {cfg.column}", ylabel="inherited-weight accuracy (%)",
           title=f"{cfg.method}: Kendall tau {summary['kendall_tau']:.3f}, {summary['n_cells']} cells")
    save_figure(fig, out / "ranking.png", dpi=110)
    write_json(out / "summary.json", summary, indent=1)
    print({k: summary[k] for k in ("method", "n_cells", "kendall_tau", "spearman", "top10pct_overlap", "picked_arch", "picked_test_acc",
                                   "archs_per_s")})
    return summary


def train_supernet(cfg: Config, net, train: tuple, key: jax.Array, out: Path, hyper_net: HyperNet | None = None) -> single_path.PathState:
    """Single-path training (of ``hyper_net`` when given) for ``cfg.epochs`` epochs,
    checkpointed after each (resumes)."""
    steps = len(train[0]) // cfg.batch
    if steps == 0:
        raise ValueError(f"{len(train[0])} training images are fewer than one batch of {cfg.batch}")
    conf = SearchConfig(total_steps=cfg.epochs * steps)
    state = single_path.init_state(jax.random.fold_in(key, 0), net, jnp.asarray(train[0][:2]), conf, hyper_net)
    step = single_path.make_step(net, conf, hyper_net)

    def run_epoch(state: single_path.PathState, epoch: int) -> tuple[single_path.PathState, dict]:
        ke = jax.random.fold_in(key, 1 + epoch)
        perm = np.asarray(jax.random.permutation(ke, len(train[0])))
        loss = acc = 0.0
        for i in range(steps):
            idx = perm[i * cfg.batch:(i + 1) * cfg.batch]
            state, m = step(state, (jnp.asarray(train[0][idx]), jnp.asarray(train[1][idx])), jax.random.fold_in(ke, 10_000 + i))
            loss, acc = loss + float(m["loss"]), acc + float(m["acc"])
        return state, {"epoch": epoch + 1, "loss": loss / steps, "acc": acc / steps}

    log = Records(out / "train.jsonl", key=lambda r: r["epoch"])
    return driver.resume_epochs(out / "supernet.ckpt", state, cfg.epochs, run_epoch, log.append, desc="supernet epochs")


def train_gdas(cfg: Config, net, train: tuple, val: tuple, key: jax.Array, out: Path):
    """GDAS: DARTS's first-order alternating search with hard Gumbel samples in every loss,
    weights on ``train``, alpha on ``val``; checkpointed per epoch (resumes)."""
    steps = min(len(train[0]), len(val[0])) // cfg.batch
    if steps == 0:
        raise ValueError(f"{len(train[0])} training images are fewer than one batch of {cfg.batch}")
    conf = SearchConfig(total_steps=cfg.epochs * steps, gumbel_tau=cfg.gumbel_tau)
    stage = driver.Stage(net, os201.init_alpha, os201.mixing_weights, os201.full_mask(), cfg.epochs)
    log = Records(out / "train.jsonl", key=lambda r: r["epoch"])
    state = driver.run_stage(stage, conf, train, val, cfg.batch, key, out / "supernet.ckpt", log.append)
    return single_path.PathState(state.params, state.batch_stats, state.w_opt, state.step), state.alpha


def score_cells(cells: np.ndarray, accuracy, chunk: int, path: Path) -> tuple[np.ndarray, float | None]:
    """Inherited accuracy of every cell, ``chunk`` per call; finished chunks are read back.
    Also returns the cells per second of the chunks computed in this run after the first
    (which compiles), or None when fewer than two were computed."""
    records = Records(path, key=lambda r: r["start"])
    done = records.done()
    out = np.full(len(cells), np.nan)
    timed = []  # (cells, seconds) of each chunk computed now
    for s in tqdm(range(0, len(cells), chunk), desc="scoring cells", unit="chunk"):
        if s not in done:
            part = cells[s:s + chunk]
            if len(part) < chunk:  # pad to the compiled chunk size
                part = np.concatenate([part, np.repeat(part[-1:], chunk - len(part), 0)])
            t0 = time.perf_counter()
            rec = {"start": s, "acc": accuracy(part)[: len(cells[s:s + chunk])].tolist()}
            timed.append((chunk, time.perf_counter() - t0))
            records.append(rec)
            done[s] = rec
        out[s:s + chunk] = done[s]["acc"]
    rate = sum(n for n, _ in timed[1:]) / sum(t for _, t in timed[1:]) if len(timed) > 1 else None
    return out, rate


def loop_rate_of(accuracy, cells: np.ndarray) -> float | None:
    """Cells per second of a Python loop of one-cell calls (the per-architecture baseline),
    after one warm-up call that compiles it."""
    if len(cells) < 2:
        return None
    accuracy(cells[:1])
    t0 = time.perf_counter()
    for c in tqdm(cells, desc="per-cell loop", leave=False):
        accuracy(c[None])
    return len(cells) / (time.perf_counter() - t0)


def evolve(cfg: Config, accuracy, table, key: jax.Array, out: Path) -> tuple[np.ndarray, dict]:
    """SPOS's search: regularised evolution (population 50, tournament 10) on the inherited
    accuracy; returns the best cell it evaluated and what the search saw."""
    rea = strategies.get("rea", population=50, sample_size=10)
    objective = lambda archs: (accuracy(np.asarray(archs)), np.asarray(table.query(np.asarray(archs), cfg.column)))
    trace = strategies.run(rea, None, objective, cfg.evolution_budget, key, log=out / "evolution.jsonl")
    fit = np.asarray(trace.fitness).reshape(-1)
    archs = np.asarray(trace.archs).reshape(-1, space.NUM_EDGES)
    best = int(np.argmax(fit))
    return archs[best], {"evaluations": int(fit.size), "strategy": "rea", "population": 50, "sample_size": 10,
                         "best_fitness": float(fit[best])}


if __name__ == "__main__":
    main()
