"""DARTS's finite-difference second-order hypergradient (Liu et al., ICLR 2019, eq. 8).

The mixed product of :func:`jnas.bilevel.unrolled.second_order` replaced by a central
difference of two gradients:

    y' = y - lr grad_y g(x, y),   v = grad_y f(x, y'),   eps = 0.01 / ||v||
    grad2_xy g(x, y) v ~ (grad_x g(x, y + eps v) - grad_x g(x, y - eps v)) / (2 eps)

Error O(eps^2) against the exact product; no second derivatives are taken.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax.tree_utils as otu

from jnas.bilevel.problem import check_positive, Estimator, Problem, PyTree, inner_step


def finite_difference(lr: float, scale: float = 0.01) -> Estimator:
    """DARTS's approximation; ``scale`` is the 0.01 of eps = scale / ||v||."""
    check_positive("finite_difference", "lr", lr)

    def estimate(problem: Problem, x: PyTree, y: PyTree, key: jax.Array) -> PyTree:
        del key
        y1 = inner_step(problem, x, y, lr)
        gx, v = jax.grad(problem.outer, argnums=(0, 1))(x, y1)
        eps = scale / jnp.maximum(otu.tree_norm(v), 1e-12)
        grad_x_inner = jax.grad(problem.inner, argnums=0)
        plus = grad_x_inner(x, otu.tree_add_scale(y, eps, v))
        minus = grad_x_inner(x, otu.tree_add_scale(y, -eps, v))
        cross = otu.tree_scale(1.0 / (2.0 * eps), otu.tree_sub(plus, minus))
        return otu.tree_add_scale(gx, -lr, cross)

    return estimate
