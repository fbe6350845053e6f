"""Objectives for black-box search: a tabular benchmark (jittable), a zero-cost proxy, and
several columns at once for multi-objective search."""

from __future__ import annotations

from typing import Callable

import jax.numpy as jnp
import numpy as np

from jnas.spaces import nb201
from jnas.strategies.base import Objective

# NB201 CIFAR-10 defaults: fitness = validation accuracy of the cifar10-valid run, report = test accuracy.
DEFAULT_FITNESS = "c10valid_val_acc_200ep"
DEFAULT_REPORT = "c10_test_acc_200ep"


def tabular(table, fitness: str = DEFAULT_FITNESS, report: str = DEFAULT_REPORT, sign: float = 1.0,
            missing: str = "raise") -> Objective:
    """``archs (B, 6) -> (sign * table[fitness], table[report])``, jittable (a gather).

    ``sign=-1`` minimises a column (latency, params). A fitness column with missing (NaN)
    entries is refused (``missing="raise"``), or its gaps are filled with the column's worst
    value (``missing="worst"``), so no strategy is told NaN inside a jitted search.

    Raises:
      ValueError: an unknown column, or missing fitness values under ``missing="raise"``.
    """
    for name in (fitness, report):
        if name not in table.columns:
            raise ValueError(f"unknown column {name!r}; the table has {table.metrics}")
    if missing not in ("raise", "worst"):
        raise ValueError(f"unknown missing-value handling {missing!r}; valid choices are ['raise', 'worst']")
    F, R = table.columns[fitness], table.columns[report]
    holes = ~jnp.isfinite(F)
    if bool(holes.any()):
        if missing == "raise":
            raise ValueError(f"fitness column {fitness!r} has {int(holes.sum())} missing values (e.g. base-5 index "
                             f"{int(jnp.argmax(holes))}); pass missing='worst' to fill them with the column's worst value")
        F = jnp.where(holes, jnp.nanmin(sign * F) * sign, F)

    def objective(archs):
        i = nb201.to_index(archs)
        return sign * F[i], R[i]

    return objective


def columns(table, names: list[str], signs: list[float] | None = None) -> Callable:
    """``archs (B, 6) -> (B, len(names))`` with each column times its sign (multi-objective)."""
    for name in names:
        if name not in table.columns:
            raise ValueError(f"unknown column {name!r}; the table has {table.metrics}")
    signs = signs or [1.0] * len(names)
    cols = jnp.stack([s * table.columns[n] for n, s in zip(names, signs)], axis=-1)
    return lambda archs: cols[nb201.to_index(archs)]


def proxy(name: str, batch: tuple, key, table=None, report: str = DEFAULT_REPORT, **score_kwargs) -> Objective:
    """A zero-cost proxy as fitness (jnas.proxies.score on ``batch``); report from the table if given."""
    from jnas import proxies

    proxies.get(name)  # unknown names raise here, listing the valid ones
    R = None if table is None else np.asarray(table.columns[report])

    def objective(archs):
        archs = np.asarray(archs)
        s = proxies.score(name, archs, batch, key, progress=False, **score_kwargs)
        rep = np.full(len(archs), np.nan, np.float32) if R is None else R[np.asarray(nb201.to_index(archs))]
        return np.asarray(s, np.float32), rep

    return objective
