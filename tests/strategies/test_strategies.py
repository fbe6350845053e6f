"""Strategies: operators against brute force, scan vs Python driver, resume, and the issue's
NAS-Bench-201 check (REA beats random search and reaches 93.9% at 150 queries)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jnas import strategies as S
from jnas.spaces import nb201

TARGET = jnp.array([3, 3, 1, 2, 3, 4], jnp.int32)


def toy(archs):
    """Fitness = number of edges equal to TARGET (optimum 6 at TARGET); report = the same."""
    f = jnp.sum(archs == TARGET, axis=-1).astype(jnp.float32)
    return f, f


def test_unknown_strategy():
    with pytest.raises(ValueError, match="unknown strategy 'ga9'.*rea"):
        S.get("ga9")


# Model-based strategies at unit-test size (their surrogate fits dominate the compile).
SMALL = {"bananas": {"ensemble": 2, "hidden": 8, "steps": 20, "budget": 40}, "bo": {"budget": 40}}


@pytest.mark.parametrize("name", sorted(S.STRATEGIES))
def test_scan_and_python_driver_run_the_same_search(name):
    s = S.get(name, **SMALL.get(name, {}))
    key = jax.random.key(3)
    steps = -(-40 // s.batch)  # search counts asks, run counts queries
    trace = S.search(s, None, toy, steps, key)
    drv = S.run(s, None, lambda a: tuple(np.asarray(v) for v in toy(a)), steps * s.batch, key, progress=False)
    np.testing.assert_array_equal(np.asarray(trace.archs), drv.archs)
    np.testing.assert_array_equal(np.asarray(trace.fitness), drv.fitness)
    assert set(trace.metrics) == set(drv.metrics)  # what tell returns is kept by both
    for k in drv.metrics:
        np.testing.assert_allclose(np.asarray(trace.metrics[k]), drv.metrics[k], rtol=1e-5)


def test_driver_resumes_without_repeating(tmp_path):
    s = S.get("rea")
    calls = []

    def objective(a):
        calls.append(np.asarray(a).tolist())
        return tuple(np.asarray(v) for v in toy(a))

    full = S.run(s, None, objective, 30, jax.random.key(1), progress=False)
    n_full = len(calls)
    calls.clear()

    def dies(a):
        if len(calls) == 12:
            raise KeyboardInterrupt
        return objective(a)

    with pytest.raises(KeyboardInterrupt):
        S.run(s, None, dies, 30, jax.random.key(1), log=tmp_path / "log.jsonl", progress=False)
    resumed = S.run(s, None, objective, 30, jax.random.key(1), log=tmp_path / "log.jsonl", progress=False)
    assert len(calls) == n_full  # 12 before the kill + 18 after: none lost, none repeated
    np.testing.assert_array_equal(resumed.archs, full.archs)
    with pytest.raises(ValueError, match="holds another search"):
        S.run(s, None, objective, 30, jax.random.key(2), log=tmp_path / "log.jsonl", progress=False)


def test_rea_ages_out_the_oldest_and_mutates_the_tournament_winner():
    P, T = 10, 60
    s = S.regularized_evolution(population=P, sample_size=3)
    key = jax.random.key(5)
    k_init, k_run = jax.random.split(key)
    state = s.init(k_init, None)
    told = []
    for t, k in enumerate(jax.random.split(k_run, T)):
        k_ask, k_tell = jax.random.split(k)
        child, new_state = s.ask(k_ask, state, None)
        if t >= P:
            # Brute force: redo the tournament from the same key; the child is one edit from the winner.
            _, k_pick, _ = jax.random.split(k_ask, 3)
            idx = np.asarray(jax.random.randint(k_pick, (3,), 0, P))
            fits = np.asarray(state.fitness)[idx]
            winner = np.asarray(state.archs)[idx[np.argmax(fits)]]
            assert np.sum(np.asarray(child[0]) != winner) == 1
        f, _ = toy(child)
        state, _ = s.tell(k_tell, child, f, new_state, None)
        told.append(np.asarray(child[0]))
        members = sorted(map(tuple, np.asarray(state.archs)[: min(t + 1, P)]))
        assert members == sorted(map(tuple, told[-P:]))  # the population is exactly the P newest


def test_local_search_climbs_by_best_improvement():
    s = S.local_search()
    trace = S.search(s, None, toy, 200, jax.random.key(0))
    fit = np.asarray(trace.fitness).ravel()
    assert fit.max() == 6  # reaches the optimum of the toy landscape
    # After the start (query 0), queries 1..24 are exactly the 24 neighbours of the start.
    start = np.asarray(trace.archs)[0, 0]
    nbs = np.asarray(trace.archs)[1:25, 0]
    assert sorted(map(tuple, nbs)) == sorted(map(tuple, np.asarray(nb201.neighbours(jnp.asarray(start)))))
    # Query 25 starts the next round from the best neighbour (ties: the first), which improved on the start.
    best = nbs[np.argmax(fit[1:25])]
    assert fit[1:25].max() > fit[0]
    assert sorted(map(tuple, np.asarray(trace.archs)[25:49, 0])) == sorted(map(tuple, np.asarray(nb201.neighbours(jnp.asarray(best)))))


def test_reinforce_step_is_adam_on_the_policy_gradient():
    s = S.reinforce(lr=0.05)
    state = s.init(jax.random.key(0), None)
    a1, a2 = jnp.array([[0, 1, 2, 3, 4, 0]]), jnp.array([[3, 3, 1, 2, 3, 4]])
    state, m = s.tell(None, a1, jnp.array([2.0]), state, None)  # the first reward sets the baseline
    np.testing.assert_allclose(state.logits, 0.0, atol=1e-7)
    logits0 = state.logits
    state, m = s.tell(None, a2, jnp.array([6.0]), state, None)
    adv = 6.0 - (0.9 * 2.0 + 0.1 * 6.0)
    # d/dtheta log pi(a) = onehot(a) - softmax(theta): closed form of the policy gradient.
    g = -adv * (jax.nn.one_hot(a2[0], 5) - jax.nn.softmax(logits0))
    tx = optax.adam(0.05)
    ref_state = tx.init(logits0)
    ref_state = tx.update(jnp.zeros_like(g), ref_state, logits0)[1]  # Adam's first (zero-gradient) step
    upd, _ = tx.update(g, ref_state, logits0)
    np.testing.assert_allclose(state.logits, logits0 + upd, rtol=1e-5, atol=1e-7)


def test_reinforce_learns_the_toy_target():
    trace = S.search(S.reinforce(lr=0.1), None, toy, 400, jax.random.key(0))
    last = np.asarray(trace.archs)[-50:, 0]
    assert np.mean(last == np.asarray(TARGET)) > 0.8


def test_rea_beats_random_search_on_nb201(table):
    """The issue's check: 150 queries, 50 seeds, fitness = 200-epoch validation accuracy."""
    obj = S.objectives.tabular(table, "c10valid_val_acc_200ep", "c10_test_acc_200ep")
    keys = jax.random.split(jax.random.key(0), 50)
    final = {}
    for name in ("rea", "rs"):
        s = S.get(name)
        _, br = jax.jit(jax.vmap(lambda k: S.best_so_far(S.search(s, None, obj, 150, k))))(keys)
        final[name] = np.asarray(br[:, -1])
    assert final["rea"].mean() >= 93.9 and final["rea"].mean() > final["rs"].mean(), {k: v.mean() for k, v in final.items()}
    assert np.all(final["rea"] <= np.nanmax(np.asarray(table.columns["c10_test_acc_200ep"])))


def test_best_so_far_matches_a_loop():
    fit = jnp.array([[[1.0], [3.0], [2.0], [5.0]]])[:, :, :]
    rep = jnp.array([[[10.0], [30.0], [20.0], [50.0]]])
    bf, br = S.best_so_far(S.Trace(None, fit[0], rep[0]))
    np.testing.assert_array_equal(bf, [1, 3, 3, 5])
    np.testing.assert_array_equal(br, [10, 30, 30, 50])


def test_tabular_objective_rejects_unknown_columns(table):
    with pytest.raises(ValueError, match="unknown column 'c10_acc'"):
        S.objectives.tabular(table, "c10_acc")


# A fresh process with three CPU devices: five seeds (padded to six) split over them.
_SEEDS_SPLIT = """
import json, jax
jax.config.update("jax_num_cpu_devices", 3)
import numpy as np
from jnas import strategies as S
from tests.strategies.test_strategies import toy
out = {}
for name in ("rea", "rs", "reinforce"):
    s = S.get(name)
    runs = [S.run_seeds(s, toy, 30, 5, first_seed=2, devices=d) for d in (1, 3)]
    out[name] = [[r[0].tolist(), r[1].tolist()] for r in runs]
print(json.dumps(out))
"""


def test_seeds_split_over_devices_give_one_devices_searches():
    import json
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    env = {**os.environ, "XLA_FLAGS": "", "PYTHONPATH": str(REPO)}
    run = subprocess.run([sys.executable, "-c", _SEEDS_SPLIT], capture_output=True, text=True, env=env, timeout=600, cwd=REPO)
    assert run.returncode == 0, run.stderr[-2000:]
    for name, (one, split) in json.loads(run.stdout.strip().splitlines()[-1]).items():
        assert np.asarray(one[0]).shape == (5, 30)
        np.testing.assert_array_equal(split, one, err_msg=name)
    with pytest.raises(ValueError, match=r"devices must lie in 1\.\.\d+ \(the local cpu devices\)"):
        S.run_seeds(S.get("rs"), toy, 10, 2, devices=jax.local_device_count() + 1)
