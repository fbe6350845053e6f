"""Hypergradient estimators against closed forms (float64)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jnas import bilevel
from jnas.bilevel import problems, ttsa


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def rel(a, b):
    return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))


@pytest.fixture
def quad(x64, key):
    return problems.quadratic(key, dim_x=6, dim_y=12, cond=10.0)


def test_implicit_estimators_are_exact_at_the_inner_optimum(quad, key):
    x = quad.x0 + 0.3
    y = quad.solve_inner(x)
    exact = quad.hypergrad(x)
    # CG is exact in dim(y) iterations on a quadratic; the Neumann series (lr = 1/L) converges.
    assert rel(bilevel.implicit_cg(12)(quad.problem, x, y, key), exact) < 1e-10
    assert rel(bilevel.implicit_neumann(400, lr=0.1)(quad.problem, x, y, key), exact) < 1e-10
    # Truncation leaves an error, and first order ignores the implicit term entirely.
    assert rel(bilevel.implicit_neumann(5, lr=0.1)(quad.problem, x, y, key), exact) > 1e-3
    assert rel(bilevel.first_order()(quad.problem, x, y, key), exact) > 0.1


def test_neumann_series_matches_dense_inverse(quad, key):
    # lr sum_{i<K} (I - lr A)^i b, computed densely, is what implicit_neumann(K) applies.
    x = quad.x0
    y = quad.solve_inner(x)
    A = jax.hessian(quad.problem.inner, argnums=1)(x, y)
    b = jax.grad(quad.problem.outer, argnums=1)(x, y)
    lr, K = 0.1, 7
    P = jnp.eye(A.shape[0]) - lr * A
    v = lr * sum(jnp.linalg.matrix_power(P, i) @ b for i in range(K))
    Bxy = jax.jacfwd(jax.grad(quad.problem.inner, argnums=0), argnums=1)(x, y)  # (dx, dy)
    expected = jax.grad(quad.problem.outer, argnums=0)(x, y) - Bxy @ v
    assert rel(bilevel.implicit_neumann(K, lr)(quad.problem, x, y, key), expected) < 1e-12


def test_second_order_equals_one_step_unroll_and_finite_difference_approximates_it(quad, key):
    x, y = quad.x0, quad.y0 + 0.5
    exact = bilevel.second_order(0.05)(quad.problem, x, y, key)
    assert rel(bilevel.unrolled(1, 0.05)(quad.problem, x, y, key), exact) < 1e-12
    # On a quadratic the central difference of a linear gradient is exact up to rounding.
    assert rel(bilevel.finite_difference(0.05)(quad.problem, x, y, key), exact) < 1e-8


def test_unrolled_converges_to_implicit_as_steps_grow(quad, key):
    x = quad.x0
    exact = quad.hypergrad(x)
    errors = [rel(bilevel.unrolled(k, 0.1)(quad.problem, x, quad.y0, key), exact) for k in (1, 10, 50, 200, 800)]
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 1e-10 and errors[0] > 0.1


def test_stochastic_neumann_is_unbiased_for_the_truncated_series(quad, key):
    x = quad.x0
    y = quad.solve_inner(x)
    est = bilevel.stochastic_neumann(8, lr=0.1)
    samples = jax.vmap(lambda k: est(quad.problem, x, y, k))(jax.random.split(key, 4000))
    target = bilevel.implicit_neumann(8, lr=0.1)(quad.problem, x, y, key)
    se = samples.std(0) / np.sqrt(len(samples))
    assert jnp.all(jnp.abs(samples.mean(0) - target) < 5 * se + 1e-12)
    assert float(samples.std(0).max()) > 1e-3  # really random


def test_ridge_hypergradient_by_cg_matches_closed_form(x64, data_dir, key):
    data = [np.asarray(a, np.float64) for a in problems.mnist_ridge_data(data_dir, n_train=300, n_val=300)]
    ref = problems.ridge(*data)
    lam = jnp.full(ref.x0.shape, np.log(0.01)) + 0.1 * jax.random.normal(key, ref.x0.shape)
    W = ref.solve_inner(lam)
    exact = ref.hypergrad(lam)
    # The closed form against autodiff through the dense solve, then CG (50 features) against both.
    assert rel(jax.grad(ref.value)(lam), exact) < 1e-10
    assert rel(bilevel.implicit_cg(100)(ref.problem, lam, W, key), exact) < 1e-4


def test_ttsa_reaches_the_optimum_of_a_strongly_convex_problem(quad, key):
    ref = problems.quadratic(key, dim_x=6, dim_y=12, cond=10.0, mu=0.5, noise=0.0)
    x_star = ref.x_star
    assert jnp.linalg.norm(ref.hypergrad(x_star)) < 1e-10 * jnp.linalg.norm(ref.hypergrad(ref.x0))  # stationary
    alpha, beta = ttsa.strongly_convex_schedules(c_alpha=2.0, c_beta=0.1, k_alpha=5.0)
    est = bilevel.stochastic_neumann(20, lr=0.1)

    def body(state, k):
        return ttsa.step(k, state, ref.problem, est, alpha, beta), None

    state, _ = jax.lax.scan(body, ttsa.init(ref.x0, ref.y0), jax.random.split(key, 3000))
    assert float(jnp.linalg.norm(state.x - x_star)) < 0.05 * float(jnp.linalg.norm(ref.x0 - x_star)), float(jnp.linalg.norm(state.x - x_star))


def test_bad_settings_raise():
    with pytest.raises(ValueError, match="unknown hypergradient estimator 'cgg'"):
        bilevel.get("cgg")
    with pytest.raises(ValueError, match="steps > 0"):
        bilevel.unrolled(0, 0.1)
    with pytest.raises(ValueError, match="lr > 0"):
        bilevel.finite_difference(lr=0.0)


def test_argmin_by_custom_root_gives_the_implicit_hypergradient(quad, key):
    x = quad.x0 - 0.2
    solver = bilevel.gradient_descent(steps=600, lr=0.1)

    def loss(x_):
        return quad.problem.outer(x_, bilevel.argmin(quad.problem.inner, x_, quad.y0, solver))

    y = bilevel.argmin(quad.problem.inner, x, quad.y0, solver)
    assert rel(y, quad.solve_inner(x)) < 1e-12
    assert rel(jax.grad(loss)(x), quad.hypergrad(x)) < 1e-10
