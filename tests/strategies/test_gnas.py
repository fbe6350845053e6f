"""GNAS: the accelerated intra-layer search against brute force over every choice of a layer
(synthetic path rewards and the real supernet), weight sharing against a standalone network
built from one path's weights, the layer-wise update's reach, and the multi-attribute loss
and attribute labels against numpy."""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jnas import data
from jnas.nets.tree import TreeSupernet
from jnas.spaces import tree

G = importlib.import_module("jnas.strategies.gnas")
SPACE = tree.TreeSpace((1, 3, 3, 3))


def _path_rewards(space, rng):
    """r_n = sum over layers of a random table indexed by n's path: depends on n's path only."""
    tables = [rng.normal(size=(space.blocks[l], space.blocks[l + 1])) for l in range(space.layers - 1)]

    def rewards(arch):
        path = tree.ancestors(space, arch)
        return np.array([sum(tables[l][path[l, n], path[l + 1, n]] for l in range(space.layers - 1))
                         for n in range(space.num_attributes)])

    return rewards


@pytest.mark.parametrize("seed", range(5))
def test_intra_layer_search_is_the_brute_force_optimum_of_the_layer(seed):
    rng = np.random.default_rng(seed)
    space = tree.TreeSpace((1, 3, 4, 3))
    rewards = _path_rewards(space, rng)
    arch = np.asarray(tree.sample(space, jax.random.key(seed)))
    for layer in (2, 1):
        new, table = G.intra_layer_search(space, arch, layer, rewards)
        _, best = G.brute_force_layer(space, arch, layer, rewards)
        assert np.mean(rewards(new)) == pytest.approx(best, abs=1e-12)
        assert table.shape == (space.blocks[layer], space.num_attributes)


def test_gnas_rewards_never_decrease_with_fixed_weights():
    rewards = _path_rewards(SPACE, np.random.default_rng(7))
    arch0 = np.asarray(tree.sample(SPACE, jax.random.key(1)))
    hist = G.gnas(SPACE, arch0, lambda a, l: None, rewards, sweeps=3)
    r = [np.mean(rewards(arch0))] + [h.reward for h in hist]
    assert all(b >= a - 1e-12 for a, b in zip(r, r[1:]))
    assert [h.layer for h in hist] == [2, 1] * 3  # top-down; the input layer has one choice


@pytest.fixture(scope="module")
def supernet():
    net = TreeSupernet(SPACE, (10, 2, 2), C=4)
    x = jax.random.normal(jax.random.key(0), (24, 8, 8, 1))
    params = G.init_params(net, jax.random.key(1), x, SPACE)
    return net, params, x


def test_intra_layer_search_on_the_supernet_matches_brute_force(supernet):
    net, params, x = supernet
    y = np.asarray(jax.random.randint(jax.random.key(2), (24, 3), 0, 2))
    correct = G.make_rewards(net)
    rewards = lambda a: np.asarray(correct(params, jnp.asarray(a), x, jnp.asarray(y)), float)  # noqa: E731
    arch = np.asarray(tree.sample(SPACE, jax.random.key(3)))
    for layer in (2, 1):
        new, _ = G.intra_layer_search(SPACE, arch, layer, rewards)
        _, best = G.brute_force_layer(SPACE, arch, layer, rewards)
        assert np.mean(rewards(new)) == pytest.approx(best)
        arch = new


def _standalone(params, x, arch, n):
    """Attribute n's logits from only the weights on its path, written with plain lax convs."""
    path = tree.ancestors(SPACE, arch)
    h = x
    for l in range(SPACE.layers - 2):
        i, j = path[l, n], path[l + 1, n]
        h = jax.lax.conv_general_dilated(h, params[f"conv{l}"][i, j], (1, 1), "SAME",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        h = jax.nn.relu(h + params[f"bias{l}"][i, j])
        h = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    i = path[-2, n]
    return h.reshape(len(x), -1) @ params[f"head{n}"][i] + params[f"head{n}_bias"][i]


def test_weight_sharing_uses_exactly_the_path_weights(supernet):
    net, params, x = supernet
    for seed in range(4):
        arch = np.asarray(tree.sample(SPACE, jax.random.key(10 + seed)))
        out = net.apply({"params": params}, x, jnp.asarray(arch))
        for n in range(3):
            np.testing.assert_allclose(out[n], _standalone(params, x, arch, n), rtol=1e-5, atol=1e-5)
    # gradients reach only the connections the tree uses
    arch = np.asarray(tree.from_string(SPACE, "0-0-0_1-1-2_0-0-1"))
    y = jnp.zeros((24, 3), jnp.int32)
    grads = jax.grad(lambda p: G.multi_attribute_loss(net.apply({"params": p}, x, jnp.asarray(arch)), y))(params)
    used = {(i, j) for j, i in enumerate(tree.layer_parents(SPACE, arch, 1))}
    for i in range(3):
        for j in range(3):
            nonzero = bool(jnp.any(grads["conv1"][i, j] != 0))
            assert nonzero == ((i, j) in used and j in (0, 1)), (i, j)  # block 2 of layer 2 feeds no head


def test_train_layer_trains_every_candidate_of_the_layer(supernet):
    net, params, x = supernet
    tx = optax.sgd(0.1)
    step = G.make_trainer(net, tx)
    arch = np.asarray(tree.from_string(SPACE, "0-0-0_0-0-0_0-0-0"))
    y = jnp.asarray(np.random.default_rng(0).integers(0, 2, (24, 3)))
    new, _, loss = G.train_layer(step, params, tx.init(params), SPACE, arch, 2, [(x, y)] * 12, jax.random.key(5))
    assert np.isfinite(loss)
    for i in range(3):  # every head connection (layer 2 -> heads) was drawn and trained
        for n in range(3):
            assert not np.allclose(new[f"head{n}"][i], params[f"head{n}"][i])
    for i, j in [(1, 1), (2, 2)]:  # layer-1 -> layer-2 connections off the fixed tree stay untouched
        np.testing.assert_array_equal(new["conv1"][i, j], params["conv1"][i, j])


def test_multi_attribute_loss_matches_numpy():
    rng = np.random.default_rng(0)
    logits = (rng.normal(size=(5, 10)), rng.normal(size=(5, 2)))
    y = np.stack([rng.integers(0, 10, 5), rng.integers(0, 2, 5)], 1)
    ref = 0.0
    for n, lg in enumerate(logits):
        p = np.exp(lg - lg.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        ref += -np.mean(np.log(p[np.arange(5), y[:, n]]))
    assert float(G.multi_attribute_loss(tuple(map(jnp.asarray, logits)), jnp.asarray(y))) == pytest.approx(ref, rel=1e-5)


def test_mnist_and_cifar_attributes():
    labels = np.arange(10)
    attrs, y = data.attributes("mnist", labels)
    assert [a.name for a in attrs] == ["digit", "odd", "ge5"]
    np.testing.assert_array_equal(y, [[d, d % 2, int(d >= 5)] for d in range(10)])
    _, y = data.attributes("cifar10", labels)  # airplane automobile bird cat deer dog frog horse ship truck
    np.testing.assert_array_equal(y[:, 1], [0, 0, 1, 1, 1, 1, 1, 1, 0, 0])
    with pytest.raises(ValueError, match="no multi-attribute task for 'svhn'"):
        data.attributes("svhn", labels)
