"""Standalone training of one architecture with optax: the NAS-Bench-201 protocol by default.

One jitted train step serves every architecture of a space (the architecture is an input
array, as everywhere in jnas). ``fit`` runs epochs with tqdm bars, appends a row per epoch to
``metrics.csv`` and saves the orbax checkpoint folder ``checkpoint.ckpt`` after each epoch;
called again with the same ``out`` it resumes after the last finished epoch. All randomness
is derived from one key by ``fold_in(epoch, step)``, so a resumed run ends with the same
numbers as an uninterrupted one.

Low-fidelity knobs: ``epochs`` (the cosine schedule is stretched over them, as NB201's 12-epoch
runs were), data fraction (:func:`jnas.data.subset`), network size (``C``, ``N`` of the net)
and input ``resolution``.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import inspect
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import PRNGKeyArray
from tqdm.auto import tqdm

from jnas import checkpoints
from jnas.data.datasets import ImageData
from jnas.data.pipeline import augment, cutout, epoch_batches, normalize, num_batches, resize
from jnas.train.optim import adam_cosine, cosine_lr, sgd_cosine

PyTree = Any
CSV_FIELDS = ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "seconds")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Training hyperparameters; defaults are NAS-Bench-201's (200 epochs for the full budget)."""

    epochs: int = 200
    batch_size: int = 256
    lr: float = 0.1
    lr_min: float = 0.0
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    augment: bool = True
    resolution: int | None = None
    eval_batch_size: int = 1000
    optimizer: str = "sgd"  # "sgd" (NB201) or "adam"
    # DARTS's evaluation extras (0: off): cutout side in pixels (DARTS: 16), auxiliary-head
    # loss weight (0.4; the net must sow ``intermediates/aux_logits``), drop-path rate (0.2,
    # ramped linearly from 0 over the epochs; the net's ``__call__`` must take ``drop_path``)
    cutout: int = 0
    aux_weight: float = 0.0
    drop_path: float = 0.0

    def __post_init__(self):
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"unknown optimizer {self.optimizer!r}; valid optimizers are ['sgd', 'adam']")
        for name in ("epochs", "batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.cutout < 0 or self.aux_weight < 0 or not 0 <= self.drop_path < 1:
            raise ValueError(f"TrainConfig needs cutout >= 0, aux_weight >= 0 and 0 <= drop_path < 1, got "
                             f"{self.cutout}, {self.aux_weight}, {self.drop_path}")


class TrainState(NamedTuple):
    params: PyTree
    batch_stats: PyTree
    opt_state: optax.OptState
    step: jax.Array  # () int32, optimiser steps taken


def optimizer(config: TrainConfig, steps_per_epoch: int) -> optax.GradientTransformation:
    if config.optimizer == "adam":
        return adam_cosine(config.lr, config.epochs * steps_per_epoch, weight_decay=config.weight_decay,
                           lr_min=config.lr_min)
    return sgd_cosine(
        config.lr, config.epochs * steps_per_epoch, momentum=config.momentum, nesterov=config.nesterov,
        weight_decay=config.weight_decay, lr_min=config.lr_min,
    )


def _inputs(x, spec, resolution):
    return resize(normalize(x, spec.mean, spec.std), resolution)


def _is_static(net: nn.Module) -> bool:
    """Nets with ``select="static"`` compile per architecture: arch is a static jit argument."""
    return getattr(net, "select", None) == "static"


def arch_arg(net: nn.Module, arch):
    """The architecture in the form the jitted steps take: a hashable tuple for static nets."""
    return tuple(np.asarray(arch).ravel().tolist()) + (np.asarray(arch).shape,) if _is_static(net) else arch


def _arch_value(arch):
    if isinstance(arch, tuple):  # static: (values..., shape)
        return np.asarray(arch[:-1], np.int32).reshape(arch[-1])
    return arch


def make_init(net: nn.Module, tx: optax.GradientTransformation, spec, config: TrainConfig) -> Callable:
    """``init(key, arch, x_uint8) -> TrainState``: fresh weights (the net's own initialisers)
    and optimiser state, jitted. Run eagerly, a static net's init traces every op of every
    edge op by op (each ``lax.switch`` compiles on its own): about 1 s per edge, per ``fit``."""

    @functools.partial(jax.jit, static_argnums=1 if _is_static(net) else ())
    def init(key: PRNGKeyArray, arch, x) -> TrainState:
        variables = net.init(key, _inputs(x, spec, config.resolution), _arch_value(arch))
        params = variables["params"]
        return TrainState(params, variables.get("batch_stats", {}), tx.init(params), jnp.zeros((), jnp.int32))

    return init


def make_train_step(net: nn.Module, tx: optax.GradientTransformation, spec, config: TrainConfig,
                    steps_per_epoch: int) -> Callable:
    """``step(state, arch, x_uint8, y, key) -> (state, {"loss", "correct"})``, jitted once.
    ``steps_per_epoch`` sets the drop-path ramp (rate x epoch / epochs, as DARTS)."""
    if config.drop_path and "drop_path" not in inspect.signature(net.__call__).parameters:
        raise ValueError(f"TrainConfig.drop_path needs a network whose __call__ takes drop_path (DartsNetwork); "
                         f"{type(net).__name__} does not")
    mutable = ["batch_stats", "intermediates"] if config.aux_weight else ["batch_stats"]

    def loss_fn(params, batch_stats, arch, x, y, key, rate):
        extra = {"drop_path": rate, "rngs": {"dropout": key}} if config.drop_path else {}
        logits, updates = net.apply({"params": params, "batch_stats": batch_stats}, x, arch, train=True,
                                    mutable=mutable, **extra)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        if config.aux_weight:
            aux = updates.get("intermediates", {}).get("aux_logits")
            if aux is None:
                raise ValueError(f"TrainConfig.aux_weight needs a network with an auxiliary head that sows "
                                 f"'aux_logits' (DartsNetwork(auxiliary=True)); {type(net).__name__} has none")
            loss = loss + config.aux_weight * optax.softmax_cross_entropy_with_integer_labels(aux[0], y).mean()
        return loss, (updates.get("batch_stats", {}), jnp.sum(jnp.argmax(logits, -1) == y))

    @functools.partial(jax.jit, static_argnums=1 if _is_static(net) else ())
    def step(state: TrainState, arch, x, y, key):
        arch = _arch_value(arch)
        x = _inputs(x, spec, config.resolution)
        if config.augment:
            x = augment(key, x)
        if config.cutout:
            x = cutout(jax.random.fold_in(key, 1), x, config.cutout)
        rate = config.drop_path * (state.step // steps_per_epoch).astype(jnp.float32) / config.epochs
        (loss, (stats, correct)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params, state.batch_stats, arch, x, y, jax.random.fold_in(key, 2), rate
        )
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return TrainState(params, stats, opt_state, state.step + 1), {"loss": loss, "correct": correct}

    return step


def make_eval_step(net: nn.Module, spec, config: TrainConfig) -> Callable:
    """``evaluate(state, arch, x_uint8, y) -> (summed loss, correct count)`` with running BN stats."""

    @functools.partial(jax.jit, static_argnums=1 if _is_static(net) else ())
    def evaluate(state: TrainState, arch, x, y):
        arch = _arch_value(arch)
        x = _inputs(x, spec, config.resolution)
        logits = net.apply({"params": state.params, "batch_stats": state.batch_stats}, x, arch, train=False)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).sum(), jnp.sum(jnp.argmax(logits, -1) == y)

    return evaluate


def evaluate(net: nn.Module, state: TrainState, arch, data: ImageData, config: TrainConfig) -> tuple[float, float]:
    """Mean loss and accuracy (%) of a trained ``state`` over every example of ``data``."""
    return _evaluate(make_eval_step(net, data.spec, config), state, arch_arg(net, arch), data, config.eval_batch_size)


def _evaluate(eval_step: Callable, state: TrainState, arch, data: ImageData, batch_size: int) -> tuple[float, float]:
    loss, correct = 0.0, 0
    for x, y in epoch_batches(data, batch_size, jax.random.key(0), 0, shuffle=False, drop_last=False):
        l, c = eval_step(state, arch, x, y)
        loss, correct = loss + float(l), correct + int(c)
    return loss / len(data), 100.0 * correct / len(data)


def fit(
    net: nn.Module, arch, train: ImageData, val: ImageData | None, config: TrainConfig, key: PRNGKeyArray,
    out: str | Path | None = None, on_epoch: Callable[[dict], None] | None = None, progress: bool = True,
) -> tuple[TrainState, list[dict]]:
    """Train ``net`` with architecture ``arch`` on ``train``; evaluate on ``val`` after each epoch.

    Args:
      net: a Flax module called as ``net(x, arch, train=...)``.
      arch: the architecture array of ``net``'s space.
      train, val: uint8 image data (:func:`jnas.data.load`); ``val`` may be None.
      config: hyperparameters and low-fidelity knobs.
      key: one key for initialisation, batch order and augmentation.
      out: folder for ``metrics.csv`` and ``checkpoint.ckpt``; resumes from them if present.
      on_epoch: called with each finished epoch's record (after it is saved).
    Returns:
      final state, and one record per epoch (all epochs, including resumed ones).
    Raises:
      ValueError: fewer training examples than one batch.
    """
    steps = num_batches(len(train), config.batch_size)
    if steps == 0:
        raise ValueError(f"{len(train)} training examples are fewer than one batch of {config.batch_size}")
    tx, init_fn, step_fn, eval_fn = _compiled(net, train.spec, config, steps, arch_arg(net, arch) if _is_static(net) else None)
    k_init, k_run = jax.random.split(key)
    state = init_fn(k_init, arch_arg(net, arch), jnp.asarray(train.x[:2]))
    history: list[dict] = []
    ckpt = csv_path = None
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        ckpt, csv_path = out / "checkpoint.ckpt", out / "metrics.csv"
        restored = checkpoints.restore(ckpt, state)
        if restored is not None:
            state, meta = restored
            # The checkpoint's epoch is the truth: one metrics row per epoch up to it, the last kept.
            rows = {int(r["epoch"]): r for r in read_metrics(csv_path) if r["epoch"] <= int(meta["epoch"])}
            if sorted(rows) != list(range(1, int(meta["epoch"]) + 1)):
                raise ValueError(f"{csv_path} lacks rows for epochs {sorted(set(range(1, int(meta['epoch']) + 1)) - set(rows))} "
                                 f"of checkpoint {ckpt} (epoch {meta['epoch']}); restore metrics.csv or delete both to start over")
            history = [rows[e] for e in sorted(rows)]
        _write_metrics(csv_path, history)  # drops rows of an epoch that was not checkpointed, and duplicates
    arch = arch_arg(net, arch)
    bar = tqdm(range(len(history), config.epochs), initial=len(history), total=config.epochs, desc="epochs",
               disable=not progress)
    for epoch in bar:
        t0 = time.perf_counter()
        ke = jax.random.fold_in(k_run, epoch)
        loss_sum, correct = 0.0, 0
        batches = epoch_batches(train, config.batch_size, ke, 0)
        for i, (x, y) in enumerate(tqdm(batches, total=steps, desc=f"epoch {epoch + 1}/{config.epochs}",
                                        leave=False, disable=not progress)):
            state, m = step_fn(state, arch, x, y, jax.random.fold_in(ke, i + 1))
            loss_sum, correct = loss_sum + float(m["loss"]), correct + int(m["correct"])
        record = {
            "epoch": epoch + 1, "lr": cosine_lr(config.lr, config.epochs * steps, epoch * steps, config.lr_min),
            "train_loss": loss_sum / steps, "train_acc": 100.0 * correct / (steps * config.batch_size),
            "val_loss": float("nan"), "val_acc": float("nan"),
        }
        if val is not None:
            record["val_loss"], record["val_acc"] = _evaluate(eval_fn, state, arch, val, config.eval_batch_size)
        record["seconds"] = time.perf_counter() - t0
        history.append(record)
        bar.set_postfix(train_acc=f"{record['train_acc']:.1f}", val_acc=f"{record['val_acc']:.1f}")
        if out is not None:
            _append_metrics(csv_path, record)
            checkpoints.save(ckpt, state, epoch=epoch + 1)
        if on_epoch is not None:
            on_epoch(record)
    return state, history


@functools.lru_cache(maxsize=16)
def _compiled(net: nn.Module, spec, config: TrainConfig, steps: int, static_arch: tuple | None):
    """Optimiser and jitted init and steps, shared by every ``fit`` with the same net, data spec, config
    and steps per epoch (multi-fidelity search trains many cells: compile once, not per call).

    A static net compiles per architecture, so its steps are cached per architecture
    (``static_arch``): the LRU bound then also bounds the executables kept alive. One jitted
    step holding every architecture it has seen would grow without limit -- each executable
    keeps a few hundred memory mappings of machine code, and a long search passes the
    kernel's limit per process (``vm.max_map_count``, 65,530 by default), crashing XLA.
    """
    tx = optimizer(config, steps)
    return tx, make_init(net, tx, spec, config), make_train_step(net, tx, spec, config, steps), make_eval_step(net, spec, config)


def read_metrics(path: Path) -> list[dict]:
    """Rows of a ``metrics.csv`` as dicts of numbers (empty if the file does not exist)."""
    if not Path(path).exists():
        return []
    with open(path, newline="") as f:
        return [{k: (int(v) if k == "epoch" else float(v)) for k, v in row.items()} for row in csv.DictReader(f)]


def _write_metrics(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, CSV_FIELDS)
        w.writeheader()
        w.writerows(rows)


def _append_metrics(path: Path, row: dict) -> None:
    with open(path, "a", newline="") as f:
        csv.DictWriter(f, CSV_FIELDS).writerow(row)
