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
