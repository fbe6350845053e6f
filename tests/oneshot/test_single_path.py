import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jnas.nets.nb201 import NB201Network
from jnas.oneshot import SearchConfig, single_path
from jnas.oneshot import nb201 as os201

CELLS = jnp.array([[3, 0, 1, 2, 4, 3], [1, 1, 0, 3, 2, 2], [2, 2, 2, 2, 2, 2], [4, 3, 2, 1, 0, 4], [0, 3, 3, 1, 1, 0]])


KEY = jax.random.key(0)
X = jax.random.normal(KEY, (16, 8, 8, 3))
Y = jax.random.randint(jax.random.fold_in(KEY, 1), (16,), 0, 10)


@pytest.fixture(scope="module")
def supernet():
    # The properties below hold for any weights: freshly initialised ones, with batch
    # statistics moved off their initial values so that recalibration has to replace them.
    net = os201.supernet(C=2, N=1)
    state = single_path.init_state(KEY, net, X[:2], SearchConfig(total_steps=1))
    stats = jax.tree.map(lambda s: s + 0.5, state.batch_stats)
    return net, state._replace(batch_stats=stats), X, Y


@pytest.mark.slow  # compiles the training step (about 30 s)
def test_single_path_training_samples_cells_and_lowers_the_loss():
    net = os201.supernet(C=2, N=1)
    cfg = SearchConfig(total_steps=16, w_lr=0.05)
    state = single_path.init_state(KEY, net, X[:2], cfg)
    step = single_path.make_step(net, cfg)
    losses, cells = [], []
    for i in range(16):
        state, m = step(state, (X, Y), jax.random.fold_in(KEY, 100 + i))
        losses.append(float(m["loss"]))
        cells.append(np.asarray(m["cell"]))
    cells = np.array(cells)
    assert int(state.step) == 16
    assert len({tuple(c) for c in cells}) >= 14  # a new uniform cell (of 15,625) nearly every step
    assert set(np.unique(cells)) == set(range(5))
    assert np.mean(losses[-5:]) < np.mean(losses[:5])  # same batch, shared weights learn it


def test_recalibrated_statistics_are_the_calibration_batch_statistics(supernet):
    # With the evaluated batch as its own calibration set, inference mode with recalibrated
    # statistics must equal training mode (batch statistics) of the stand-alone network.
    net, state, x, _ = supernet
    standalone = NB201Network(C=2, N=1)
    v = {"params": state.params, "batch_stats": state.batch_stats}
    @jax.jit
    def both(cell):
        w = single_path.one_hot(cell)
        stats = single_path.recalibrate(net, state.params, state.batch_stats, w, x)
        return (net.apply({"params": state.params, "batch_stats": stats}, x, w, False),
                standalone.apply(v, x, cell, True, mutable=["batch_stats"])[0])

    for cell in CELLS[:3]:
        got, want = both(cell)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("mode", ["map", pytest.param("vmap", marks=pytest.mark.slow)])
def test_batched_inherited_accuracy_equals_a_loop_over_cells(supernet, mode):
    net, state, x, y = supernet
    xs, ys = x.reshape(2, 8, 8, 8, 3), y.reshape(2, 8)
    calib = x[::-1]
    correct = single_path.make_inherited_accuracy(net, mode)
    got = np.asarray(correct(state.params, state.batch_stats, CELLS, calib, xs, ys))
    @jax.jit
    def logits(cell):
        w = single_path.one_hot(cell)
        stats = single_path.recalibrate(net, state.params, state.batch_stats, w, calib)
        return net.apply({"params": state.params, "batch_stats": stats}, x, w, False)

    for cell, g in zip(CELLS, got):
        assert g == int((np.argmax(logits(cell), -1) == np.asarray(y)).sum())
    with pytest.raises(ValueError, match=r"unknown mode 'pmap'; valid modes are \['map', 'vmap'\]"):
        single_path.make_inherited_accuracy(net, "pmap")
