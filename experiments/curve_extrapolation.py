"""How early does each learning-curve model predict the final accuracy? Measured on curves
from real training runs.

    python -m experiments.curve_extrapolation --n-archs 6 --epochs 15 --data-dir ../shared/data --out runs/curve_extrapolation

Trains ``--n-archs`` random NB201 cells (seeded) with :mod:`jnas.train` at low fidelity (C=8,
N=1, the NB201 half/half split of the local CIFAR-10 subset), recording validation accuracy
each epoch. Then, for each observed fraction of the curve, fits each of the eleven parametric
models (least squares), Domhan et al.'s MCMC ensemble of all of them, and the last-value
baseline, and reports the mean absolute error (accuracy points) of the predicted final
accuracy. Writes ``curves.json`` (the training curves), ``errors.csv``, ``summary.json`` and
``mae.png``. Each training run checkpoints per epoch and each finished prediction is
appended to ``errors.csv``: rerunning the same command resumes.

Runtime (2-core CPU, defaults): about 8 minutes of training plus a few minutes of fitting.
Reference: Domhan et al. (2015) stop runs whose P(final > best) < 5%; their curves are
hundreds of epochs long, far longer than a CPU run here.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path
from typing import Sequence

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from tqdm.auto import tqdm

from experiments.common import parse, prepare_out, save_figure
from jnas import data, train
from jnas.estimation import curves
from jnas.spaces import nb201 as space
from jnas.records import write_json

FIELDS = ("arch", "fraction", "model", "predicted", "actual", "abs_error")


@dataclasses.dataclass(frozen=True)
class Config:
    n_archs: int = dataclasses.field(default=6, metadata={"help": "architectures trained"})
    epochs: int = dataclasses.field(default=15, metadata={"help": "epochs per training run (the curve length)"})
    fractions: str = dataclasses.field(default="0.2,0.33,0.5,0.67,0.8", metadata={"help": "observed fractions"})
    C: int = dataclasses.field(default=8, metadata={"help": "channels"})
    N: int = dataclasses.field(default=1, metadata={"help": "cells per stage"})
    batch_size: int = dataclasses.field(default=128, metadata={"help": "batch size"})
    mcmc_steps: int = dataclasses.field(default=600, metadata={"help": "emcee steps (half burn-in)"})
    seed: int = dataclasses.field(default=0, metadata={"help": "PRNG seed"})
    data_dir: str | None = dataclasses.field(default=None, metadata={"help": "data root (else $JNAS_DATA)"})
    out: str = dataclasses.field(default="runs/curve_extrapolation", metadata={"help": "output folder"})


def main(argv: Sequence[str] | None = None) -> dict:
    cfg = parse(Config, argv, __doc__.splitlines()[0])
    fractions = [float(f) for f in cfg.fractions.split(",")]
    if any(not 0 < f < 1 for f in fractions):
        raise ValueError(f"fractions must lie in (0, 1), got {fractions}")
    out = prepare_out(cfg.out, cfg, resume_keys=["n_archs", "epochs", "C", "N", "batch_size", "seed"])
    key = jax.random.key(cfg.seed)
    trainset = data.load("cifar10", "train", cfg.data_dir)
    tr, va = data.split(trainset, jax.random.fold_in(key, 0))
    archs = np.asarray(space.sample(jax.random.fold_in(key, 1), cfg.n_archs))
    tc = train.TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size)
    runs = {}
    for i, a in enumerate(tqdm(archs, desc="training runs")):
        s = space.to_string(a)
        net, arch = train.realise("nb201", s, trainset.spec.num_classes, cfg.C, cfg.N)
        _, hist = train.fit(net, arch, tr, va, tc, jax.random.fold_in(key, 2 + i), out=out / "runs" / f"arch_{i}")
        runs[s] = [r["val_acc"] for r in hist]
    write_json(out / "curves.json", runs, indent=1)

    done = _read_done(out / "errors.csv")
    models = list(curves.MODELS) + ["ensemble", "last_value"]
    jobs = [(s, f) for s in runs for f in fractions if (s, f) not in done]
    for s, f in tqdm(jobs, desc="fits"):
        y = np.asarray(runs[s]) / 100.0
        n_obs = max(2, int(round(f * cfg.epochs)))
        x = np.arange(1, cfg.epochs + 1, dtype=float)
        k = jax.random.fold_in(jax.random.fold_in(key, 100 + list(runs).index(s)), fractions.index(f))
        preds = {}
        for m in curves.MODELS:
            try:
                fitted = curves.fit(m, x[:n_obs], y[:n_obs], k)
                preds[m] = float(curves.evaluate(m, fitted.params, float(cfg.epochs)))
            except RuntimeError:
                preds[m] = float("nan")
        try:
            post = curves.fit_ensemble(x[:n_obs], y[:n_obs], cfg.epochs, k, steps=cfg.mcmc_steps, burn=cfg.mcmc_steps // 2)
            preds["ensemble"] = float(post.mean([float(cfg.epochs)])[0])
        except RuntimeError:  # no model satisfies the prior on this prefix
            preds["ensemble"] = float("nan")
        preds["last_value"] = curves.baseline_last(y[:n_obs])
        rows = [{"arch": s, "fraction": f, "model": m, "predicted": 100 * preds[m], "actual": 100 * y[-1],
                 "abs_error": abs(100 * preds[m] - 100 * y[-1]) if np.isfinite(preds[m]) else float("nan")}
                for m in models]
        _append(out / "errors.csv", rows)
    rows = _read_rows(out / "errors.csv")
    summary = {"config": dataclasses.asdict(cfg), "final_val_acc": {s: c[-1] for s, c in runs.items()}, "mae": {}}
    for m in models:
        summary["mae"][m] = {
            str(f): float(np.nanmean([r["abs_error"] for r in rows if r["model"] == m and r["fraction"] == f]))
            for f in fractions
        }
    write_json(out / "summary.json", summary, indent=2)
    _plot(summary["mae"], fractions, out / "mae.png", cfg)
    return summary


def _read_done(path: Path) -> set:
    return {(r["arch"], r["fraction"]) for r in _read_rows(path)}


def _read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [{**r, "fraction": float(r["fraction"]), "abs_error": float(r["abs_error"])} for r in csv.DictReader(f)]


def _append(path: Path, rows: list[dict]) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, FIELDS)
        if new:
            w.writeheader()
        w.writerows(rows)


def _plot(mae: dict, fractions: list[float], path: Path, cfg: Config) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for m, by_f in mae.items():
        style = dict(lw=2.5, color="k") if m == "ensemble" else dict(lw=2, ls="--", color="gray") if m == "last_value" else dict(lw=1)
        ax.plot(fractions, [by_f[str(f)] for f in fractions], marker="o", ms=3, label=m, **style)
    ax.set(xlabel="fraction of the curve observed", ylabel="MAE of final val. accuracy (points)", yscale="log",
           title=f"{cfg.n_archs} NB201 cells, C={cfg.C} N={cfg.N}, {cfg.epochs} epochs")
    ax.legend(fontsize=7, ncol=2)
    save_figure(fig, path, dpi=120)


if __name__ == "__main__":
    main()
