"""Mixed-op weights shared by every supernet: a softmax over the ops still allowed on each
edge, and PC-DARTS edge normalisation (Xu et al. 2020), a softmax of beta over the edges
entering each node."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

NEG = -1e30  # masked logit: exp underflows to exactly 0, gradients stay finite


def masked_logits(logits: Float[Array, "e o"], op_mask: Bool[Array, "e o"] | None) -> Float[Array, "e o"]:
    """``logits`` with forbidden ops (``op_mask`` False) pushed to :data:`NEG`."""
    return logits if op_mask is None else jnp.where(op_mask, logits, NEG)


def op_weights(logits: Float[Array, "e o"], op_mask: Bool[Array, "e o"] | None = None) -> Float[Array, "e o"]:
    """Softmax over the allowed ops of each edge."""
    return jax.nn.softmax(masked_logits(logits, op_mask), axis=-1)


def edge_weights(beta: Float[Array, "e"], node_edges: tuple[tuple[int, ...], ...]) -> Float[Array, "e"]:
    """Softmax of beta over the edges entering each node; ``node_edges`` lists them per node."""
    out = jnp.zeros_like(beta)
    for edges in node_edges:
        idx = np.asarray(edges)
        out = out.at[idx].set(jax.nn.softmax(beta[idx]))
    return out


def perturb(weights: Float[Array, "... o"], key: jax.Array, eps: float | Float[Array, ""]) -> Float[Array, "... o"]:
    """SDARTS-RS's random smoothing of mixing weights (Chen & Hsieh, ICML 2020).

    Adds U(-eps, eps) to every op that is on (weight > 0; pruned ops stay off), clamps to
    [0, 1] and rescales each edge to its original total (1 for a softmax, the edge's weight
    under edge normalisation). An edge whose weights all clamp to 0 keeps only its largest
    noisy op, as the SDARTS code's ``clip`` does.
    """
    on = weights > 0
    noisy = weights + jnp.where(on, jax.random.uniform(key, weights.shape, weights.dtype, -eps, eps), 0.0)
    clamped = jnp.clip(noisy, 0.0, 1.0)
    top = jax.nn.one_hot(jnp.argmax(jnp.where(on, noisy, -jnp.inf), -1), weights.shape[-1], dtype=weights.dtype)
    clamped = jnp.where(clamped.sum(-1, keepdims=True) > 0, clamped, top)
    return clamped / clamped.sum(-1, keepdims=True) * weights.sum(-1, keepdims=True)


def gumbel_hard(weights: Float[Array, "... o"], key: jax.Array, tau: float | Float[Array, ""]) -> Float[Array, "... o"]:
    """GDAS's hard Gumbel-softmax sample of one op per edge (Dong & Yang, CVPR 2019).

    Forward: a one-hot per edge, the op ``argmax(log w + g)`` with Gumbel noise ``g`` (an op
    drawn with probability ``w``). Backward: the straight-through gradient of the relaxed
    sample ``softmax((log w + g) / tau)``. Ops that are off (weight 0) are never drawn, and
    each edge keeps its total weight (1 for a softmax, the edge's weight under edge
    normalisation). With the mask supernet every op's output enters the gradient of the
    mixing weights, the exact straight-through estimator; the GDAS code runs only the drawn op.
    """
    total = weights.sum(-1, keepdims=True)
    logits = jnp.log(jnp.where(weights > 0, weights / total, 1.0))
    logits = jnp.where(weights > 0, logits, NEG)
    soft = jax.nn.softmax((logits + jax.random.gumbel(key, weights.shape, weights.dtype)) / tau, axis=-1)
    hard = jax.nn.one_hot(jnp.argmax(soft, -1), weights.shape[-1], dtype=weights.dtype)
    return (hard + (soft - jax.lax.stop_gradient(soft))) * total  # forward: exactly the one-hot
