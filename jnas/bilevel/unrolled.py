"""Unrolled hypergradients: differentiate f(x, y_K(x)) through K inner gradient steps.

``unrolled(steps, lr)`` is exact reverse-mode differentiation of the unrolled inner loop
(Maclaurin et al. 2015; Franceschi et al. 2017). As K grows on a strongly convex inner
problem, y_K -> y* and the estimate converges to the implicit hypergradient.

``second_order(lr)`` is DARTS's one-step unrolled gradient (Liu et al., ICLR 2019, eq. 7)
written out with one mixed Hessian-vector product by ``jax.jvp`` over ``jax.grad``:

    y' = y - lr grad_y g(x, y)
    grad ~ grad_x f(x, y') - lr grad2_xy g(x, y) grad_y f(x, y')

It equals ``unrolled(1, lr)`` exactly (tested); it exists because the formula is the one
DARTS states and it costs one jvp instead of reverse-mode through the step.
"""

from __future__ import annotations

import jax
import optax.tree_utils as otu

from jnas.bilevel.problem import check_positive, Estimator, Problem, PyTree, cross_xy, inner_step


def unrolled(steps: int, lr: float) -> Estimator:
    """Estimator differentiating through ``steps`` inner gradient steps of size ``lr``.

    Raises:
      ValueError: for ``steps < 1`` or ``lr <= 0``.
    """
    check_positive("unrolled", "steps", steps)
    check_positive("unrolled", "lr", lr)

    def estimate(problem: Problem, x: PyTree, y: PyTree, key: jax.Array) -> PyTree:
        del key

        def outer_after_unroll(x_):
            def body(y_, _):
                return inner_step(problem, x_, y_, lr), None

            y_k, _ = jax.lax.scan(body, y, None, length=int(steps))
            return problem.outer(x_, y_k)

        return jax.grad(outer_after_unroll)(x)

    return estimate


def second_order(lr: float) -> Estimator:
    """DARTS one-step unrolled hypergradient, exact, by a jvp-over-grad mixed product."""
    check_positive("second_order", "lr", lr)

    def estimate(problem: Problem, x: PyTree, y: PyTree, key: jax.Array) -> PyTree:
        del key
        y1 = inner_step(problem, x, y, lr)
        gx, gy = jax.grad(problem.outer, argnums=(0, 1))(x, y1)
        return otu.tree_add_scale(gx, -lr, cross_xy(problem, x, y, gy))

    return estimate
