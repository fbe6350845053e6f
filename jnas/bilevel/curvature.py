"""Curvature of a scalar function of a pytree: exact Hessian-vector products and the
dominant Hessian eigenvalue by power iteration.

RobustDARTS (Zela et al., ICLR 2020) tracks the dominant eigenvalue of the Hessian of the
validation loss with respect to the architecture parameters: it rises as DARTS drifts to
parameter-free operations, and its rise is their early-stopping signal. Here each product
``H v`` is ``jax.jvp`` of ``jax.grad`` (forward over reverse: exact, one extra pass), never a
finite difference of gradients.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

PyTree = Any


def hvp(f: Callable[[PyTree], jax.Array], x: PyTree, v: PyTree) -> PyTree:
    """``(grad^2 f)(x) v``, exact, by ``jax.jvp`` of ``jax.grad f`` along ``v``."""
    return jax.jvp(jax.grad(f), (x,), (v,))[1]


class Eigen(NamedTuple):
    value: jax.Array  # () the Rayleigh quotient v^T H v of the last iterate
    vector: PyTree  # unit-norm iterate, shaped like x
    iterations: jax.Array  # () int32, products taken
    residual: jax.Array  # () ||H v - value v||: 0 for an exact eigenpair


def dominant_eigenvalue(f: Callable[[PyTree], jax.Array], x: PyTree, key: jax.Array, iters: int = 100,
                        tol: float = 1e-4) -> Eigen:
    """The eigenvalue of largest magnitude of the Hessian of ``f`` at ``x``, by power
    iteration from a random unit start (``key``) on exact Hessian-vector products.

    Stops after ``iters`` products or when the Rayleigh quotient changes by less than
    ``tol`` relative to its size. Convergence is geometric in |lambda_2 / lambda_1|: check
    ``residual`` (relative to ``|value|``) when the top two eigenvalues may be close.
    A Hessian whose largest-magnitude eigenvalue is negative returns that negative value.

    Jit-friendly (one ``lax.while_loop``); ``iters`` and ``tol`` are static.

    Raises:
      ValueError: ``iters`` < 1 or ``tol`` < 0.
    """
    if iters < 1 or tol < 0:
        raise ValueError(f"dominant_eigenvalue needs iters >= 1 and tol >= 0, got iters={iters}, tol={tol}")
    flat, unravel = ravel_pytree(x)

    def matvec(u):
        return ravel_pytree(hvp(f, x, unravel(u)))[0]

    v0 = jax.random.normal(key, flat.shape, flat.dtype)
    v0 = v0 / jnp.linalg.norm(v0)

    def body(carry):
        v, _, value, i = carry
        hv = matvec(v)
        new = jnp.vdot(v, hv)
        v_next = hv / jnp.maximum(jnp.linalg.norm(hv), jnp.finfo(flat.dtype).tiny)
        return v_next, value, new, i + 1

    def cond(carry):
        _, prev, value, i = carry
        moving = jnp.abs(value - prev) > tol * jnp.maximum(jnp.abs(value), jnp.finfo(flat.dtype).tiny)
        return (i < iters) & ((i < 2) | moving)

    inf = jnp.asarray(jnp.inf, flat.dtype)
    v, _, _, n = jax.lax.while_loop(cond, body, (v0, inf, -inf, jnp.zeros((), jnp.int32)))
    hv = matvec(v)
    value = jnp.vdot(v, hv)
    return Eigen(value, unravel(v), n, jnp.linalg.norm(hv - value * v))
