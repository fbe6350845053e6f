"""First-order hypergradient: drop the implicit term, grad l(x) ~ grad_x f(x, y).

DARTS's first-order variant (Liu et al., ICLR 2019, xi = 0). Exact only when y* does not
depend on x; cheap (one gradient).
"""

from __future__ import annotations

import jax

from jnas.bilevel.problem import Estimator, Problem, PyTree


def first_order() -> Estimator:
    """Estimator returning ``grad_x f(x, y)``. Example: ``first_order()(problem, x, y, key)``."""

    def estimate(problem: Problem, x: PyTree, y: PyTree, key: jax.Array) -> PyTree:
        del key
        return jax.grad(problem.outer, argnums=0)(x, y)

    return estimate
