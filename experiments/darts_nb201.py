"""Differentiable search on the NAS-Bench-201 space with real CIFAR-10 images.

    python -m experiments.darts_nb201 --method darts1 --data-dir ../shared/data --out runs/darts_nb201/darts1

Methods: ``darts1`` (first-order DARTS), ``darts2`` (DARTS second order, finite
differences), ``darts2-exact`` (the same hypergradient exact by jvp), ``pcdarts`` (partial
channels K=4, edge normalisation, first order, 30% weight-only warm-up as 15/50 epochs in
PC-DARTS), ``pdarts`` (stages of 1, 2, 3 cells per NB201 stage keeping 5, 4, 3 ops per edge,
skip dropout 0.0/0.4/0.7 decaying exp(-0.2 epoch), 40% warm-up as 10/25 epochs in P-DARTS,
at most 2 skip-connects in the result), ``sdarts-rs`` (SDARTS random smoothing: the weight
step sees the mixing weights + U(-eps, eps), clamped and renormalised per edge, eps 0.03 -> 0.3
over the search as in the SDARTS code), ``darts-l2`` (RobustDARTS's stronger L2 on the weights,
8.1e-3 instead of 3e-4). ``--estimator`` swaps in any jnas.bilevel
estimator (e.g. implicit_cg) for the non-P-DARTS methods.

CPU-sized defaults: the 5,085 real CIFAR-10 training images of the local subset split in
half (weights / alpha, the DARTS protocol), no augmentation, C=8, N=1, batch 64, 10 epochs.
Writes ``alpha.jsonl`` (mixing weights per epoch), ``alpha.png``, ``result.json`` (derived
cell and its accuracy in every accuracy column of the NB201 table). Each epoch is
checkpointed: rerunning the same command resumes.

Published reference (NB201 paper, Table 5): DARTS-V1 and DARTS-V2 on this space collapse to
all-skip-connect cells, 54.30% CIFAR-10 test accuracy. Runtime (2-core CPU, defaults):
several minutes per method, see README.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Sequence

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from experiments.common import parse, prepare_out, rank_agreement, save_figure
from jnas.benchmarks import nb201 as bench
from jnas.data import load_cifar10_subset
from jnas.oneshot import SearchConfig, driver, make_alpha_curvature, pdarts
from jnas.oneshot.robust import early_stop
from jnas.oneshot import nb201 as os201
from jnas.records import Records, write_json
from jnas.spaces import nb201 as space
from jnas.strategies.objectives import DEFAULT_REPORT

METHODS = {
    # name: (estimator, partial, edge_norm, warm-up fraction, alpha noise of the weight step, weights' L2)
    "darts1": ("first_order", 1, False, 0.0, 0.0, 3e-4),
    "darts2": ("finite_difference", 1, False, 0.0, 0.0, 3e-4),
    "darts2-exact": ("second_order", 1, False, 0.0, 0.0, 3e-4),
    "pcdarts": ("first_order", 4, True, 0.3, 0.0, 3e-4),
    "pdarts": ("first_order", 1, False, 0.4, 0.0, 3e-4),
    # SDARTS random smoothing (Chen & Hsieh, ICML 2020): noise on the mixing weights, eps 0.03 -> 0.3
    "sdarts-rs": ("first_order", 1, False, 0.0, 0.3, 3e-4),
    # RobustDARTS's L2 remedy (Zela et al., ICLR 2020, Sec. 5): a stronger L2 on the weights
    # (the inner objective); 27x DARTS's 3e-4, chosen once, not tuned on the table.
    "darts-l2": ("first_order", 1, False, 0.0, 0.0, 81e-4),
}


@dataclasses.dataclass(frozen=True)
class Config:
    method: str = dataclasses.field(default="darts1", metadata={"help": "search method", "choices": tuple(METHODS)})
    estimator: str | None = dataclasses.field(default=None, metadata={"help": "override the method's hypergradient estimator"})
    data_dir: str | None = dataclasses.field(default=None, metadata={"help": "data root (else $JNAS_DATA)"})
    out: str = dataclasses.field(default="runs/darts_nb201", metadata={"help": "output folder"})
    seed: int = dataclasses.field(default=0, metadata={"help": "PRNG seed"})
    epochs: int = dataclasses.field(default=10, metadata={"help": "search epochs (P-DARTS: per stage, divided by 3, at least 2)", "min": 1})
    batch: int = dataclasses.field(default=64, metadata={"help": "batch size", "min": 1})
    C: int = dataclasses.field(default=8, metadata={"help": "channels of the first stage"})
    N: int = dataclasses.field(default=1, metadata={"help": "cells per stage (P-DARTS: final stage)"})
    n_images: int = dataclasses.field(default=0, metadata={"help": "use the first n training images (0: all)", "min": 0})
    max_skips: int = dataclasses.field(default=2, metadata={"help": "P-DARTS: skip-connects allowed in the result", "min": 0})
    a_lr: float = dataclasses.field(default=3e-4, metadata={"help": "alpha's Adam learning rate (DARTS: 3e-4)", "above": 0.0})
    hessian_images: int = dataclasses.field(default=0, metadata={"help": "validation images the dominant Hessian eigenvalue in alpha is measured on after each epoch (RobustDARTS; 0: off)", "min": 0})
    column: str = dataclasses.field(default=DEFAULT_REPORT, metadata={"help": "table column of the per-epoch derived cell's accuracy"})
    rank_cells: int = dataclasses.field(default=0, metadata={"help": "after the search: one-shot accuracy of this many distinct random cells in the supernet against their --column accuracy (Kendall tau, the rank disorder of weight sharing; 0: off)", "min": 0, "max": space.SIZE})
    rank_images: int = dataclasses.field(default=1024, metadata={"help": "validation images of the one-shot accuracies", "min": 1})


def main(argv: Sequence[str] | None = None) -> dict:
    cfg = parse(Config, argv, __doc__.splitlines()[0])
    table = bench.load(cfg.data_dir)
    # The rank-disorder settings only read the finished search: changing them resumes it.
    out = prepare_out(cfg.out, cfg, resume_keys=[f.name for f in dataclasses.fields(Config)
                                                 if f.name not in ("out", "data_dir", "rank_cells", "rank_images")])
    x, y = load_cifar10_subset(cfg.data_dir, "train")
    if cfg.n_images:
        x, y = x[: cfg.n_images], y[: cfg.n_images]
    key = jax.random.key(cfg.seed)
    train, val = driver.split_train_val(x, y, jax.random.fold_in(key, 0))
    table.column(cfg.column)  # an unknown column fails now, not after the search
    est, partial, edge_norm, warm, noise, l2 = METHODS[cfg.method]
    est = cfg.estimator or est
    log = Records(out / "alpha.jsonl").append
    steps_per_epoch = len(train[0]) // cfg.batch

    if cfg.method == "pdarts":
        cells = [max(1, round(cfg.N * f)) for f in (1 / 3, 2 / 3, 1)] if cfg.N >= 3 else [1, 2, 3]
        keeps, drops = (5, 4, 3), (0.0, 0.4, 0.7)
        epochs = max(2, cfg.epochs // 3)
    else:
        cells, keeps, drops, epochs = [cfg.N], (5,), (0.0,), cfg.epochs
    mask = os201.full_mask()
    for s, (n_cells, keep, drop) in enumerate(zip(cells, keeps, drops)):
        if s > 0:  # P-DARTS: keep the strongest ops of the previous stage
            mask = pdarts.prune_ops(alpha_logits, mask, keep)
        conf = SearchConfig(total_steps=epochs * steps_per_epoch, estimator=est, warmup_steps=int(warm * epochs * steps_per_epoch),
                            alpha_noise=noise, a_lr=cfg.a_lr, w_weight_decay=l2)
        net = os201.supernet(C=cfg.C, N=n_cells, partial=partial, skip_dropout=cfg.method == "pdarts")
        stage = driver.Stage(
            net=net,
            init_alpha=lambda k: os201.init_alpha(k, edge_norm=edge_norm),
            mix=os201.mixing_weights,
            op_mask=mask,
            epochs=epochs,
            drop_rate=lambda e, d=drop: pdarts.drop_rate(d, e, warmup_epochs=int(warm * epochs)),
        )
        state = driver.run_stage(
            stage, conf, train, val, cfg.batch, jax.random.fold_in(key, 1 + s), out / f"stage_{s}.ckpt",
            lambda r, s=s, n=n_cells: log({"stage": s, "cells": n, **r}),
            extra=_per_epoch(cfg, table, net, mask, val, jax.random.fold_in(key, 100 + s)),
        )
        alpha_logits = state.alpha["ops"]
    if cfg.method == "pdarts":
        arch = pdarts.limit_skips(alpha_logits, mask, cfg.max_skips, space.OPS.index("skip_connect"))
    else:
        arch = os201.discretize(state.alpha, mask)
    result = {
        "method": cfg.method,
        "estimator": est,
        "arch": space.to_string(np.asarray(arch)),
        "accuracy": {col: float(table.query(arch, col)) for col in table.accuracy_columns()},
        "best_in_table": {col: float(jnp.nanmax(table.column(col))) for col in table.accuracy_columns()},
        "final_weights": np.asarray(os201.mixing_weights(state.alpha, mask)).round(4).tolist(),
    }
    epochs_log = _epochs(out / "alpha.jsonl")
    result["derived_arch"] = [r["derived_arch"] for r in epochs_log]
    result["derived_test_acc"] = [r["derived_acc"] for r in epochs_log]
    if cfg.hessian_images:
        result["hessian_eigenvalue"] = [r["hessian_eigenvalue"] for r in epochs_log]
        stop = early_stop(result["hessian_eigenvalue"])
        result["early_stop"] = None if stop is None else {
            "epoch": stop.epoch, "decided_at": stop.decided_at, "arch": epochs_log[stop.epoch - 1]["derived_arch"],
            "accuracy": epochs_log[stop.epoch - 1]["derived_acc"]}
    if cfg.rank_cells:
        result["rank_disorder"] = rank_disorder(cfg, table, net, state, val, out, jax.random.fold_in(key, 200))
    write_json(out / "result.json", result, indent=1)
    plot_alpha(out / "alpha.jsonl", out / "alpha.png", cfg.method)
    print(json.dumps({k: result[k] for k in ("method", "arch", "accuracy")}, indent=1))
    return result


def _per_epoch(cfg: Config, table, net, mask, val, key):
    """After each epoch: the derived cell and its table accuracy (``cfg.column``) and, with
    ``--hessian-images``, the dominant eigenvalue of the Hessian of the loss on a fixed
    validation subset in alpha (power iteration on exact Hessian-vector products)."""
    curvature = make_alpha_curvature(net, os201.mixing_weights) if cfg.hessian_images else None
    batch = (jnp.asarray(val[0][: cfg.hessian_images]), jnp.asarray(val[1][: cfg.hessian_images]))

    def extra(state, epoch: int) -> dict:
        arch = np.asarray(os201.discretize(state.alpha, mask))
        rec = {"derived_arch": space.to_string(arch), "derived_acc": float(table.query(arch, cfg.column))}
        if curvature is not None:
            rec["hessian_eigenvalue"] = float(curvature(state, batch, jax.random.fold_in(key, epoch), mask).value)
        return rec

    return extra


def rank_disorder(cfg: Config, table, net, state, val, out: Path, key: jax.Array) -> dict:
    """Kendall tau and Spearman rho between the trained supernet's one-shot accuracy of
    ``cfg.rank_cells`` distinct uniformly drawn cells (first ``cfg.rank_images`` validation
    images, in whole batches of up to 256) and their table accuracy in ``cfg.column``.
    Per-cell numbers go to ``rank_disorder.json`` (reused by a rerun with the same settings)
    and ``rank_disorder.png``."""
    path = out / "rank_disorder.json"
    setting = {"cells": cfg.rank_cells, "images": cfg.rank_images, "column": cfg.column}
    if path.exists() and (cached := json.loads(path.read_text()))["setting"] == setting:
        return cached["summary"]
    idx = jax.random.choice(key, space.SIZE, (cfg.rank_cells,), replace=False)
    archs = space.from_index(idx)
    images, labels = val[0][: cfg.rank_images], val[1][: cfg.rank_images]
    bsz = min(256, len(images))
    one_shot = np.asarray(os201.one_shot_accuracy(net, state.params, state.batch_stats, archs, images, labels, batch=bsz))
    truth = np.asarray(table.query(archs, cfg.column))
    agree = rank_agreement(one_shot, truth)
    tau = agree["kendall_tau"]
    summary = {**setting, "images": len(images) // bsz * bsz, "cells_in_table": agree["n"], "kendall_tau": tau,
               "kendall_p": agree["kendall_p"], "spearman": agree["spearman"]}
    cells = [{"arch": space.to_string(a), "one_shot_acc": float(o), "table_acc": float(t)}
             for a, o, t in zip(np.asarray(archs), one_shot, truth)]
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter(truth, 100 * one_shot, s=8)
    ax.set(xlabel=f"table: {cfg.column}", ylabel="one-shot accuracy in the supernet (%)",
           title=f"{cfg.method}: Kendall tau {tau:.3f} over {agree['n']} cells")
    save_figure(fig, out / "rank_disorder.png", dpi=110)
    write_json(path, {"setting": setting, "summary": summary, "cells": cells}, indent=1)
    return summary


def _epochs(log_path: Path) -> list[dict]:
    """The per-epoch records in order, all stages in sequence (a resumed epoch replaces its earlier record)."""
    records = Records(log_path, key=lambda r: (r.get("stage", 0), r["epoch"])).done()
    return [records[k] for k in sorted(records)]


def plot_alpha(log_path: Path, png: Path, title: str) -> None:
    """Mixing weight of each op on each edge against the epoch (all stages in sequence)."""
    rows = _epochs(log_path)
    w = np.array([r["weights"] for r in rows])  # (T, 6, 5)
    w = w / w.sum(-1, keepdims=True)  # per-edge op distribution (edge normalisation divided out)
    fig, axes = plt.subplots(2, 3, figsize=(13, 6.5), sharey=True)
    t = np.arange(1, len(rows) + 1)
    for e, ax in enumerate(axes.flat):
        for o, name in enumerate(space.OPS):
            ax.plot(t, w[:, e, o], label=name)
        i, j = space.EDGES[e]
        ax.set(title=f"edge {j}<-{i}", xlabel="epoch (all stages)", ylabel="softmax(alpha)")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(title)
    save_figure(fig, png, dpi=110)


if __name__ == "__main__":
    main()
