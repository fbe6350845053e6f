"""Genetic-CNN: roulette frequencies, crossover and mutation rates and segments, elitist
survival, and the binary stage codec."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from jnas.spaces import genetic
import importlib

ga = importlib.import_module("jnas.strategies.genetic_cnn")  # the package re-exports the factory under this name


def test_roulette_frequencies_match_probabilities():
    fitness = jnp.array([1.0, 2.0, 3.0, 4.0, 6.0])
    n = 60_000
    idx = np.asarray(ga.roulette(jax.random.key(0), fitness, n))
    counts = np.bincount(idx, minlength=5)
    p = np.array([0, 1, 2, 3, 5]) / 11  # shifted by the minimum, so the worst is never picked
    assert counts[0] == 0
    chi = scipy.stats.chisquare(counts[1:], n * p[1:])
    assert chi.pvalue > 1e-3, (counts, chi)


@pytest.mark.parametrize("radius,prob", [(4, 0.7), (2, 0.3)])
def test_crossover_swaps_one_segment_at_rate_p(radius, prob):
    L, trials = 21, 4000
    a, b = jnp.zeros(L, jnp.int32), jnp.ones(L, jnp.int32)
    ca, cb = jax.vmap(lambda k: ga.crossover(k, a, b, radius, prob))(jax.random.split(jax.random.key(1), trials))
    ca, cb = np.asarray(ca), np.asarray(cb)
    np.testing.assert_array_equal(ca + cb, 1)  # genes are exchanged, never lost
    swapped = ca.sum(1) > 0
    assert abs(swapped.mean() - prob) < 5 * np.sqrt(prob * (1 - prob) / trials)
    for row in ca[swapped]:
        on = np.flatnonzero(row)
        assert len(on) == radius and on[-1] - on[0] == radius - 1  # one contiguous segment
    starts = np.array([np.flatnonzero(r)[0] for r in ca[swapped]])
    assert set(starts) == set(range(L - radius + 1))  # every position is reachable


def test_mutation_changes_one_segment_at_rate_p():
    L, trials = 21, 4000
    g = jnp.zeros(L, jnp.int32)
    out = np.asarray(jax.vmap(lambda k: ga.mutation(k, g, 2, 0.2))(jax.random.split(jax.random.key(2), trials)))
    changed = out.sum(1) > 0
    assert abs(changed.mean() - 0.2) < 5 * np.sqrt(0.2 * 0.8 / trials)
    assert all(np.array_equal(np.flatnonzero(r), np.flatnonzero(r)[0] + np.arange(2)) for r in out[changed])
    cat = np.asarray(jax.vmap(lambda k: ga.mutation(k, jnp.full(6, 3), 1, 1.0, 5))(jax.random.split(jax.random.key(3), 500)))
    assert np.all((cat != 3).sum(1) == 1) and set(np.unique(cat)) == {0, 1, 2, 3, 4}


def test_survival_keeps_the_best_of_parents_and_children():
    s = ga.genetic_cnn(genetic.GeneticSpace((4,)), population=4)
    state = s.init(jax.random.key(0))
    g0, state = s.ask(jax.random.key(1), state)
    f0 = jnp.array([1.0, 5.0, 3.0, 2.0])
    state, _ = s.tell(None, g0, f0, state)
    g1, _ = s.ask(jax.random.key(2), state)
    f1 = jnp.array([4.0, 0.0, 6.0, 2.5])
    state, _ = s.tell(None, g1, f1, state)
    np.testing.assert_array_equal(np.sort(np.asarray(state.fitness)), [3.0, 4.0, 5.0, 6.0])
    allg = np.concatenate([np.asarray(g0), np.asarray(g1)])
    allf = np.concatenate([f0, f1])
    for g, f in zip(np.asarray(state.genomes), np.asarray(state.fitness)):
        assert any(np.array_equal(g, allg[i]) for i in np.flatnonzero(allf == f))


def test_genetic_space_codec():
    space = genetic.GeneticSpace((4,))
    g = genetic.from_string(space, "1-01-001")
    np.testing.assert_array_equal(g, [1, 0, 1, 0, 0, 1])
    a = genetic.adjacency(space, g)[0]
    assert a[0, 1] == 1 and a[1, 2] == 1 and a[2, 3] == 1 and a.sum() == 3
    two = genetic.GeneticSpace((4, 5))
    assert two.length == 6 + 10
    k = genetic.sample(two, jax.random.key(0))
    assert genetic.to_string(two, genetic.from_string(two, genetic.to_string(two, k))) == genetic.to_string(two, k)
    with pytest.raises(ValueError, match="node 3: group '0' must be 2 bits"):
        genetic.from_string(space, "1-0-001")
    with pytest.raises(ValueError, match="bit 2 is 2"):
        genetic.check(space, [1, 0, 2, 0, 0, 1])
    with pytest.raises(ValueError, match="2 stages"):
        genetic.from_string(space, "1-01-001_1")


def test_genetic_network_follows_the_papers_node_rules():
    key = jax.random.key(0)
    from jnas import train

    # 4 nodes, code "0-10-000": only node 1 -> node 3; nodes 2 and 4 are isolated and dropped.
    net, g = train.realise("genetic", "0-10-000", 10, C=4)
    v = net.init(key, jnp.zeros((2, 16, 16, 1)), np.asarray(g), train=False)
    assert sorted(v["params"]) == ["classifier", "stage0_input", "stage0_node1", "stage0_node3", "stage0_output"]
    # The default input feeds node 1 (no inputs); node 3 (no outputs) feeds the default output.
    x = jax.random.normal(key, (2, 16, 16, 1))
    p, bs = v["params"], v["batch_stats"]

    def block(name, h):
        from jnas.nets.genetic import ConvBNReLU

        return ConvBNReLU(4).apply({"params": p[name], "batch_stats": bs[name]}, h, False)

    h = block("stage0_output", block("stage0_node3", block("stage0_node1", block("stage0_input", x))))
    h = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID").reshape(2, -1)
    ref = h @ p["classifier"]["kernel"] + p["classifier"]["bias"]
    np.testing.assert_allclose(net.apply(v, x, np.asarray(g), train=False), ref, rtol=1e-5, atol=1e-5)
