"""Pieces shared by the real-training search experiments (Genetic CNN, psoCNN, GNAS on MNIST):
the seeded train/validation draw, per-generation summaries and their CSV and plot."""

from __future__ import annotations

import csv
from pathlib import Path

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from jaxtyping import PRNGKeyArray

from experiments.plots import save_figure
from jnas import data


def mnist_splits(data_dir: str | None, n_train: int, n_val: int, key: PRNGKeyArray) -> tuple[data.ImageData, data.ImageData]:
    """``n_train`` training and ``n_val`` validation images drawn (seeded, disjoint) from MNIST's
    training split; the test split stays untouched for the final score."""
    full = data.load("mnist", "train", data_dir)
    if n_train + n_val > len(full):
        raise ValueError(f"n_train + n_val = {n_train + n_val} exceeds the {len(full)} MNIST training images")
    pool, _ = data.split(full, jax.random.fold_in(key, 0), (n_train + n_val) / len(full))
    return data.split(pool, jax.random.fold_in(key, 1), n_train / len(pool))


def generation_rows(values: np.ndarray, larger_is_better: bool = True) -> list[dict]:
    """Per generation (row of ``values``): best, mean, worst and the best so far."""
    pick, drop = (np.max, np.min) if larger_is_better else (np.min, np.max)
    rows, best = [], None
    for gen, v in enumerate(np.asarray(values)):
        best = float(pick(v)) if best is None else float(pick([best, pick(v)]))
        rows.append({"generation": gen, "best": float(pick(v)), "mean": float(v.mean()), "worst": float(drop(v)),
                     "best_so_far": best})
    return rows


def write_csv(path: str | Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def save_generation_plot(rows: list[dict], path: str | Path, xlabel: str, ylabel: str, title: str) -> None:
    """Best, mean and worst value per generation."""
    gens = [r["generation"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    for k, style in (("best", "o-"), ("mean", "s-"), ("worst", "^-")):
        ax.plot(gens, [r[k] for r in rows], style, label=k)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.legend()
    save_figure(fig, path, dpi=120)
