"""Work split over devices and processes: a one-axis mesh of local devices (for
``shard_map``), ``jax.distributed`` start-up, each process's share of a population, and the
results gathered on every process.

One process per host (or per GPU) runs the same program; :func:`initialize` connects them
(``jax.distributed.initialize``: explicit coordinator address, process count and id, or
detected from a cluster environment such as SLURM when none is given). A population of
``n`` items is cut into ``num_processes`` contiguous blocks (:func:`share`); each process
evaluates its block and :func:`gather` collects every block on every process in the
original order (``multihost_utils.process_allgather``; on CPU over gloo collectives).
Splitting is by whole items, so the gathered result equals one process's result exactly
whenever each item's value depends only on the item (as proxy scores with a shared or
per-architecture key do).
"""

from __future__ import annotations

from functools import cache
from typing import Callable

import jax
import numpy as np
from jax.sharding import Mesh


@cache
def local_mesh(devices: int, axis: str) -> Mesh:
    """The first ``devices`` local devices as a one-axis mesh named ``axis`` (one object per
    count and name, so jitted functions built on it are reused)."""
    available = len(jax.local_devices())
    if not 1 <= devices <= available:
        raise ValueError(f"devices must lie in 1..{available} (the local {jax.default_backend()} devices), got {devices}")
    return Mesh(np.array(jax.local_devices()[:devices]), (axis,))


def initialize(coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None) -> None:
    """Join the processes of one job; call before any JAX computation. With no arguments,
    JAX reads them from the cluster environment (SLURM, Open MPI, Kubernetes); on one machine
    give all three, e.g. ``initialize("localhost:12355", 2, 0)`` and ``(..., 2, 1)`` in the
    second process."""
    given = [v is not None for v in (coordinator, num_processes, process_id)]
    if any(given) and not all(given):
        raise ValueError("give coordinator, num_processes and process_id together, or none of them "
                         f"(cluster auto-detection); got coordinator={coordinator!r}, num_processes={num_processes!r}, "
                         f"process_id={process_id!r}")
    if all(given) and (num_processes < 1 or not 0 <= process_id < num_processes):
        raise ValueError(f"process_id must lie in 0..{num_processes - 1}; got {process_id} of {num_processes}")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # collectives for CPU devices; GPUs use NCCL
    try:
        jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes, process_id=process_id)
    except RuntimeError as e:
        if "must be called before" in str(e):
            raise RuntimeError("jnas.distributed.initialize must run before any JAX computation or device query "
                               "(call it first thing in the program)") from e
        raise


def share(n: int, num_processes: int | None = None, process_id: int | None = None) -> slice:
    """This process's contiguous block of ``range(n)``: blocks of ``ceil(n / processes)``, the
    last one shorter (or empty)."""
    p = jax.process_count() if num_processes is None else num_processes
    i = jax.process_index() if process_id is None else process_id
    size = -(-n // p)
    return slice(min(i * size, n), min((i + 1) * size, n))


def gather(local: np.ndarray, n: int) -> np.ndarray:
    """Every process's block (from :func:`share`) of an ``(block, ...)`` result, stacked in
    order on every process: ``(n, ...)``. Blocks are padded to one size for the collective
    and trimmed after."""
    from jax.experimental import multihost_utils

    local = np.asarray(local)
    p = jax.process_count()
    sizes = [len(range(n)[share(n, p, i)]) for i in range(p)]
    mine = share(n)
    if local.shape[0] != sizes[jax.process_index()]:
        raise ValueError(f"process {jax.process_index()} holds {local.shape[0]} results for its block of "
                         f"{sizes[jax.process_index()]} (items {mine.start}..{mine.stop - 1} of {n})")
    padded = np.zeros((max(sizes), *local.shape[1:]), local.dtype)
    padded[: local.shape[0]] = local
    every = np.asarray(multihost_utils.process_allgather(padded))  # (p, largest block, ...)
    return np.concatenate([every[i][:size] for i, size in enumerate(sizes)])


def map_population(fn: Callable[[np.ndarray], np.ndarray], items: np.ndarray) -> np.ndarray:
    """``fn`` over this process's block of ``items``, gathered: on every process, the same
    ``(n, ...)`` array one process running ``fn(items)`` would give (for item-wise ``fn``)."""
    items = np.asarray(items)
    return gather(fn(items[share(len(items))]), len(items))
