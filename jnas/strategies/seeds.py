"""Many independent searches of one strategy: one jitted ``vmap`` (or ``lax.map``) over seeds
when the strategy and objective are jittable, the seeds split over local devices with
``shard_map`` when asked, else the Python driver seed by seed with a resumable log per seed."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import jax
import numpy as np
from jax.sharding import PartitionSpec
from tqdm.auto import tqdm

from jnas.distributed import local_mesh
from jnas.strategies.base import Objective, PyTree, Strategy, best_so_far, check_finite, check_nonfinite_option, search
from jnas.strategies.driver import run

MODES = ("vmap", "driver")


def run_seeds(strategy: Strategy, objective: Objective, budget: int, seeds: int, first_seed: int = 0,
              mode: str = "vmap", params: PyTree = None, logs: str | Path | None = None,
              nonfinite: str = "raise", devices: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Best-so-far fitness and the incumbent's report, ``(seeds, budget)`` each.

    Args:
      mode: ``"vmap"`` (all seeds in one jitted call; needs a jittable strategy and
        objective) or ``"driver"`` (seed by seed; ``logs``: a folder of ``seed_<s>.jsonl``
        files from which a killed run resumes).
      nonfinite: ``"raise"`` refuses an objective that returned NaN or infinity, naming the
        seed, step and architecture; ``"worst"`` tells the worst finite fitness seen so far
        instead (see :func:`jnas.strategies.run`). A non-finite value is never an incumbent.
      devices: ``vmap`` mode only: local devices the seeds are split over (``shard_map``; the
        seed count is padded to a multiple with repeated seeds, dropped after). Each seed's
        search depends only on its key, so the results equal one device's.
    Raises:
      ValueError: unknown mode, fewer than one seed or query, or ``vmap`` with a strategy
        that does not trace under jit.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; valid modes are {list(MODES)}")
    check_nonfinite_option(nonfinite)
    if devices != 1 and mode != "vmap":
        raise ValueError(f"devices={devices} splits seeds in mode='vmap' only; mode {mode!r} runs them one by one")
    if seeds < 1 or budget < 1:
        raise ValueError(f"need seeds >= 1 and budget >= 1, got seeds={seeds}, budget={budget}")
    steps = -(-budget // strategy.batch)
    keys = jax.vmap(jax.random.key)(np.arange(first_seed, first_seed + seeds))
    if mode == "vmap":
        try:
            (bf, br), trace = seed_searches(strategy, objective, steps, params, devices)(keys)
        except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError) as e:
            raise ValueError(f"the objective does not trace under jit ({type(e).__name__}: it needs concrete "
                             "values); write it in jax.numpy or use mode='driver'") from None
        if nonfinite == "raise":
            check_finite(trace, first_seed)
    else:
        if logs is not None:
            Path(logs).mkdir(parents=True, exist_ok=True)
        res = []
        for i in tqdm(range(seeds), desc="seeds"):
            log = None if logs is None else Path(logs) / f"seed_{first_seed + i}.jsonl"
            res.append(best_so_far(run(strategy, params, objective, budget, keys[i], log=log, progress=False,
                                       nonfinite=nonfinite)))
        bf, br = np.stack([r[0] for r in res]), np.stack([r[1] for r in res])
    return np.asarray(bf)[:, :budget], np.asarray(br)[:, :budget]


def seed_searches(strategy: Strategy, objective: Objective, steps: int, params: PyTree = None,
                  devices: int = 1) -> Callable:
    """``keys (K,) -> ((best fitness, incumbent report) (K, steps * batch), trace)``: one jitted
    call running a search per key, ``vmap`` (or ``lax.map`` for strategies that do not vmap
    well), the keys split over ``devices`` local devices with ``shard_map`` (padded to a
    multiple with repeats of the first keys, trimmed after).

    Raises:
      ValueError: a strategy that does not trace under jit, or a device count out of range.
    """
    if not strategy.jittable:
        raise ValueError("this strategy does not trace under jit; use mode='driver'")
    mesh = local_mesh(devices, "seeds")  # validates the count

    def one(k):
        trace = search(strategy, params, objective, steps, k)
        return best_so_far(trace), trace._replace(metrics=None)

    many = jax.vmap(one) if strategy.vmappable else lambda ks: jax.lax.map(one, ks)
    if devices > 1:
        many = jax.shard_map(many, mesh=mesh, in_specs=PartitionSpec("seeds"), out_specs=PartitionSpec("seeds"),
                             check_vma=False)
    jitted = jax.jit(many)

    def run_all(keys):
        k = len(keys)
        out = jitted(keys[np.arange(k + (-k % devices)) % k])
        return jax.tree.map(lambda x: x[:k], out)

    return run_all
