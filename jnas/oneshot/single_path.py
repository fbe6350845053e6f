"""Weight-sharing supernets trained one sampled path at a time, and sub-networks scored with
the weights they inherit.

RSPS (random search with parameter sharing, Li & Talwalkar 2019) and SPOS (single-path one-shot,
Guo et al. 2020) train the NB201 supernet the same way: each step samples one cell uniformly
(every edge keeps one op) and takes an SGD step on the supernet weights that cell uses. They
differ afterwards: RSPS ranks random cells by their inherited accuracy, SPOS runs evolution on
it. The supernet is :func:`jnas.oneshot.nb201.supernet` fed one-hot mixing weights, so a cell's
forward pass is exactly its stand-alone network with the supernet's parameters.

The same training and scoring serve the hypernetworks of :mod:`jnas.oneshot.hyper` (SMASH,
GHN): given ``hyper``, the trained parameters are the hypernetwork's, and each sampled cell
runs with the weights it generates for that cell.

Batch norm: a sub-network's statistics are not the supernet's running averages (those belong
to the mixture of every sampled path), so :func:`recalibrate` recomputes them for each cell on
calibration images, as SPOS does, before it is evaluated in inference mode.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.sharding import PartitionSpec
from jaxtyping import Array, Float, Int

from jnas.distributed import local_mesh
from jnas.nets.kernels import BN_MOMENTUM, compiler_options
from jnas.oneshot.hyper import HyperNet
from jnas.oneshot.search import SearchConfig, weight_optimizer, weight_schedule
from jnas.spaces import nb201 as space

PyTree = Any
MODES = ("map", "vmap")


class PathState(NamedTuple):
    params: PyTree
    batch_stats: PyTree
    opt: optax.OptState
    step: jax.Array  # () int32


def one_hot(cells: Int[Array, "... 6"], dtype=jnp.float32) -> Float[Array, "... 6 5"]:
    """The mixing weights that make the supernet compute exactly ``cells``."""
    return jax.nn.one_hot(cells, space.NUM_OPS, dtype=dtype)


def arch_input(net, cell: Int[Array, "6"], dtype=jnp.float32) -> Array:
    """What ``net`` takes for ``cell``: one-hot mixing weights for the mask supernet, the op
    indices for a ``select="switch"`` network with the same parameters (only the cell's ops
    run: faster under ``lax.map``)."""
    return one_hot(cell, dtype) if net.select == "mask" else jnp.asarray(cell)


def weights_for(hyper: HyperNet | None) -> Callable[[PyTree, Array], PyTree]:
    """``(trained parameters, cell) -> network parameters``: the shared supernet weights
    themselves, or the weights ``hyper`` generates for the cell."""
    return (lambda params, cell: params) if hyper is None else hyper.params


def init_state(key: jax.Array, net, x: Float[Array, "b h w c"], config: SearchConfig, hyper: HyperNet | None = None) -> PathState:
    """Supernet variables (``net.init`` on a sample batch), turned into ``hyper``'s parameters
    when given, and a fresh weight optimiser (DARTS's SGD settings from ``config``: lr, cosine
    to ``w_lr_min``, momentum, weight decay, gradient clipping; the alpha fields are unused)."""
    variables = net.init({"params": key, "dropout": key}, x, arch_input(net, space.sample(key), x.dtype))
    params = variables["params"] if hyper is None else hyper.init(jax.random.fold_in(key, 1), variables["params"])
    return PathState(params, variables.get("batch_stats", {}), weight_optimizer(config).init(params), jnp.zeros((), jnp.int32))


def make_step(net, config: SearchConfig, hyper: HyperNet | None = None) -> Callable:
    """A jitted ``step(state, (x, y), key) -> (state, metrics)``: sample one cell uniformly
    from ``key``, take one optimiser step on its cross-entropy (training-mode batch norm),
    through ``hyper`` when given. ``metrics`` holds ``loss``, ``acc``, ``w_lr`` and the
    sampled ``cell``."""
    tx, sched, weights = weight_optimizer(config), weight_schedule(config), weights_for(hyper)

    def loss(params, stats, cell, x, y):
        logits, upd = net.apply({"params": weights(params, cell), "batch_stats": stats}, x, arch_input(net, cell, x.dtype), True, 0.0,
                                mutable=["batch_stats"], rngs={"dropout": jax.random.key(0)})
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), (upd["batch_stats"], (jnp.argmax(logits, -1) == y).mean())

    @partial(jax.jit, compiler_options=compiler_options(config.conv_library))
    def step(state: PathState, batch, key):
        cell = space.sample(key)
        (l, (stats, acc)), g = jax.value_and_grad(loss, has_aux=True)(state.params, state.batch_stats, cell, *batch)
        upd, opt = tx.update(g, state.opt, state.params)
        metrics = {"loss": l, "acc": acc, "w_lr": sched(state.step), "cell": cell}
        return PathState(optax.apply_updates(state.params, upd), stats, opt, state.step + 1), metrics

    return step


def recalibrate(net, params: PyTree, batch_stats: PyTree, arch: Array, x: Float[Array, "b h w c"]) -> PyTree:
    """Batch-norm statistics of the sub-network ``arch`` (``net``'s input for it, see
    :func:`arch_input`) over the calibration images ``x``:
    each layer's mean and (biased) variance over ``x``, as one training-mode pass computes them.

    The pass starts from zero statistics, so the running-average update ``m * 0 + (1 - m) * s``
    returns ``(1 - m) * s`` and dividing by ``1 - m`` gives ``s`` itself.
    """
    zeros = jax.tree.map(jnp.zeros_like, batch_stats)
    _, upd = net.apply({"params": params, "batch_stats": zeros}, x, arch, True, 0.0, mutable=["batch_stats"],
                       rngs={"dropout": jax.random.key(0)})
    return jax.tree.map(lambda s: s / (1.0 - BN_MOMENTUM), upd["batch_stats"])


def make_inherited_accuracy(net, mode: str = "map", conv_library: str = "eigen", hyper: HyperNet | None = None,
                            devices: int = 1) -> Callable:
    """A ``correct(params, batch_stats, cells, calib_x, xs, ys) -> (n,)`` counting, for each
    cell, the images of ``xs`` (``(batches, b, h, w, c)``, labels ``ys``) its sub-network
    classifies right in inference mode, after :func:`recalibrate` on ``calib_x``; with
    ``hyper``, ``params`` are the hypernetwork's and each cell gets its generated weights.

    ``mode``: ``"map"`` runs the cells one after another in one program (``lax.map``, the fast
    form on CPU), ``"vmap"`` all at once (GPU). ``devices`` > 1 splits the cells over that
    many local devices (``shard_map``; padded to a multiple, the counts do not change).
    ``net`` may be the supernet or the same network with ``select="switch"`` (the same
    numbers; only each cell's ops run).
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; valid modes are {list(MODES)}")
    weights = weights_for(hyper)

    def one(params, batch_stats, cell, calib_x, xs, ys):
        w, params = arch_input(net, cell, calib_x.dtype), weights(params, cell)
        variables = {"params": params, "batch_stats": recalibrate(net, params, batch_stats, w, calib_x)}
        hits = jax.lax.map(lambda b: (jnp.argmax(net.apply(variables, b[0], w, False), -1) == b[1]).sum(), (xs, ys))
        return hits.sum()

    def batched(params, batch_stats, cells, calib_x, xs, ys):
        fn = lambda c: one(params, batch_stats, c, calib_x, xs, ys)
        return jax.lax.map(fn, cells) if mode == "map" else jax.vmap(fn)(cells)

    if devices > 1:
        replicated, split = PartitionSpec(), PartitionSpec("cells")
        batched = jax.shard_map(batched, mesh=local_mesh(devices, "cells"), out_specs=split, check_vma=False,
                                in_specs=(replicated, replicated, split, replicated, replicated, replicated))
    else:
        local_mesh(devices, "cells")  # validates the count
    jitted = jax.jit(batched, compiler_options=compiler_options(conv_library))

    def correct(params, batch_stats, cells, calib_x, xs, ys):
        cells = jnp.asarray(cells)
        pad = -cells.shape[0] % devices
        padded = jnp.concatenate([cells, jnp.repeat(cells[-1:], pad, 0)]) if pad else cells
        return jitted(params, batch_stats, padded, calib_x, xs, ys)[: cells.shape[0]]

    return correct
