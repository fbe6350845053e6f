"""MCTS: dense node ids, UCB1 by hand, tree growth of one node per query, and a toy tree
whose best leaf is known."""

import importlib

import jax
import jax.numpy as jnp
import numpy as np

from jnas import strategies as S

mc = importlib.import_module("jnas.strategies.mcts")


def test_node_ids_are_a_bijection_of_prefixes():
    ids = set()
    for d in range(4):
        for code in range(5**d):
            digits = [(code // 5 ** (d - 1 - i)) % 5 for i in range(d)] + [0] * (6 - d)
            ids.add(int(mc.node_id(jnp.array(digits), d)))
    assert ids == set(range(1 + 5 + 25 + 125))


def test_one_new_node_per_query_and_ucb_by_hand():
    s = mc.mcts(c=1.0, reward_scale=1.0)
    state = s.init(None)
    rewards = {}
    for t in range(5):  # the first five queries expand the root's five children, in some order
        arch, state = s.ask(jax.random.key(t), state)
        first = int(arch[0, 0])
        assert first not in rewards
        rewards[first] = float(t)
        state, _ = s.tell(None, arch, jnp.array([float(t)]), state)
        assert int(state.visits[0]) == t + 1 and int(state.visits.sum()) == 2 * (t + 1)  # root + one new node
    # Now every child of the root has one visit: UCB = r + sqrt(ln 5 / 1); the best is the max reward.
    arch, state2 = s.ask(jax.random.key(9), state)
    assert int(arch[0, 0]) == max(rewards, key=rewards.get)
    ucb = {o: r + np.sqrt(np.log(5) / 1) for o, r in rewards.items()}
    assert max(ucb, key=ucb.get) == int(arch[0, 0])


def test_finds_the_best_leaf_of_a_toy_tree():
    target = jnp.array([4, 1, 3, 0, 2, 2])

    def toy(archs):  # reward grows with the matching prefix length; the target leaf scores 100
        match = jnp.cumprod(archs == target, axis=-1).sum(-1)
        f = 100.0 * match / 6
        return f, f

    found = []
    for seed in range(5):
        trace = S.search(mc.mcts(c=0.5), None, toy, 400, jax.random.key(seed))  # c < sqrt(2): less exploration
        found.append(float(np.asarray(trace.fitness).max()))
    rs = [float(np.asarray(S.search(S.get("rs"), None, toy, 400, jax.random.key(s)).fitness).max()) for s in range(5)]
    assert min(found) > 99.99 and np.mean(rs) < 99.0  # random search rarely finds 1 of 15,625 in 400
