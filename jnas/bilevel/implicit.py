"""Implicit-differentiation hypergradients (e.g. Pedregosa 2016; Lorraine et al. 2020):

    grad l(x) = grad_x f - grad2_xy g v,   grad2_yy g v = grad_y f,

evaluated at the current inner iterate y (exact when y = y*). The linear system is solved
with Hessian-vector products only:

* ``implicit_cg(iters)``: conjugate gradient (``jax.scipy.sparse.linalg.cg``), exact in at
  most dim(y) iterations for a quadratic inner problem.
* ``implicit_neumann(iters, lr)``: truncated Neumann series
  ``H^-1 ~ lr sum_{i<iters} (I - lr H)^i``, converging for 0 < lr < 2 / L_g.
"""

from __future__ import annotations

import jax
import optax.tree_utils as otu

from jnas.bilevel.problem import check_positive, Estimator, Problem, PyTree, hvp_yy, implicit_combine


def implicit_cg(iters: int, tol: float = 0.0) -> Estimator:
    """Implicit hypergradient with ``iters`` CG iterations (``tol`` 0: run all of them)."""
    check_positive("implicit_cg", "iters", iters)

    def estimate(problem: Problem, x: PyTree, y: PyTree, key: jax.Array) -> PyTree:
        del key
        b = jax.grad(problem.outer, argnums=1)(x, y)
        v, _ = jax.scipy.sparse.linalg.cg(lambda u: hvp_yy(problem, x, y, u), b, tol=tol, maxiter=int(iters))
        return implicit_combine(problem, x, y, v)

    return estimate


def implicit_neumann(iters: int, lr: float) -> Estimator:
    """Implicit hypergradient with the Neumann series truncated after ``iters`` terms."""
    check_positive("implicit_neumann", "iters", iters)
    check_positive("implicit_neumann", "lr", lr)

    def estimate(problem: Problem, x: PyTree, y: PyTree, key: jax.Array) -> PyTree:
        del key
        b = jax.grad(problem.outer, argnums=1)(x, y)

        def body(_, carry):
            term, total = carry
            term = otu.tree_sub(term, otu.tree_scale(lr, hvp_yy(problem, x, y, term)))
            return term, otu.tree_add(total, term)

        _, total = jax.lax.fori_loop(0, int(iters) - 1, body, (b, b))
        return implicit_combine(problem, x, y, otu.tree_scale(lr, total))

    return estimate
