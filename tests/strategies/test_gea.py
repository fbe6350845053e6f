"""GEA: the initial population is the proxy's top N of C, and each evaluated child is the
proxy's best of P one-edit mutations of the tournament winner (redone by brute force)."""

import importlib

import jax
import jax.numpy as jnp
import numpy as np

from jnas import strategies as S
from jnas.spaces import nb201

g = importlib.import_module("jnas.strategies.gea")
TARGET = jnp.array([3, 3, 1, 2, 3, 4])


def proxy(archs):  # a stand-in proxy: agreement with TARGET, plus a small tie-breaker
    return jnp.sum(archs == TARGET, -1) + 0.01 * archs[..., 0]


def fitness(archs):
    f = jnp.sum(archs == TARGET, -1).astype(jnp.float32)
    return f, f


def test_initial_population_and_children_follow_the_proxy():
    s = g.gea(proxy, candidates=50, population=5, sample_size=3, children=8)
    k_init, k_run = jax.random.split(jax.random.key(0))
    state = s.init(k_init, None)
    cand = np.asarray(nb201.sample(k_init, 50))
    top = np.argsort(-np.asarray(proxy(jnp.asarray(cand))), kind="stable")[:5]
    np.testing.assert_array_equal(state.initial, cand[top])
    for t, k in enumerate(jax.random.split(k_run, 20)):
        k_ask, _ = jax.random.split(k)
        arch, _ = s.ask(k_ask, state, None)
        if t < 5:
            np.testing.assert_array_equal(arch[0], cand[top[t]])
        else:
            k_pick, k_mut = jax.random.split(k_ask)
            idx = np.asarray(jax.random.randint(k_pick, (3,), 0, 5))
            parent = np.asarray(state.archs)[idx[np.argmax(np.asarray(state.fitness)[idx])]]
            kids = [np.asarray(nb201.mutate(kk, jnp.asarray(parent))) for kk in jax.random.split(k_mut, 8)]
            best = kids[int(np.argmax([float(proxy(jnp.asarray(c))) for c in kids]))]
            np.testing.assert_array_equal(arch[0], best)
            assert np.sum(best != parent) == 1
        state, _ = s.tell(None, arch, fitness(arch)[0], state, None)


def test_a_good_proxy_guides_the_search():
    # With a proxy that ranks like the fitness, GEA reaches the optimum of the toy landscape in
    # far fewer queries than REA.
    keys = jax.random.split(jax.random.key(1), 10)
    hit = lambda s: np.asarray(jax.vmap(lambda k: S.search(s, None, fitness, 40, k).fitness.max())(keys))
    assert hit(g.gea(proxy)).mean() > hit(S.get("rea")).mean()
    assert np.all(hit(g.gea(proxy)) == 6)
