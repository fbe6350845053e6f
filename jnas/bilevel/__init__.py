"""Bilevel optimisation: hypergradient estimators with one signature, and TTSA.

Every estimator factory returns ``estimate(problem, x, y, key) -> grad`` so methods swap
in one argument (see :mod:`jnas.bilevel.problem`)::

    from jnas import bilevel
    est = bilevel.get("implicit_cg", iters=20)
    g = est(bilevel.Problem(outer=f, inner=g), x, y, key)

``argmin(inner, x, y0, solver)`` is the same implicit gradient as a differentiable inner
solution: ``jax.grad(lambda x: f(x, bilevel.argmin(g, x, y0, bilevel.gradient_descent(100, 0.1))))``.
"""

from jnas.bilevel import ttsa
from jnas.bilevel.argmin import argmin, gradient_descent
from jnas.bilevel.curvature import dominant_eigenvalue, hvp
from jnas.bilevel.finite_difference import finite_difference
from jnas.bilevel.first_order import first_order
from jnas.bilevel.implicit import implicit_cg, implicit_neumann
from jnas.bilevel.problem import Estimator, Problem, cross_xy, hvp_yy, implicit_combine
from jnas.bilevel.ttsa import stochastic_neumann
from jnas.bilevel.unrolled import second_order, unrolled

ESTIMATORS = {
    "first_order": first_order,
    "second_order": second_order,
    "finite_difference": finite_difference,
    "unrolled": unrolled,
    "implicit_cg": implicit_cg,
    "implicit_neumann": implicit_neumann,
    "stochastic_neumann": stochastic_neumann,
}


def get(name: str, **kwargs) -> Estimator:
    """Build the estimator ``name`` with its settings (``lr``, ``steps``, ``iters``, ...).

    Raises:
      ValueError: for an unknown name (the valid names are listed).
    """
    if name not in ESTIMATORS:
        raise ValueError(f"unknown hypergradient estimator {name!r}; valid names are {sorted(ESTIMATORS)}")
    return ESTIMATORS[name](**kwargs)


__all__ = [
    "ESTIMATORS",
    "argmin",
    "dominant_eigenvalue",
    "hvp",
    "gradient_descent",
    "Estimator",
    "Problem",
    "cross_xy",
    "finite_difference",
    "first_order",
    "get",
    "hvp_yy",
    "implicit_cg",
    "implicit_combine",
    "implicit_neumann",
    "second_order",
    "stochastic_neumann",
    "ttsa",
    "unrolled",
]
