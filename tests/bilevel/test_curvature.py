"""Dominant Hessian eigenvalue by power iteration on exact Hessian-vector products, against
closed forms (quadratics of known spectrum) and a dense Hessian's eigendecomposition."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jnas import bilevel


def _quadratic(spectrum, seed=0):
    """f(x) = x^T A x / 2 over a two-leaf pytree, A = Q diag(spectrum) Q^T."""
    n = len(spectrum)
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(n, n)))
    a = jnp.asarray(q @ np.diag(spectrum) @ q.T, jnp.float32)
    split = n // 3

    def f(x):
        v = jnp.concatenate([x["u"].ravel(), x["w"]])
        return 0.5 * v @ a @ v

    x = {"u": jnp.ones((split,)).reshape(split, 1), "w": jnp.zeros(n - split)}
    return f, x, a


@pytest.mark.parametrize("spectrum,expected", [
    ([5.0, 3.0, 1.0, 0.5, -1.0, 0.1, 0.0, 2.0, -2.0], 5.0),  # largest positive dominates
    ([-4.0, 2.0, 1.0, 0.3, -1.0, 0.0], -4.0),  # a negative eigenvalue of largest magnitude is returned as such
])
def test_power_iteration_finds_the_closed_form_dominant_eigenvalue(spectrum, expected):
    f, x, a = _quadratic(spectrum)
    v = jax.tree.map(lambda t: jnp.arange(t.size, dtype=t.dtype).reshape(t.shape) + 1.0, x)
    flat = jnp.concatenate([v["u"].ravel(), v["w"]])
    got = bilevel.hvp(f, x, v)
    np.testing.assert_allclose(jnp.concatenate([got["u"].ravel(), got["w"]]), a @ flat, rtol=1e-5, atol=1e-5)
    eig = jax.jit(lambda x, k: bilevel.dominant_eigenvalue(f, x, k, iters=500, tol=1e-7))(x, jax.random.key(0))
    np.testing.assert_allclose(float(eig.value), expected, rtol=1e-4)
    assert float(eig.residual) < 1e-2 * abs(expected)
    assert jax.tree.structure(eig.vector) == jax.tree.structure(x) and 2 <= int(eig.iterations) <= 500


def test_iteration_cap_and_bad_settings():
    f, x, _ = _quadratic([1.0, 0.99, 0.5])  # a tiny gap: the cap, not the tolerance, stops it
    assert int(bilevel.dominant_eigenvalue(f, x, jax.random.key(0), iters=7, tol=0.0).iterations) == 7
    with pytest.raises(ValueError, match="iters >= 1"):
        bilevel.dominant_eigenvalue(f, x, jax.random.key(0), iters=0)
