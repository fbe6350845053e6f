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


_SPLIT = """
import json, os
import jax
jax.config.update("jax_num_cpu_devices", 3)
jax.config.update("jax_compilation_cache_dir", os.environ["JNAS_TEST_COMPILATION_CACHE"])
import jax.numpy as jnp
from jnas.nets.nb201 import NB201Network
from jnas.oneshot import SearchConfig, single_path
from jnas.spaces import nb201 as space
key = jax.random.key(0)
x = jax.random.normal(key, (16, 8, 8, 3)); y = jax.random.randint(key, (16,), 0, 10)
net = NB201Network(C=2, N=1, select="switch", conv_grads="plain", cell_barrier=True)
state = single_path.init_state(key, net, x[:2], SearchConfig(total_steps=1))
cells = space.sample(jax.random.key(1), 5)
xs, ys = x.reshape(2, 8, 8, 8, 3), y.reshape(2, 8)
out = [single_path.make_inherited_accuracy(net, devices=d)(state.params, state.batch_stats, cells, x, xs, ys).tolist() for d in (1, 3)]
print(json.dumps({"local": jax.local_device_count(), "counts": out}))
"""


@pytest.mark.slow  # a fresh process compiling for three devices (about 25 s)
def test_cells_split_over_devices_give_the_one_device_counts():
    # A fresh process with three CPU devices: five cells padded to six, two per device.
    import json
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    run = subprocess.run([sys.executable, "-c", _SPLIT], capture_output=True, text=True, timeout=600, cwd=REPO,
                         env={**os.environ, "XLA_FLAGS": ""})
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["local"] == 3
    one, split = out["counts"]
    assert len(split) == 5 and split == one
    with pytest.raises(ValueError, match=r"devices must lie in 1\.\.1"):
        single_path.make_inherited_accuracy(os201.supernet(C=2, N=1), devices=2)
