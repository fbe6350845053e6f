"""DARTS on NAS-Bench-201: the NB201 network as a supernet with mixed edges.

alpha is a pytree ``{"ops": (6, 5)}`` (plus ``"edges": (6,)`` for PC-DARTS edge
normalisation). :func:`mixing_weights` turns it into the ``(6, 5)`` weights the network's
``select="mask"`` edges take: ``softmax(alpha_ops)`` per edge, pruned ops (P-DARTS) masked
out, and with edge normalisation each edge scaled by the softmax of beta over the edges
entering its node (PC-DARTS, Xu et al. 2020). Discretisation picks the argmax op per edge.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int
from tqdm.auto import tqdm

from jnas.nets.nb201 import NB201Network
from jnas.oneshot.mixing import edge_weights, masked_logits, op_weights
from jnas.spaces import nb201 as space

# Incoming edges of nodes 1, 2, 3 (positions in the official edge order).
NODE_EDGES = tuple(tuple(e for e, (_, j) in enumerate(space.EDGES) if j == node) for node in range(1, space.SPACE.num_nodes))


supernet = NB201Network.supernet  # the NB201 network with mixed edges (select="mask")


def init_alpha(key: jax.Array, edge_norm: bool = False, scale: float = 1e-3) -> dict[str, Array]:
    """DARTS init: alpha ~ scale * N(0, 1); ``edge_norm`` adds PC-DARTS's beta."""
    ka, kb = jax.random.split(key)
    alpha = {"ops": scale * jax.random.normal(ka, (space.NUM_EDGES, space.NUM_OPS))}
    if edge_norm:
        alpha["edges"] = scale * jax.random.normal(kb, (space.NUM_EDGES,))
    return alpha


def full_mask() -> Bool[Array, "6 5"]:
    return jnp.ones((space.NUM_EDGES, space.NUM_OPS), bool)


def mixing_weights(alpha: dict[str, Array], op_mask: Bool[Array, "6 5"] | None = None) -> Float[Array, "6 5"]:
    """Edge mixing weights fed to the supernet (see module docstring)."""
    w = op_weights(alpha["ops"], op_mask)
    if "edges" in alpha:
        w = w * edge_weights(alpha["edges"], NODE_EDGES)[:, None]
    return w


def discretize(alpha: dict[str, Array], op_mask: Bool[Array, "6 5"] | None = None) -> Int[Array, "6"]:
    """The derived cell: argmax op per edge among the ops still allowed."""
    return jnp.argmax(masked_logits(alpha["ops"], op_mask), axis=-1).astype(jnp.int32)


def one_shot_accuracy(net: NB201Network, params, batch_stats, archs: Int[Array, "n 6"], x: Float[Array, "m h w 3"],
                      y: Int[Array, "m"], batch: int = 256, chunk: int = 25, progress: bool = True) -> Float[Array, "n"]:
    """Accuracy on ``(x, y)`` of each cell in ``archs`` as a subnet of a trained supernet.

    Each cell runs with its one-hot mixing weights, so only its own ops count. Batch norm uses
    each batch's statistics: the supernet's running statistics belong to the mixture, not to
    any one cell (the usual one-shot evaluation). How well these accuracies rank the cells'
    stand-alone accuracies is the rank disorder of weight sharing. Cells run ``chunk`` at a
    time under one ``lax.map``; images ``batch`` at a time (the last partial batch is dropped).
    """
    archs = space.check_batch(archs)
    x, y = jnp.asarray(x), jnp.asarray(y)
    if x.ndim != 4 or y.shape != x.shape[:1]:
        raise ValueError(f"one_shot_accuracy needs images (m, h, w, c) and labels (m,); got {x.shape} and {y.shape}")
    n_batches = len(x) // batch
    if n_batches == 0:
        raise ValueError(f"one_shot_accuracy needs at least batch={batch} images; got {len(x)}")
    variables = {"params": params, "batch_stats": batch_stats}

    @jax.jit
    def correct(cells, xb, yb):
        def one(cell):
            w = jax.nn.one_hot(cell, space.NUM_OPS, dtype=xb.dtype)
            logits, _ = net.apply(variables, xb, w, True, 0.0, mutable=["batch_stats"], rngs={"dropout": jax.random.key(0)})
            return (jnp.argmax(logits, -1) == yb).sum()

        return jax.lax.map(one, cells)

    hits = jnp.zeros(len(archs), jnp.int32)
    with tqdm(total=len(archs) * n_batches, desc="one-shot accuracy", unit="cell-batch", disable=not progress, leave=False) as bar:
        for b in range(n_batches):
            xb, yb = x[b * batch:(b + 1) * batch], y[b * batch:(b + 1) * batch]
            for s in range(0, len(archs), chunk):
                cells = archs[s:s + chunk]
                hits = hits.at[s:s + len(cells)].add(correct(cells, xb, yb))
                bar.update(len(cells))
    return hits / (n_batches * batch)
