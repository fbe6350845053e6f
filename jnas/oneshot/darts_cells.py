"""DARTS on the DARTS cell space: alpha, mixing weights and the top-2 discretisation.

alpha is ``{"normal": (14, 8), "reduce": (14, 8)}`` (plus ``"normal_edges"``,
``"reduce_edges"`` of shape (14,) for PC-DARTS edge normalisation). Discretisation
follows DARTS's ``genotype()``: for each node keep the two incoming edges with the largest
strongest non-``none`` op weight (times the normalised beta with edge normalisation), and
on each kept edge the strongest non-``none`` op.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from jnas.oneshot.mixing import edge_weights, op_weights
from jnas.spaces import darts as space

NODE_EDGES = tuple(tuple(space.edge_index(i, j) for i in range(j)) for j in range(2, 2 + space.STEPS))


def init_alpha(key: jax.Array, edge_norm: bool = False, scale: float = 1e-3) -> dict[str, Array]:
    keys = jax.random.split(key, 4)
    alpha = {c: scale * jax.random.normal(k, (space.NUM_EDGES, space.NUM_OPS)) for c, k in zip(space.CELLS, keys[:2])}
    if edge_norm:
        alpha.update({f"{c}_edges": scale * jax.random.normal(k, (space.NUM_EDGES,)) for c, k in zip(space.CELLS, keys[2:])})
    return alpha


def full_mask() -> dict[str, Array]:
    return {c: jnp.ones((space.NUM_EDGES, space.NUM_OPS), bool) for c in space.CELLS}


def mixing_weights(alpha: dict[str, Array], op_mask: dict[str, Array] | None = None) -> dict[str, Array]:
    out = {}
    for c in space.CELLS:
        w = op_weights(alpha[c], None if op_mask is None else op_mask[c])
        if f"{c}_edges" in alpha:
            w = w * edge_weights(alpha[f"{c}_edges"], NODE_EDGES)[:, None]
        out[c] = w
    return out


def discretize(alpha: dict[str, Array], op_mask: dict[str, Array] | None = None) -> np.ndarray:
    """Genotype array ``(2, 4, 2, 2)`` (see :mod:`jnas.spaces.darts`); host-side."""
    w = jax.tree.map(np.asarray, mixing_weights(alpha, op_mask))
    arch = np.zeros((2, space.STEPS, 2, 2), np.int32)
    for c, name in enumerate(space.CELLS):
        ops_w = w[name][:, 1:]  # drop none; edge-normalised weights already carry beta
        for n, edges in enumerate(NODE_EDGES):
            strength = np.array([ops_w[e].max() for e in edges])
            top = sorted(np.argsort(-strength, kind="stable")[:2])
            for slot, i in enumerate(top):
                arch[c, n, slot] = (i, 1 + int(np.argmax(ops_w[edges[i]])))
    return space.check(arch)
