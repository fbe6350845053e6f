"""Bilevel problems with closed-form solutions, for checking estimators and TTSA.

* :func:`quadratic`: g = 1/2 y^T A y - y^T B x, f = 1/2 ||y - c||^2 + mu/2 ||x||^2 (+ a
  weakly convex term). y*(x) = A^-1 B x, so grad l and x* are linear algebra.
* :func:`ridge`: per-feature ridge penalties tuned on validation data,
  g(lam, W) = ||X_tr W - Y_tr||^2 / (2 n) + 1/2 sum_j exp(lam_j) ||W_j||^2,
  f(lam, W) = ||X_val W - Y_val||^2 / (2 m); W*(lam) solves a linear system.

Each returns a :class:`Reference`: the :class:`Problem`, its exact solution map, exact
hypergradient (dense solves, independent of the estimators' Hessian-vector products) and a
stochastic oracle ``sample(key)`` (gradient noise of scale ``noise``) for TTSA studies.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jnas.bilevel.problem import Problem


class Reference(NamedTuple):
    problem: Problem
    solve_inner: Callable[[jax.Array], jax.Array]  # x -> y*(x)
    hypergrad: Callable[[jax.Array], jax.Array]  # x -> grad l(x), exact
    value: Callable[[jax.Array], jax.Array]  # x -> l(x)
    sample: Callable[[jax.Array], Problem]  # key -> a noisy problem with the same expectation
    x0: jax.Array
    y0: jax.Array
    x_star: jax.Array | None = None  # argmin l when known in closed form


def _noisy(problem: Problem, key: jax.Array, noise: float, x0: jax.Array, y0: jax.Array) -> Problem:
    """Add zero-mean linear terms n_f.(x, y) and n_g.y: unbiased gradient noise of std ``noise``."""
    kx, ky, kg = jax.random.split(key, 3)
    nx = noise * jax.random.normal(kx, x0.shape, x0.dtype)
    ny = noise * jax.random.normal(ky, y0.shape, y0.dtype)
    ng = noise * jax.random.normal(kg, y0.shape, y0.dtype)
    return Problem(
        outer=lambda x, y: problem.outer(x, y) + jnp.vdot(nx, x) + jnp.vdot(ny, y),
        inner=lambda x, y: problem.inner(x, y) + jnp.vdot(ng, y),
    )


def quadratic(
    key: jax.Array, dim_x: int = 10, dim_y: int = 20, mu: float = 0.1, cond: float = 10.0, noise: float = 0.0,
    weak: float = 0.0,
) -> Reference:
    """Random quadratic bilevel problem; inner Hessian A has eigenvalues in [1, cond].

    ``weak > 0`` adds ``weak * sum(log(1 + x^2))`` to f, a nonconvex term with curvature
    down to ``-weak / 4``: with small ``mu`` the outer problem is only weakly convex
    (and ``x_star`` is unknown).
    """
    ka, kb, kc = jax.random.split(key, 3)
    q, _ = jnp.linalg.qr(jax.random.normal(ka, (dim_y, dim_y)))
    A = (q * jnp.linspace(1.0, cond, dim_y)) @ q.T
    B = jax.random.normal(kb, (dim_y, dim_x)) / jnp.sqrt(dim_x)
    c = jax.random.normal(kc, (dim_y,))

    def inner(x, y):
        return 0.5 * y @ A @ y - y @ B @ x

    def outer(x, y):
        return 0.5 * jnp.sum((y - c) ** 2) + 0.5 * mu * jnp.sum(x**2) + weak * jnp.sum(jnp.log1p(x**2))

    M = jnp.linalg.solve(A, B)  # y*(x) = M x

    def hypergrad(x):
        return M.T @ (M @ x - c) + mu * x + weak * 2 * x / (1 + x**2)

    problem = Problem(outer, inner)
    x0, y0 = jnp.ones((dim_x,)), jnp.zeros((dim_y,))
    x_star = jnp.linalg.solve(M.T @ M + mu * jnp.eye(dim_x), M.T @ c) if weak == 0 else None
    return Reference(
        problem,
        solve_inner=lambda x: M @ x,
        hypergrad=hypergrad,
        value=lambda x: outer(x, M @ x),
        sample=lambda k: _noisy(problem, k, noise, x0, y0),
        x0=x0,
        y0=y0,
        x_star=x_star,
    )


def ridge(
    x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, noise: float = 0.0
) -> Reference:
    """Per-feature ridge-penalty tuning; ``x_*`` are (n, d) features, ``y_*`` (n, k) targets."""
    Xt, Yt, Xv, Yv = (jnp.asarray(a) for a in (x_train, y_train, x_val, y_val))
    n, m = Xt.shape[0], Xv.shape[0]
    if Xt.shape[1] != Xv.shape[1] or Yt.shape[1] != Yv.shape[1] or Yt.shape[0] != n or Yv.shape[0] != m:
        raise ValueError(f"ridge: inconsistent shapes {Xt.shape}, {Yt.shape}, {Xv.shape}, {Yv.shape}")
    gram, xty = Xt.T @ Xt / n, Xt.T @ Yt / n

    def inner(lam, W):
        return 0.5 * jnp.sum((Xt @ W - Yt) ** 2) / n + 0.5 * jnp.sum(jnp.exp(lam)[:, None] * W**2)

    def outer(lam, W):
        return 0.5 * jnp.sum((Xv @ W - Yv) ** 2) / m

    def solve_inner(lam):
        return jnp.linalg.solve(gram + jnp.diag(jnp.exp(lam)), xty)

    def hypergrad(lam):
        # dW*/dlam_j = -(H^-1 e_j) exp(lam_j) W*_j;  dl/dlam_j = -exp(lam_j) <W*_j, (H^-1 grad_W f)_j>
        H = gram + jnp.diag(jnp.exp(lam))
        W = jnp.linalg.solve(H, xty)
        V = jnp.linalg.solve(H, Xv.T @ (Xv @ W - Yv) / m)
        return -jnp.exp(lam) * jnp.sum(W * V, axis=1)

    problem = Problem(outer, inner)
    x0 = jnp.zeros((Xt.shape[1],))
    y0 = jnp.zeros((Xt.shape[1], Yt.shape[1]))
    return Reference(
        problem,
        solve_inner=solve_inner,
        hypergrad=hypergrad,
        value=lambda lam: outer(lam, solve_inner(lam)),
        sample=lambda k: _noisy(problem, k, noise, x0, y0),
        x0=x0,
        y0=y0,
    )


def mnist_ridge_data(
    data_dir=None, n_train: int = 500, n_val: int = 500, pool: int = 4
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Real MNIST digits average-pooled by ``pool`` (28/4 -> 7x7 = 49 features, plus a bias
    column), one-hot targets centred to zero mean: the ridge problem's data."""
    from jnas.data import load_mnist_subset

    x, y = load_mnist_subset(data_dir, "train")
    x, y = x[: n_train + n_val], y[: n_train + n_val]
    s = 28 // pool
    f = x[:, : s * pool, : s * pool, 0].reshape(len(x), s, pool, s, pool).mean((2, 4)).reshape(len(x), -1)
    f = np.concatenate([f, np.ones((len(f), 1), np.float32)], axis=1)
    t = np.eye(10, dtype=np.float32)[y] - 0.1
    return f[:n_train], t[:n_train], f[n_train:], t[n_train:]
