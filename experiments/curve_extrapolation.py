"""How early does each learning-curve model predict the final accuracy? Measured on curves
from real training runs.

    python -m experiments.curve_extrapolation --n-archs 6 --epochs 15 --data-dir ../shared/data --out runs/curve_extrapolation

Trains ``--n-archs`` random NB201 cells (seeded) with :mod:`jnas.train` at low fidelity (C=8,
N=1, the NB201 half/half split of the local CIFAR-10 subset), recording validation accuracy
each epoch. Then, for each observed fraction of the curve, fits each of the eleven parametric
models (least squares), Domhan et al.'s MCMC ensemble of all of them, and the last-value
baseline, and reports the mean absolute error (accuracy points) of the predicted final
accuracy. Writes ``curves.json`` (the training curves), ``errors.csv``, ``summary.json`` and
``mae.png``. Each training run checkpoints per epoch and each finished (cell, fraction) fit
is appended to ``fits.jsonl`` (:class:`jnas.records.Records`): rerunning the same command resumes.

Runtime (2-core CPU, defaults): about 8 minutes of training plus a few minutes of fitting.
Reference: Domhan et al. (2015) stop runs whose P(final > best) < 5%; their curves are
hundreds of epochs long, far longer than a CPU run here.
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

from experiments.common import parse, prepare_out, save_figure, write_csv
from jnas import data, train
from jnas.estimation import curves
from jnas.spaces import nb201 as space
from jnas.records import Records, write_json


@dataclasses.dataclass(frozen=True)
class Config:
    n_archs: int = dataclasses.field(default=6, metadata={"help": "architectures trained"})
    epochs: int = dataclasses.field(default=15, metadata={"help": "epochs per training run (the curve length)", "min": 3})
    fractions: str = dataclasses.field(default="0.2,0.33,0.5,0.67,0.8", metadata={"help": "observed fractions", "items": float, "above": 0.0, "below": 1.0})
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
    observed = {f: observed_epochs(f, cfg.epochs) for f in fractions}
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

    fits = Records(out / "fits.jsonl", key=lambda r: (r["arch"], r["fraction"]))
    done = fits.done()
    models = list(curves.MODELS) + ["ensemble", "last_value"]
    jobs = [(s, f) for s in runs for f in fractions if (s, f) not in done]
    for s, f in tqdm(jobs, desc="fits"):
        y = np.asarray(runs[s]) / 100.0
        n_obs = observed[f]
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
        fits.append({"arch": s, "fraction": f, "observed_epochs": n_obs, "actual": 100 * y[-1],
                     "predicted": {m: 100 * preds[m] for m in models}})
    rows = [{"arch": r["arch"], "fraction": r["fraction"], "observed_epochs": r["observed_epochs"], "model": m,
             "predicted": p, "actual": r["actual"], "abs_error": float("nan") if p is None else abs(p - r["actual"])}
            for r in fits.read() if r["fraction"] in observed for m, p in r["predicted"].items()]
    write_csv(out / "errors.csv", rows)
    summary = {"config": dataclasses.asdict(cfg), "final_val_acc": {s: c[-1] for s, c in runs.items()}, "mae": {}}
    for m in models:
        summary["mae"][m] = {
            str(f): float(np.nanmean([r["abs_error"] for r in rows if r["model"] == m and r["fraction"] == f]))
            for f in fractions
        }
    write_json(out / "summary.json", summary, indent=2)
    _plot(summary["mae"], fractions, out / "mae.png", cfg)
    return summary


def observed_epochs(fraction: float, epochs: int) -> int:
    """Epochs of the curve a fit sees: ``fraction`` of ``epochs`` rounded, at least 2 (a fit
    needs two points).

    Raises:
      ValueError: the fit would see the whole curve (its prediction would be a lookup).
    """
    n = max(2, int(round(fraction * epochs)))
    if n >= epochs:
        raise ValueError(f"--fractions {fraction} of --epochs {epochs} observes {n} of {epochs} epochs, the whole "
                         f"curve (a fit needs at least 2 and must leave the last unseen); use more --epochs or a "
                         f"smaller fraction")
    return n


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
