"""TTSA: two-timescale stochastic approximation for bilevel problems (Hong, Wai, Wang &
Yang, "A Two-Timescale Stochastic Algorithm Framework for Bilevel Optimization", 2020;
Algorithm 10 of the survey (docs/references.md)):

    y_{k+1} = y_k - beta_k grad_y g(x_k, y_k)
    x_{k+1} = proj_X(x_k - alpha_k h(x_k, y_{k+1}))

with a fast inner step (beta_k >> alpha_k) and ``h`` any :data:`Estimator`. The paper's
estimator is :func:`stochastic_neumann`: draw p ~ U{0, ..., t_max - 1} and use

    v = t_max (c_h / L_g) prod_{i=1}^{p} (I - (c_h / L_g) grad2_yy g) grad_y f,

an unbiased estimate of the t_max-term Neumann series at the cost of p Hessian-vector
products. Step sizes (the paper's Theorems 1 and 2):

* strongly convex outer objective: alpha_k = c_a / (k + k_a), beta_k = c_b / (k + k_b)^(2/3),
  giving E||x_K - x*||^2 = O(K^-2/3);
* weakly convex outer objective, horizon K: alpha = c_a K^(-3/5), beta = c_b K^(-2/5)
  (constant), giving an O(K^-2/5)-stationary point (Moreau-envelope gradient).

Jittable and ``vmap``-able over keys: a whole run is a ``lax.scan`` of :func:`step`.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax.tree_utils as otu

from jnas.bilevel.problem import check_positive, Estimator, Problem, PyTree, grad_inner_y, implicit_combine, neumann_terms

Schedule = Callable[[jax.Array], jax.Array]


def stochastic_neumann(max_terms: int, lr: float) -> Estimator:
    """TTSA's randomly truncated Neumann estimator; ``lr`` is c_h / L_g (< 1 / L_g)."""
    check_positive("stochastic_neumann", "max_terms", max_terms)
    check_positive("stochastic_neumann", "lr", lr)

    def estimate(problem: Problem, x: PyTree, y: PyTree, key: jax.Array) -> PyTree:
        b = jax.grad(problem.outer, argnums=1)(x, y)
        p = jax.random.randint(key, (), 0, int(max_terms))
        v = otu.tree_scale(int(max_terms) * lr, neumann_terms(problem, x, y, b, lr, p))
        return implicit_combine(problem, x, y, v)

    return estimate


class TTSAState(NamedTuple):
    x: PyTree  # outer variable
    y: PyTree  # inner iterate
    k: jax.Array  # () int32 iteration count


def strongly_convex_schedules(c_alpha: float, c_beta: float, k_alpha: float = 1.0, k_beta: float = 1.0) -> tuple[Schedule, Schedule]:
    """Theorem 1's steps: alpha_k = c_a/(k + k_a), beta_k = c_b/(k + k_b)^(2/3)."""
    return (lambda k: c_alpha / (k + k_alpha), lambda k: c_beta / (k + k_beta) ** (2.0 / 3.0))


def weakly_convex_schedules(c_alpha: float, c_beta: float, horizon: int) -> tuple[Schedule, Schedule]:
    """Theorem 2's constant steps for a run of ``horizon`` iterations."""
    a, b = c_alpha * horizon ** (-3.0 / 5.0), c_beta * horizon ** (-2.0 / 5.0)
    return (lambda k: a + 0.0 * k, lambda k: b + 0.0 * k)


def init(x: PyTree, y: PyTree) -> TTSAState:
    return TTSAState(x, y, jnp.zeros((), jnp.int32))


def step(
    key: jax.Array,
    state: TTSAState,
    problem: Problem,
    estimator: Estimator,
    alpha: Schedule,
    beta: Schedule,
    project: Callable[[PyTree], PyTree] = lambda x: x,
) -> TTSAState:
    """One TTSA iteration on ``problem`` (a fresh sample of it for stochastic problems)."""
    k = state.k.astype(jnp.float32)
    y = otu.tree_add_scale(state.y, -beta(k), grad_inner_y(problem, state.x, state.y))
    h = estimator(problem, state.x, y, key)
    x = project(otu.tree_add_scale(state.x, -alpha(k), h))
    return TTSAState(x, y, state.k + 1)
