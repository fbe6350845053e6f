"""psoCNN operators: the difference on hand-made chains (the paper's cases), the velocity's
c_g draw rate, updates that reproduce gBest's (c_g = 1) or pBest's (c_g = 0) layer types,
invariants after every move, and pBest/gBest against a brute-force scan of the history."""

import importlib

import jax
import numpy as np
from scipy import stats

from jnas import strategies
from jnas.spaces import cnn_chain as cc

pso = importlib.import_module("jnas.strategies.psocnn")
SPACE = cc.ChainSpace(max_layers=10, max_channels=32, max_units=64)
S = lambda text: cc.from_string(text)  # noqa: E731
L = cc.Layer


def test_difference_hand_made():
    g, p = S("C8k3-Pmax-C16k5-F20-F30"), S("C4k3-C5k5-F7")
    feat, fc = pso.difference(g, p)
    # same type -> keep; other type -> gBest's layer; gBest longer -> add its layer
    assert feat == (pso.KEEP, L("maxpool"), L("conv", 16, 5))
    assert fc == (pso.KEEP, L("fc", 30))
    # P longer than gBest -> remove; pooling kinds are one type
    feat, fc = pso.difference(S("C8k3-Pavg"), S("C4k3-Pmax-C5k5-Pmax-F9"))
    assert feat == (pso.KEEP, pso.KEEP, pso.REMOVE, pso.REMOVE)
    assert fc == (pso.REMOVE,)


def test_update_hand_made_and_special_case():
    x = S("C4k3-C5k5-F7")
    v = ((pso.KEEP, L("maxpool"), L("conv", 16, 5), pso.NOTHING), (pso.REMOVE, pso.NOTHING, L("fc", 30)))
    assert cc.to_string(pso.update(SPACE, x, v)) == "C4k3-Pmax-C16k5-F30"


def _types(chain):
    return [("pool" if layer.kind in cc.POOLS else layer.kind) for layer in chain]


def test_move_follows_gbest_or_pbest_types():
    for i in range(60):
        kx, kp, kg, km = jax.random.split(jax.random.key(i), 4)
        x, p, g = (cc.sample(SPACE, k) for k in (kx, kp, kg))
        for c_g, target in ((1.0, g), (0.0, p)):
            y = pso.move(km, SPACE, x, p, g, c_g)
            assert _types(y) == _types(target)
            # where x already had the target's type at a position of a block, x's layer is kept
            for (bx, by) in zip(cc.blocks(x), cc.blocks(y)):
                for a, b in zip(bx, by):
                    if _types([a]) == _types([b]):
                        assert a == b


def test_moves_keep_chains_valid():
    space = cc.ChainSpace(input_size=8, max_layers=12, max_channels=16, max_units=16)  # 3 pools allowed
    for i in range(80):
        kx, kp, kg, km = jax.random.split(jax.random.key(100 + i), 4)
        x, p, g = (cc.sample(space, k) for k in (kx, kp, kg))
        y = pso.move(km, space, x, p, g, 0.5)
        cc.check(y, space)  # starts with conv, no conv/pool after fc, pooling limit
        for b in range(2):
            assert len(cc.blocks(y)[b]) <= max(len(cc.blocks(c)[b]) for c in (x, p, g))


def test_velocity_draws_gbest_with_probability_cg():
    n, c_g = 4000, 0.3
    g = (tuple(L("conv", 1, 1) for _ in range(n)), ())
    p = (tuple(L("fc", 1) for _ in range(n)), ())
    v = pso.velocity(jax.random.key(0), g, p, c_g)
    hits = sum(e.kind == "conv" for e in v[0])
    assert stats.binomtest(hits, n, c_g).pvalue > 1e-3, hits


def test_pbest_and_gbest_match_brute_force():
    strategy = pso.psocnn(SPACE, swarm=5, c_g=0.5)

    def objective(archs):  # a cheap deterministic fitness with ties broken by channels
        f = np.array([sum(r[1] for r in a) % 17 + 0.01 * len(cc.decode(a)) for a in archs], np.float32)
        return f, f

    trace = strategies.run(strategy, None, objective, 5 * 6, jax.random.key(3), progress=False)
    # replay the told history and compare the final state's bests with a scan of the trace
    k_init, k_run = jax.random.split(jax.random.key(3))
    state = strategy.init(k_init, None)
    for t, k in enumerate(jax.random.split(k_run, 6)):
        k_ask, k_tell = jax.random.split(k)
        archs, state = strategy.ask(k_ask, state, None)
        np.testing.assert_array_equal(archs, trace.archs[t])
        state, _ = strategy.tell(k_tell, archs, trace.fitness[t], state, None)
    fit = np.asarray(trace.fitness)  # (iterations, swarm)
    np.testing.assert_allclose(state.pbest_fit, fit.max(0))
    for j in range(5):
        np.testing.assert_array_equal(state.pbest[j], trace.archs[int(np.argmax(fit[:, j])), j])
    assert state.gbest_fit == fit.max()
    assert objective(state.gbest[None])[0][0] == fit.max()
