"""The bilevel problem and the derivative products every hypergradient estimator uses.

    min_x  l(x) = f(x, y*(x)),     y*(x) = argmin_y g(x, y)

By the implicit function theorem (g strongly convex in y),

    grad l(x) = grad_x f - grad2_xy g [grad2_yy g]^-1 grad_y f      (at y = y*(x)).

Estimators never build a Hessian: they use the products below, each one
forward-over-reverse (``jax.jvp`` of ``jax.grad``), so their cost is a small multiple of a
gradient whatever the size of x and y. ``x`` and ``y`` are arbitrary pytrees.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import optax.tree_utils as otu

from jnas.bilevel.curvature import hvp

PyTree = Any


class Problem(NamedTuple):
    """A bilevel problem: ``outer(x, y)`` is f, ``inner(x, y)`` is g, both scalar.

    A stochastic problem is a fresh ``Problem`` per minibatch (close over the batch).
    """

    outer: Callable[[PyTree, PyTree], jax.Array]
    inner: Callable[[PyTree, PyTree], jax.Array]


# An estimator maps (problem, x, y, key) to an estimate of grad l(x), a pytree like x.
# ``y`` is the current inner iterate; the key is used by stochastic estimators only.
Estimator = Callable[[Problem, PyTree, PyTree, jax.Array], PyTree]


def check_positive(where: str, name: str, value) -> None:
    """Reject a non-positive Python setting; traced values (schedules inside jit) pass."""
    if isinstance(value, (int, float)) and not value > 0:
        raise ValueError(f"{where} needs {name} > 0, got {value}")


def grad_inner_y(problem: Problem, x: PyTree, y: PyTree) -> PyTree:
    """grad_y g(x, y)."""
    return jax.grad(problem.inner, argnums=1)(x, y)


def hvp_yy(problem: Problem, x: PyTree, y: PyTree, v: PyTree) -> PyTree:
    """grad2_yy g(x, y) v, by ``jax.jvp`` of ``grad_y g`` along v."""
    return hvp(lambda y_: problem.inner(x, y_), y, v)


def cross_xy(problem: Problem, x: PyTree, y: PyTree, v: PyTree) -> PyTree:
    """grad2_xy g(x, y) v (a pytree like x), by ``jax.jvp`` of ``grad_x g`` along v in y."""
    return jax.jvp(lambda y_: jax.grad(problem.inner, argnums=0)(x, y_), (y,), (v,))[1]


def implicit_combine(problem: Problem, x: PyTree, y: PyTree, v: PyTree) -> PyTree:
    """grad_x f(x, y) - grad2_xy g(x, y) v: the hypergradient once v ~ H_yy^-1 grad_y f."""
    return otu.tree_sub(jax.grad(problem.outer, argnums=0)(x, y), cross_xy(problem, x, y, v))


def inner_step(problem: Problem, x: PyTree, y: PyTree, lr: float | jax.Array) -> PyTree:
    """One gradient step on the inner problem: y - lr grad_y g(x, y)."""
    return otu.tree_add_scale(y, -lr, grad_inner_y(problem, x, y))


def neumann_terms(problem: Problem, x: PyTree, y: PyTree, b: PyTree, lr: float, steps: int | jax.Array) -> PyTree:
    """``(I - lr H)^steps b`` with H = grad2_yy g(x, y); ``steps`` may be traced."""

    def body(_, u):
        return otu.tree_sub(u, otu.tree_scale(lr, hvp_yy(problem, x, y, u)))

    return jax.lax.fori_loop(0, steps, body, b)
