"""Epoch loop around :func:`jnas.oneshot.search.make_step` for any supernet: half the
training images train the weights and half score alpha (the DARTS protocol), batches are
shuffled from explicit keys, and each finished epoch is checkpointed so a killed search
resumes where it stopped."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jnas import checkpoints
from jnas.data.pipeline import split_indices
from jnas.oneshot.search import SearchConfig, SearchState, init_state, make_step


@dataclasses.dataclass(frozen=True)
class Stage:
    """One search stage: a supernet, its alpha helpers, and how long / how it runs."""

    net: Any
    init_alpha: Callable[[jax.Array], Any]
    mix: Callable[[Any, Any], Any]
    op_mask: Any
    epochs: int
    drop_rate: Callable[[int], float] = lambda epoch: 0.0


def split_train_val(x: np.ndarray, y: np.ndarray, key: jax.Array) -> tuple[tuple, tuple]:
    """Shuffle once and halve: DARTS searches with half the training set as validation."""
    a, b = split_indices(len(x), key, 0.5)
    return (x[a], y[a]), (x[b], y[b])


def run_stage(
    stage: Stage, config: SearchConfig, train: tuple, val: tuple, batch: int, key: jax.Array,
    ckpt: Path, log: Callable[[dict], None], extra: Callable[[SearchState, int], dict] | None = None,
) -> SearchState:
    """Train one stage for ``stage.epochs`` epochs; resumes from ``ckpt`` if it exists.

    ``log`` receives one record per epoch: epoch, mean metrics and the mixing weights, plus
    what ``extra(state, epoch)`` returns (per-epoch measurements such as the derived cell's
    accuracy or the curvature in alpha).
    """
    k_init, k_alpha, k_run = jax.random.split(key, 3)
    alpha = stage.init_alpha(k_alpha)
    state = init_state(k_init, stage.net, alpha, lambda a: stage.mix(a, stage.op_mask), jnp.asarray(train[0][:2]), config)
    step = make_step(stage.net, stage.mix, config)
    steps = min(len(train[0]), len(val[0])) // batch

    def run_epoch(state: SearchState, epoch: int) -> tuple[SearchState, dict]:
        ke = jax.random.fold_in(k_run, epoch)
        pt = np.asarray(jax.random.permutation(jax.random.fold_in(ke, 0), len(train[0])))
        pv = np.asarray(jax.random.permutation(jax.random.fold_in(ke, 1), len(val[0])))
        rate = jnp.float32(stage.drop_rate(epoch))
        sums: dict[str, float] = {}
        for i in tqdm(range(steps), desc=f"epoch {epoch + 1}/{stage.epochs}", leave=False):
            tb, vb = _batch(train, pt, i, batch), _batch(val, pv, i, batch)
            state, m = step(state, tb, vb, jax.random.fold_in(ke, 2 + i), rate, stage.op_mask)
            for k, v in m.items():
                sums[k] = sums.get(k, 0.0) + float(v)
        record = {"epoch": epoch + 1, "drop_rate": float(rate), **{k: v / steps for k, v in sums.items()}}
        record["weights"] = jax.tree.map(lambda w: np.asarray(w).round(5).tolist(), stage.mix(state.alpha, stage.op_mask))
        if extra is not None:
            record |= extra(state, epoch + 1)
        return state, record

    return resume_epochs(ckpt, state, stage.epochs, run_epoch, log)


def resume_epochs(ckpt: Path, state: Any, epochs: int, run_epoch: Callable[[Any, int], tuple[Any, dict]],
                  log: Callable[[dict], None], desc: str = "epochs") -> Any:
    """Restore ``state`` from ``ckpt`` when it holds one, then run the remaining epochs:
    ``state, record = run_epoch(state, epoch)``, the record logged, then the state
    checkpointed, so a killed run resumes after its last finished epoch."""
    start = 0
    if (restored := checkpoints.restore(ckpt, state)) is not None:
        state, meta = restored
        start = int(meta["epoch"])
    for epoch in tqdm(range(start, epochs), initial=start, total=epochs, desc=desc):
        state, record = run_epoch(state, epoch)
        log(record)
        checkpoints.save(ckpt, state, epoch=epoch + 1)
    return state


def _batch(split: tuple, perm: np.ndarray, i: int, batch: int) -> tuple[jax.Array, jax.Array]:
    """Batch ``i`` of ``split = (images, labels)`` in the order ``perm``."""
    idx = perm[i * batch : (i + 1) * batch]
    return jnp.asarray(split[0][idx]), jnp.asarray(split[1][idx])
