"""Many independent searches of one strategy: one jitted ``vmap`` (or ``lax.map``) over seeds
when the strategy and objective are jittable, else the Python driver seed by seed with a
resumable log per seed."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
from tqdm.auto import tqdm

from jnas.strategies.base import Objective, PyTree, Strategy, best_so_far, search
from jnas.strategies.driver import run

MODES = ("vmap", "driver")


def run_seeds(strategy: Strategy, objective: Objective, budget: int, seeds: int, first_seed: int = 0,
              mode: str = "vmap", params: PyTree = None, logs: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Best-so-far fitness and the incumbent's report, ``(seeds, budget)`` each.

    Args:
      mode: ``"vmap"`` (all seeds in one jitted call; needs a jittable strategy and
        objective) or ``"driver"`` (seed by seed; ``logs``: a folder of ``seed_<s>.jsonl``
        files from which a killed run resumes).
    Raises:
      ValueError: unknown mode, fewer than one seed or query, or ``vmap`` with a strategy
        that does not trace under jit.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; valid modes are {list(MODES)}")
    if seeds < 1 or budget < 1:
        raise ValueError(f"need seeds >= 1 and budget >= 1, got seeds={seeds}, budget={budget}")
    steps = -(-budget // strategy.batch)
    keys = jax.vmap(jax.random.key)(np.arange(first_seed, first_seed + seeds))
    if mode == "vmap":
        if not strategy.jittable:
            raise ValueError("this strategy does not trace under jit; use mode='driver'")
        one = lambda k: best_so_far(search(strategy, params, objective, steps, k))
        bf, br = jax.jit(jax.vmap(one) if strategy.vmappable else lambda ks: jax.lax.map(one, ks))(keys)
    else:
        if logs is not None:
            Path(logs).mkdir(parents=True, exist_ok=True)
        res = []
        for i in tqdm(range(seeds), desc="seeds"):
            log = None if logs is None else Path(logs) / f"seed_{first_seed + i}.jsonl"
            res.append(best_so_far(run(strategy, params, objective, budget, keys[i], log=log, progress=False)))
        bf, br = np.stack([r[0] for r in res]), np.stack([r[1] for r in res])
    return np.asarray(bf)[:, :budget], np.asarray(br)[:, :budget]
