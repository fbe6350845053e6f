"""Input Jacobians of a batch: ``J[i] = d sum(f(X)) / d x_i`` (a vector-Jacobian product with a
ones cotangent, as ``y.backward(torch.ones_like(y))`` in the proxies' reference code)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from jnas.proxies.base import forward


def batch_jacobian(net, variables, arch, x) -> Float[Array, "b d"]:
    logits, vjp = jax.vjp(lambda x: forward(net, variables, x, arch), x)
    (jac,) = vjp(jnp.ones_like(logits))
    return jac.reshape(x.shape[0], -1)


def row_correlation(m: Float[Array, "b d"]) -> Float[Array, "b b"]:
    """Pearson correlation between rows (``np.corrcoef``)."""
    c = m - m.mean(axis=1, keepdims=True)
    c = c / jnp.linalg.norm(c, axis=1, keepdims=True)
    return jnp.clip(c @ c.T, -1.0, 1.0)
