"""RENAS's controller and BANANAS's predictor-guided search."""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jnas import strategies as S
from jnas.spaces import nb201

renas = importlib.import_module("jnas.strategies.renas")
bananas = importlib.import_module("jnas.strategies.bananas")


def test_renas_policy_probabilities_by_hand():
    s = renas.renas()
    state = s.init(jax.random.key(0))
    parent = jnp.array([3, 0, 1, 2, 4, 1])
    # Zero policy: uniform edge (1/6), uniform among the 4 ops that differ from the current one.
    assert float(renas.log_prob(state.policy, parent, 2, 0)) == np.float32(np.log(1 / 6) + np.log(1 / 4))
    # A mutation to the current op is impossible.
    assert float(renas.log_prob(state.policy, parent, 2, 1)) == -np.inf


def test_renas_children_are_one_edit_and_the_controller_learns_not_to_break_the_good_edge():
    def fitness(archs):  # only edge 0 matters: op 3 there is worth 10, everything else 0
        f = 10.0 * (archs[..., 0] == 3)
        return f, f

    s = renas.renas(lr=0.05)
    ask, tell = jax.jit(s.ask), jax.jit(s.tell)  # one compilation each for the 300 steps
    k_init, k_run = jax.random.split(jax.random.key(0))
    state = s.init(k_init)
    for t, k in enumerate(jax.random.split(k_run, 300)):
        ka, kt = jax.random.split(k)
        a, new = ask(ka, state)
        if t >= 10:
            assert int(jnp.sum(a[0] != new.parent)) == 1  # one edit of the tournament winner
        state, _ = tell(kt, a, fitness(a)[0], new)
    assert np.all(np.asarray(state.fitness) == 10.0)  # the population found op 3 on edge 0
    # Mutating edge 0 now costs 10 (negative reward); the controller learned to avoid it.
    p0 = [float(jax.nn.softmax(state.policy["We"] @ jax.nn.one_hot(p, 5).ravel() + state.policy["be"])[0])
          for p in np.asarray(state.archs)]
    assert np.mean(p0) < 0.1  # uniform would be 1/6


@pytest.mark.slow  # twin: never repeating is checked fast in tests/strategies/test_any_space.py
def test_bananas_never_repeats_and_beats_random_on_nb201(table):
    obj = S.objectives.tabular(table, "c10valid_val_acc_200ep")
    keys = jax.random.split(jax.random.key(0), 6)
    s = bananas.bananas(budget=60, steps=100)
    trace = jax.jit(jax.vmap(lambda k: S.search(s, None, obj, 60, k)))(keys)
    idx = np.asarray(nb201.to_index(trace.archs[:, 10:, 0]))
    assert all(len(set(r)) == len(r) for r in idx)
    bb = np.asarray(S.best_so_far(trace)[1])[:, -1]
    rs = jax.jit(jax.vmap(lambda k: S.best_so_far(S.search(S.get("rs"), None, obj, 60, k))))(keys)
    assert bb.mean() > np.asarray(rs[1])[:, -1].mean()
