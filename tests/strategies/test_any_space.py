"""Strategies over spaces other than NAS-Bench-201, hyperparameters as a vmappable params
pytree, and the metrics each ``tell`` returns kept by ``search`` and the driver."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jnas import spaces
from jnas import strategies as S
from jnas.strategies import nsga2
from jnas.strategies.regularized_evolution import REAParams, regularized_evolution

TREE = spaces.tree.TreeSpace((1, 3, 3, 3))  # 729 trees; the first layer's genes have one value
DARTS = spaces.darts.SPACE

# The other space each registered strategy is run on (those needing ``choices`` get the tree
# space, whose one-valued genes are the awkward case; the rest the DARTS genotypes).
OTHER = {"rs": DARTS, "rea": DARTS, "ls": TREE, "reinforce": TREE, "mcts": TREE, "renas": TREE,
         "bananas": DARTS, "gea": DARTS, "bo": TREE, "ga": TREE}
SMALL = {"bananas": {"budget": 16, "n_init": 4, "ensemble": 2, "hidden": 8, "steps": 10},
         "bo": {"budget": 16, "n_init": 4}}


def objective_for(space):
    """Fitness = number of positions equal to a fixed random target architecture."""
    target = space.sample(jax.random.key(99), 1)[0]

    def objective(archs):
        f = jnp.sum((archs == target).reshape(archs.shape[0], -1), -1).astype(jnp.float32)
        return f, f

    return objective


def test_every_registered_strategy_has_another_space():
    assert set(OTHER) == set(S.STRATEGIES)


@pytest.mark.parametrize("name", sorted(OTHER))
def test_strategy_runs_on_another_space_and_stays_in_it(name):
    space = OTHER[name]
    kw = dict(SMALL.get(name, {}))
    if name == "gea":
        kw.update(score=lambda a: -jnp.sum(a.reshape(a.shape[0], -1), -1).astype(jnp.float32), candidates=20,
                  population=4, sample_size=2, children=4)
    s = S.get(name, space=space, **kw)
    trace = jax.jit(lambda k: S.search(s, None, objective_for(space), 16 // s.batch, k))(jax.random.key(0))
    archs = np.asarray(trace.archs).reshape(-1, *space.arch_shape)
    space.check(archs)  # every evaluated architecture is valid in its space
    fit = np.asarray(trace.fitness).ravel()
    assert np.isfinite(fit).all() and fit.max() <= np.prod(space.arch_shape)
    if name in ("bo", "bananas"):  # model-based: never query the same architecture twice within budget
        assert len({a.tobytes() for a in archs}) == len(archs)


def test_nsga2_runs_on_darts_genotypes():
    space = DARTS
    obj = objective_for(space)
    s = nsga2.nsga2(space, population=6)
    trace = jax.jit(lambda k: S.search(s, None, lambda a: (jnp.stack([obj(a)[0], -obj(a)[0]], -1), obj(a)[0]), 3, k))(
        jax.random.key(0))
    space.check(np.asarray(trace.archs).reshape(-1, *space.arch_shape))


@pytest.mark.parametrize("name,space", [("reinforce", DARTS), ("mcts", DARTS), ("ls", DARTS),
                                        ("bo", DARTS), ("bananas", spaces.cnn_chain.ChainSpace())])
def test_a_space_without_what_a_strategy_needs_is_refused_by_name(name, space):
    with pytest.raises(ValueError, match=r"needs a space with|host-side|scores every"):
        S.get(name, space=space)


def test_psocnn_refuses_another_space():
    with pytest.raises(ValueError, match="chain"):
        S.psocnn(spaces.nb201.SPACE)


def test_vmap_over_rea_population_and_tournament_size_equals_a_loop():
    s = regularized_evolution(population=10, sample_size=3, max_population=12, max_sample_size=5)
    obj = objective_for(spaces.nb201.SPACE)
    params = REAParams(jnp.array([4, 10, 12], jnp.int32), jnp.array([2, 3, 5], jnp.int32))
    run = jax.jit(lambda p: S.search(s, p, obj, 30, jax.random.key(7)))
    batched = jax.vmap(lambda p: S.search(s, p, obj, 30, jax.random.key(7)))(params)
    for i in range(3):
        one = run(jax.tree.map(lambda v: v[i], params))
        np.testing.assert_array_equal(np.asarray(batched.archs[i]), np.asarray(one.archs))
    # Different settings really run different searches, and the defaults are the params.
    assert not np.array_equal(np.asarray(batched.archs[0]), np.asarray(batched.archs[1]))
    np.testing.assert_array_equal(np.asarray(run(None).archs), np.asarray(batched.archs[1]))


def test_rea_population_is_the_aging_window():
    # With population P, every child's parent is one of the last P evaluations.
    P = 4
    s = regularized_evolution(population=P, sample_size=2, max_population=10, max_sample_size=2)
    trace = S.search(s, None, objective_for(spaces.nb201.SPACE), 40, jax.random.key(1))
    archs = np.asarray(trace.archs)[:, 0]
    for t in range(P, 40):
        window = archs[t - P:t]
        assert any((np.asarray(a) != archs[t]).sum() == 1 for a in window)  # a one-edit child of the window


def test_search_and_driver_keep_tell_metrics():
    s = S.get("reinforce", lr=0.05)
    obj = objective_for(spaces.nb201.SPACE)
    trace = S.search(s, None, obj, 12, jax.random.key(2))
    drv = S.run(s, None, lambda a: tuple(np.asarray(v) for v in obj(a)), 12, jax.random.key(2), progress=False)
    assert set(trace.metrics) == set(drv.metrics) == {"baseline"}
    np.testing.assert_allclose(np.asarray(trace.metrics["baseline"]), drv.metrics["baseline"], rtol=1e-6)
    # The baseline is the moving average of the rewards: check it against numpy.
    f = np.asarray(trace.fitness)[:, 0]
    b = [f[0]]
    for r in f[1:]:
        b.append(0.9 * b[-1] + 0.1 * r)
    np.testing.assert_allclose(drv.metrics["baseline"], b, rtol=1e-5)
