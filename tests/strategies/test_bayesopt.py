"""GP-BO: the posterior against the numpy closed form, EI against scipy, the path encoding
against brute-force path enumeration."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from jnas.spaces import nb201
from jnas.strategies import bayesopt


def test_gp_posterior_matches_numpy_closed_form_with_a_partly_filled_buffer():
    rng_x = np.asarray(jax.random.normal(jax.random.key(0), (12, 5)), np.float64)
    y = np.asarray(jax.random.normal(jax.random.key(1), (12,)), np.float64)
    Xs = np.asarray(jax.random.normal(jax.random.key(2), (7, 5)), np.float64)
    n, ell, s, noise = 8, 1.3, 0.9, 0.1
    k = lambda a, b: s**2 * np.exp(-((a[:, None] - b[None]) ** 2).sum(-1) / (2 * ell**2))
    K = k(rng_x[:n], rng_x[:n]) + noise**2 * np.eye(n)
    Ks = k(Xs, rng_x[:n])
    mean_ref = Ks @ np.linalg.solve(K, y[:n])
    var_ref = s**2 - np.einsum("ij,ji->i", Ks, np.linalg.solve(K, Ks.T))
    with jax.enable_x64(True):
        mean, var = bayesopt.posterior(jnp.asarray(rng_x), jnp.asarray(y), jnp.arange(12) < n, jnp.asarray(Xs), ell, s, noise)
    np.testing.assert_allclose(mean, mean_ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(var, var_ref, rtol=1e-9, atol=1e-12)


def test_expected_improvement_matches_scipy():
    mean, var, best = np.array([0.1, 1.0, -0.5]), np.array([0.04, 1.0, 2.0]), 0.3
    sd = np.sqrt(var)
    z = (mean - best) / sd
    ref = (mean - best) * scipy.stats.norm.cdf(z) + sd * scipy.stats.norm.pdf(z)
    np.testing.assert_allclose(bayesopt.expected_improvement(jnp.asarray(mean), jnp.asarray(var), best), ref, rtol=1e-5)


def test_path_encoding_counts_live_paths():
    archs = np.asarray(nb201.enumerate_all())[::37]
    enc = np.asarray(nb201.path_encoding(jnp.asarray(archs)))
    assert enc.shape[1] == 4 + 16 + 16 + 64
    for a, e in zip(archs, enc):
        # Brute force: walk every input-to-output route of the DAG and keep those without "none".
        routes = [r for r in ([0, 3], [0, 1, 3], [0, 2, 3], [0, 1, 2, 3])]
        edge = {(0, 1): 0, (0, 2): 1, (1, 2): 2, (0, 3): 3, (1, 3): 4, (2, 3): 5}
        live = [tuple(a[edge[(u, v)]] for u, v in zip(r, r[1:])) for r in routes]
        live = [ops for ops in live if all(o > 0 for o in ops)]
        assert e.sum() == len(live)
    # Edge 1<-0 is none, so node 1 is cut off: its out-edges (2<-1, 3<-1) are on no live path
    # and changing them keeps the code; changing the live edge 3<-0 does not.
    x = np.array([0, 2, 3, 3, 1, 2])
    dead, live = x.copy(), x.copy()
    dead[4], live[3] = 4, 2
    enc = lambda a: np.asarray(nb201.path_encoding(jnp.asarray(a)))
    np.testing.assert_array_equal(enc(x), enc(dead))
    assert not np.array_equal(enc(x), enc(live))


@pytest.mark.slow  # twin: never repeating is checked fast in tests/strategies/test_any_space.py
def test_bo_never_repeats_and_beats_random_on_nb201(table):
    from jnas import strategies as S

    obj = S.objectives.tabular(table, "c10valid_val_acc_200ep")
    keys = jax.random.split(jax.random.key(0), 8)
    s = bayesopt.gp_bo(budget=60)
    trace = jax.jit(jax.vmap(lambda k: S.search(s, None, obj, 60, k)))(keys)
    idx = np.asarray(nb201.to_index(trace.archs[:, 10:, 0]))
    assert all(len(set(r)) == len(r) for r in idx)  # the acquisition skips evaluated cells
    bf_bo = np.asarray(S.best_so_far(trace)[1])[:, -1]
    rs = jax.jit(jax.vmap(lambda k: S.best_so_far(S.search(S.get("rs"), None, obj, 60, k))))(keys)
    assert bf_bo.mean() > np.asarray(rs[1])[:, -1].mean()
