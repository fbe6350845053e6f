"""A differentiable inner solution y*(x) (implicit function theorem, the approach of
jaxopt's ``implicit_diff``), so ``jax.grad`` of ``f(x, argmin(g, x, y0, solver))`` *is*
the implicit hypergradient.

The forward pass runs any solver (here gradient descent); the backward pass solves
grad2_yy g v = cotangent with CG on Hessian-vector products and returns
-grad2_xy g v, never differentiating through the solver's iterations. Written as a
``jax.custom_vjp``: ``jax.lax.custom_root`` with a CG tangent solve and a closed-over x
raised NotImplementedError in JAX 0.10.2.
"""

from __future__ import annotations

from typing import Callable

import jax

import optax.tree_utils as otu

from jnas.bilevel.problem import Problem, PyTree, check_positive, cross_xy, hvp_yy

Solver = Callable[[Callable[[PyTree], PyTree], PyTree], PyTree]  # (grad_y g(x, .), y0) -> y*


def gradient_descent(steps: int, lr: float) -> Solver:
    """Solver taking ``steps`` gradient steps of size ``lr`` from the initial guess."""
    check_positive("gradient_descent", "steps", steps)
    check_positive("gradient_descent", "lr", lr)

    def solve(grad_fn, y0):
        return jax.lax.fori_loop(0, int(steps), lambda _, y: otu.tree_add_scale(y, -lr, grad_fn(y)), y0)

    return solve


def argmin(inner: Callable[[PyTree, PyTree], jax.Array], x: PyTree, y0: PyTree, solver: Solver, cg_iters: int | None = None) -> PyTree:
    """argmin_y inner(x, y), differentiable in ``x`` by the implicit function theorem
    (no gradient flows to ``y0``)."""
    problem = Problem(outer=inner, inner=inner)

    @jax.custom_vjp
    def solve(x_):
        return solver(lambda y: jax.grad(inner, argnums=1)(x_, y), y0)

    def fwd(x_):
        y = solve(x_)
        return y, (x_, y)

    def bwd(res, cot):
        x_, y = res
        v, _ = jax.scipy.sparse.linalg.cg(lambda u: hvp_yy(problem, x_, y, u), cot, maxiter=cg_iters)
        return (otu.tree_scale(-1.0, cross_xy(problem, x_, y, v)),)

    solve.defvjp(fwd, bwd)
    return solve(x)
