"""Measurements behind ``experiments.bilevel_study``: estimator error against the exact
hypergradient as a function of budget, and outer-loop convergence of TTSA, implicit and
unrolled methods on a stochastic oracle. Problems are :mod:`jnas.bilevel.problems`."""

from __future__ import annotations

import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax.tree_utils as otu

from jnas import bilevel
from jnas.bilevel import ttsa
from jnas.bilevel.problems import Reference

# Estimators studied, each ``(budget, lr) -> Estimator`` plus where it is evaluated: at the
# exact inner solution ("star") or from the cold start y0 ("cold", unrolled methods).
BUDGETED: dict[str, tuple[Callable[[int, float], bilevel.Estimator], str]] = {
    "first_order": (lambda k, lr: bilevel.first_order(), "star"),
    "second_order": (lambda k, lr: bilevel.second_order(lr), "star"),
    "finite_difference": (lambda k, lr: bilevel.finite_difference(lr), "star"),
    "unrolled": (lambda k, lr: bilevel.unrolled(k, lr), "cold"),
    "implicit_cg": (lambda k, lr: bilevel.implicit_cg(k), "star"),
    "implicit_neumann": (lambda k, lr: bilevel.implicit_neumann(k, lr), "star"),
    "stochastic_neumann": (lambda k, lr: bilevel.stochastic_neumann(k, lr), "star"),
}
ONE_SHOT = ("first_order", "second_order", "finite_difference")  # budget does not apply


def inner_smoothness(ref: Reference, x: jax.Array) -> float:
    """Largest eigenvalue L_g of the inner Hessian at (x, y*(x)) (dense; small problems)."""
    y = ref.solve_inner(x)
    h = jax.hessian(ref.problem.inner, argnums=1)(x, y)
    n = y.size
    return float(np.linalg.eigvalsh(np.asarray(h).reshape(n, n))[-1])


def estimator_errors(ref: Reference, x: jax.Array, budgets: list[int], key: jax.Array, samples: int = 32) -> dict[str, dict[str, float]]:
    """``{estimator: {budget: relative error}}`` against ``ref.hypergrad(x)``; the stochastic
    estimator's error is the mean over ``samples`` draws."""
    exact = ref.hypergrad(x)
    lr = 1.0 / inner_smoothness(ref, x)
    y_star = ref.solve_inner(x)
    out: dict[str, dict[str, float]] = {}
    for name, (make, where) in BUDGETED.items():
        y = y_star if where == "star" else ref.y0
        out[name] = {}
        for k in budgets[:1] if name in ONE_SHOT else budgets:
            est = jax.jit(make(k, lr), static_argnums=0)
            if name == "stochastic_neumann":
                keys = jax.random.split(key, samples)
                errs = [float(otu.tree_norm(otu.tree_sub(est(ref.problem, x, y, kk), exact))) for kk in keys]
                err = float(np.mean(errs))
            else:
                err = float(otu.tree_norm(otu.tree_sub(est(ref.problem, x, y, key), exact)))
            out[name][str(k)] = err / float(otu.tree_norm(exact))
    return out


def outer_run(
    ref: Reference, method: str, iters: int, key: jax.Array, alpha: ttsa.Schedule, beta: ttsa.Schedule,
    lr: float, inner_steps: int = 10, neumann_terms: int = 20,
) -> tuple[np.ndarray, float]:
    """Run one outer method for ``iters`` iterations on fresh noisy samples of the problem.

    Methods: ``"ttsa"`` (one inner step of size beta_k, stochastic Neumann hypergradient);
    ``"implicit"`` (``inner_steps`` warm-started inner steps of size ``lr``, then CG with
    ``inner_steps`` iterations); ``"unrolled"`` (``inner_steps`` warm-started steps,
    differentiated through). The outer step is alpha_k for all three.

    Returns:
      the outer iterates ``(iters + 1, dim_x)`` and the wall time of the jitted run (s).
    """
    if method == "ttsa":
        est = ttsa.stochastic_neumann(neumann_terms, lr)

        def body(state, k):
            k_prob, k_est = jax.random.split(k)
            state = ttsa.step(k_est, state, ref.sample(k_prob), est, alpha, beta)
            return state, state.x

    elif method in ("implicit", "unrolled"):
        est = bilevel.implicit_cg(inner_steps) if method == "implicit" else bilevel.unrolled(inner_steps, lr)

        def body(state, k):
            k_prob, k_est = jax.random.split(k)
            problem = ref.sample(k_prob)
            # Both warm-start the inner iterate with the same steps: implicit solves from the
            # new iterate; unrolled differentiates those steps from the old one.
            y = jax.lax.fori_loop(0, inner_steps, lambda _, y_: bilevel.problem.inner_step(problem, state.x, y_, lr), state.y)
            h = est(problem, state.x, y if method == "implicit" else state.y, k_est)
            x = otu.tree_add_scale(state.x, -alpha(state.k.astype(jnp.float32)), h)
            state = ttsa.TTSAState(x, y, state.k + 1)
            return state, state.x

    else:
        raise ValueError(f"unknown outer method {method!r}; valid methods are ['ttsa', 'implicit', 'unrolled']")

    run = jax.jit(lambda key: jax.lax.scan(body, ttsa.init(ref.x0, ref.y0), jax.random.split(key, iters))[1])
    run(key).block_until_ready()  # compile outside the timing
    t = time.perf_counter()
    xs = run(key).block_until_ready()
    wall = time.perf_counter() - t
    return np.concatenate([np.asarray(ref.x0)[None], np.asarray(xs)]), wall


def loglog_slope(k: np.ndarray, err: np.ndarray) -> float:
    """Least-squares slope of log err against log k (scipy.stats.linregress)."""
    from scipy import stats

    ok = (k > 0) & (err > 0)
    return float(stats.linregress(np.log(k[ok]), np.log(err[ok])).slope)
