"""DARTS's collapse on NAS-Bench-201, measured, and remedies run on the same setting.

    python -m experiments.darts_collapse --data-dir ../shared/data --out runs/darts_collapse

Plain first-order DARTS searched long enough for alpha to settle, with the dominant
eigenvalue of the validation-loss Hessian in alpha measured after every epoch (exact
Hessian-vector products, power iteration), then the remedies: DARTS-ES (the same run cut by
RobustDARTS's rule on those eigenvalues), SDARTS-RS (random smoothing of the mixing
weights in the weight step) and RobustDARTS's L2 remedy (27x stronger weight decay on the weights);
``--remedies sdarts-rs,darts-l2,pdarts`` adds P-DARTS (progressive depth, skip dropout, at most 2 skips; about
twice the cost). Each search is a ``darts_nb201`` run in its own subfolder and resumes on
its own.

CPU-sized setting, and what it changes: C=8, N=1 (3 cells instead of 15), the 5,085-image
CIFAR-10 subset split in half (about 39 steps per epoch instead of 390), 30 epochs. To give
alpha the same room to move as DARTS's 50 x 390 steps at Adam lr 3e-4 (about 5.9 in
lr x steps), alpha's lr is 3e-3 (30 x 39 x 3e-3 = 3.5); the weights' schedule is DARTS's.

Writes ``summary.json``: per-epoch lists ``derived_test_acc``, ``hessian_eigenvalue`` and
``parameter_free_share`` (skip, pooling and none edges in the derived cell) of plain DARTS,
``remedies`` {name: final derived test accuracy}, the early stop, and the same lists per
remedy; ``rank_disorder`` {method: Kendall tau and Spearman rho between the final
supernet's one-shot accuracy of 200 random cells and their table accuracy};
``collapse.png`` (accuracy, eigenvalue and parameter-free share over epochs).
Published reference (NB201 paper, Table 5; full CIFAR-10, 50 epochs, C=16, N=5): DARTS-V1
and V2 derive all-skip cells, 54.30% CIFAR-10 test accuracy.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from experiments import darts_nb201
from experiments.common import parse, prepare_out, save_figure
from jnas.records import write_json
from jnas.spaces import nb201 as space
from jnas.strategies.objectives import DEFAULT_REPORT

PARAMETER_FREE = ("none", "skip_connect", "avg_pool_3x3")
REMEDIES = ("sdarts-rs", "darts-l2")


@dataclasses.dataclass(frozen=True)
class Config:
    epochs: int = dataclasses.field(default=30, metadata={"help": "search epochs of every method (P-DARTS: split over its 3 stages)", "min": 1})
    C: int = dataclasses.field(default=8, metadata={"help": "supernet channels of the first stage"})
    N: int = dataclasses.field(default=1, metadata={"help": "cells per stage"})
    batch: int = dataclasses.field(default=64, metadata={"help": "batch size", "min": 1})
    n_images: int = dataclasses.field(default=0, metadata={"help": "first n training images (0: all)", "min": 0})
    a_lr: float = dataclasses.field(default=3e-3, metadata={"help": "alpha's Adam learning rate (DARTS: 3e-4 over 10x more steps)", "above": 0.0})
    hessian_images: int = dataclasses.field(default=64, metadata={"help": "validation images of the Hessian eigenvalue", "min": 1})
    column: str = dataclasses.field(default=DEFAULT_REPORT, metadata={"help": "table column of the derived cells' accuracy"})
    remedies: str = dataclasses.field(default=",".join(REMEDIES), metadata={"help": "darts_nb201 methods run as remedies, comma-separated"})
    rank_cells: int = dataclasses.field(default=200, metadata={"help": "random cells whose one-shot accuracy in each final supernet is ranked against the table (0: off)", "min": 0, "max": space.SIZE})
    rank_images: int = dataclasses.field(default=1024, metadata={"help": "validation images of those one-shot accuracies", "min": 1})
    seed: int = dataclasses.field(default=0, metadata={"help": "PRNG seed"})
    data_dir: str | None = dataclasses.field(default=None, metadata={"help": "data root (else $JNAS_DATA)"})
    out: str = dataclasses.field(default="runs/darts_collapse", metadata={"help": "output folder"})


def main(argv: Sequence[str] | None = None) -> dict:
    cfg = parse(Config, argv, __doc__.splitlines()[0])
    remedies = [m.strip() for m in cfg.remedies.split(",") if m.strip()]
    unknown = sorted(set(remedies) - set(darts_nb201.METHODS))
    if unknown:
        raise ValueError(f"--remedies {unknown} are not darts_nb201 methods {sorted(darts_nb201.METHODS)}")
    out = prepare_out(cfg.out, cfg, resume_keys=[f.name for f in dataclasses.fields(Config) if f.name not in ("out", "data_dir", "remedies", "rank_cells", "rank_images")])
    common = ["--epochs", cfg.epochs, "--C", cfg.C, "--N", cfg.N, "--batch", cfg.batch, "--n-images", cfg.n_images,
              "--a-lr", cfg.a_lr, "--hessian-images", cfg.hessian_images, "--column", cfg.column, "--seed", cfg.seed,
              "--rank-cells", cfg.rank_cells, "--rank-images", cfg.rank_images]
    common = [str(a) for a in common] + (["--data-dir", cfg.data_dir] if cfg.data_dir else [])
    runs = {m: darts_nb201.main(common + ["--method", m, "--out", str(out / m)]) for m in ["darts1", *remedies]}
    for m, r in runs.items():
        r["parameter_free_share"] = [_parameter_free(a) for a in r["derived_arch"]]
    plain = runs["darts1"]
    stop = plain["early_stop"]
    summary = {
        "setting": dataclasses.asdict(cfg),
        "derived_test_acc": plain["derived_test_acc"],
        "hessian_eigenvalue": plain["hessian_eigenvalue"],
        "parameter_free_share": plain["parameter_free_share"],
        "final_arch": plain["arch"],
        "early_stop": stop,
        # DARTS-ES's entry is the cell it returns; when the rule never fired, DARTS-ES is plain DARTS.
        "remedies": {"darts-es": (stop["accuracy"] if stop else plain["derived_test_acc"][-1]),
                     **{m: runs[m]["derived_test_acc"][-1] for m in remedies}},
        "per_method": {m: {k: r[k] for k in ("arch", "derived_test_acc", "hessian_eigenvalue", "parameter_free_share")}
                       for m, r in runs.items()},
        # Kendall tau between each final supernet's one-shot accuracies and the table (rank disorder).
        "rank_disorder": {m: r["rank_disorder"] for m, r in runs.items() if "rank_disorder" in r},
        "published_darts_nb201_c10_test": 54.30,
    }
    write_json(out / "summary.json", summary, indent=1)
    _plot(out / "collapse.png", runs, stop, cfg.column)
    print(json.dumps({k: summary[k] for k in ("final_arch", "early_stop", "remedies")}, indent=1))
    return summary


def _parameter_free(arch: str) -> float:
    return float(np.mean([space.OPS[o] in PARAMETER_FREE for o in np.asarray(space.from_string(arch))]))


def _plot(png, runs: dict, stop, column: str) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for m, r in runs.items():
        t = np.arange(1, len(r["derived_test_acc"]) + 1)
        axes[0].plot(t, r["derived_test_acc"], label=m)
        axes[1].plot(t, r["hessian_eigenvalue"], label=m)
        axes[2].plot(t, r["parameter_free_share"], label=m)
    if stop:
        axes[1].axvline(stop["epoch"], ls=":", c="k", label=f"DARTS-ES cell (decided at {stop['decided_at']})")
    axes[0].set(xlabel="epoch", ylabel=f"derived cell: {column}")
    axes[1].set(xlabel="epoch", ylabel="dominant eigenvalue of the val-loss Hessian in alpha")
    axes[2].set(xlabel="epoch", ylabel="parameter-free edges in the derived cell", ylim=(-0.05, 1.05))
    for ax in axes:
        ax.legend(fontsize=7)
    save_figure(fig, png, dpi=110)


if __name__ == "__main__":
    main()
