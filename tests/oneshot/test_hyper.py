"""Hypernetworks (SMASH, GHN): generated weights fit the stand-alone network, follow the
cell's graph, score like shared weights would, and train."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jnas.nets.nb201 import NB201Network
from jnas.oneshot import SearchConfig, hyper, single_path
from jnas.oneshot import nb201 as os201

KEY = jax.random.key(0)
X = jax.random.normal(KEY, (16, 8, 8, 3))
Y = jax.random.randint(jax.random.fold_in(KEY, 1), (16,), 0, 10)
CELL = jnp.array([3, 0, 1, 2, 4, 3])


@pytest.fixture(scope="module")
def net_params():
    net = os201.supernet(C=2, N=1)
    return net, net.init({"params": KEY, "dropout": KEY}, X[:2], single_path.one_hot(CELL))


@pytest.mark.parametrize("kind", hyper.KINDS)
def test_generated_weights_have_the_standalone_networks_shapes_and_depend_on_the_cell(net_params, kind):
    net, v = net_params
    h = hyper.HyperNet(kind, hidden=8)
    t = h.init(KEY, v["params"])
    standalone = jax.eval_shape(lambda: NB201Network(C=2, N=1).init(KEY, X[:2], CELL))["params"]
    p = h.params(t, CELL)
    assert jax.tree.structure(p) == jax.tree.structure(standalone)
    assert [a.shape for a in jax.tree.leaves(p)] == [a.shape for a in jax.tree.leaves(standalone)]
    other = h.params(t, CELL.at[0].set(1))
    k = lambda q: q["cell_2_0"]["edge_4"]["nor_conv_3x3"]["conv"]["kernel"]
    assert float(jnp.abs(k(p) - k(other)).max()) > 1e-4  # a change on edge 0 reaches edge 4's kernel
    np.testing.assert_array_equal(p["classifier"]["kernel"], v["params"]["classifier"]["kernel"])  # shared, not generated
    with pytest.raises(ValueError, match="unknown hypernetwork 'mlp'"):
        hyper.HyperNet("mlp")


def test_ghn_gives_ops_in_the_same_graph_position_the_same_kernel_and_smash_does_not(net_params):
    # Only edges 0 (0->1) and 3 (0->3) are convs: both read the cell input, and nothing
    # live follows either, so their graph nodes are alike and GHN's shared decoder must give
    # them equal kernels; SMASH reads each kernel out separately.
    _, v = net_params
    cell = jnp.array([3, 0, 0, 3, 0, 0])
    kern = lambda p, e: p["cell_1_0"][f"edge_{e}"]["nor_conv_3x3"]["conv"]["kernel"]
    ghn = hyper.HyperNet("ghn", hidden=8)
    p = ghn.params(ghn.init(KEY, v["params"]), cell)
    np.testing.assert_array_equal(kern(p, 0), kern(p, 3))
    assert float(jnp.abs(kern(p, 0) - kern(p, 2)).max()) > 1e-4  # edge 2 (1->2) has a live predecessor
    smash = hyper.HyperNet("smash", hidden=8)
    q = smash.params(smash.init(KEY, v["params"]), cell)
    assert float(jnp.abs(kern(q, 0) - kern(q, 3)).max()) > 1e-4


def test_hypernetwork_scoring_equals_the_generated_networks_one_by_one(net_params):
    # The batched inherited accuracy with a hypernetwork equals running each cell's
    # generated weights through the supernet, and the switch network gives the same counts.
    net, v = net_params
    h = hyper.HyperNet("ghn", hidden=8)
    t = h.init(KEY, v["params"])
    cells = jnp.array([[3, 0, 1, 2, 4, 3], [2, 2, 2, 2, 2, 2], [0, 3, 3, 1, 1, 0]])
    xs, ys = X.reshape(2, 8, 8, 8, 3), Y.reshape(2, 8)
    got = single_path.make_inherited_accuracy(net, hyper=h)(t, v["batch_stats"], cells, X, xs, ys)
    switch = NB201Network(C=2, N=1, select="switch", conv_grads="plain", cell_barrier=True)
    got_switch = single_path.make_inherited_accuracy(switch, hyper=h)(t, v["batch_stats"], cells, X, xs, ys)
    np.testing.assert_array_equal(got, got_switch)

    @jax.jit
    def hits(cell):
        w, p = single_path.one_hot(cell), h.params(t, cell)
        stats = single_path.recalibrate(net, p, v["batch_stats"], w, X)
        return (jnp.argmax(net.apply({"params": p, "batch_stats": stats}, X, w, False), -1) == Y).sum()

    assert [int(g) for g in got] == [int(hits(c)) for c in cells]


@pytest.mark.parametrize("kind", ["ghn", pytest.param("smash", marks=pytest.mark.slow)])  # each compiles a step (~16 s)
def test_hypernetwork_trains_on_a_fixed_batch(kind):
    net = os201.supernet(C=2, N=1)
    cfg = SearchConfig(total_steps=20, w_lr=0.05)
    h = hyper.HyperNet(kind, hidden=8)
    state = single_path.init_state(KEY, net, X[:2], cfg, hyper=h)
    step = single_path.make_step(net, cfg, hyper=h)
    losses = []
    for i in range(20):
        state, m = step(state, (X, Y), jax.random.fold_in(KEY, 100 + i))
        losses.append(float(m["loss"]))
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    moved = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), state.params["encoder"],
                         single_path.init_state(KEY, net, X[:2], cfg, hyper=h).params["encoder"])
    assert max(jax.tree.leaves(moved)) > 0  # the encoder itself learns, not only the shared weights
