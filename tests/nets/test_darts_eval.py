"""DARTS's evaluation extras against closed forms: the auxiliary head's parameter count and
its loss in the trainer, drop path's scaling, cutout's square, and clear errors when a
network lacks what a training option needs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jnas import train
from jnas.data.pipeline import cutout
from jnas.nets import NB201Network
from jnas.nets.darts import DartsNetwork, EvalCell, drop_path
from jnas.data.datasets import DATASETS
from jnas.spaces import darts
from jnas.train.trainer import TrainConfig, make_init, make_train_step


def _count(tree) -> int:
    return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(tree))


def test_auxiliary_head_adds_its_closed_form_parameters_and_only_trains():
    arch = darts.from_string("DARTS_V2")
    C, layers, nc = 4, 3, 10  # reductions at cells 1 and 2: the head sees 8x8 maps
    x = jnp.zeros((2, 32, 32, 3))
    plain = jax.eval_shape(lambda: DartsNetwork(C, layers, nc).init(jax.random.key(0), x, arch))["params"]
    aux = jax.eval_shape(lambda: DartsNetwork(C, layers, nc, auxiliary=True).init(jax.random.key(0), x, arch))["params"]
    c_in = 4 * 4 * C  # the second reduction cell outputs 4 nodes of 4C channels
    head = c_in * 128 + 2 * 128 + 128 * 768 * 4 + 2 * 768 + 768 * nc + nc
    assert _count(aux) - _count(plain) == head == _count(aux["auxiliary"])
    net = DartsNetwork(C, layers, nc, auxiliary=True)
    def sown(train):
        v = net.init(jax.random.key(0), x, arch)
        return net.apply(v, x, arch, train=train, mutable=["batch_stats", "intermediates"])[1]

    assert jax.eval_shape(lambda: sown(True))["intermediates"]["aux_logits"][0].shape == (2, nc)
    assert "aux_logits" not in jax.eval_shape(lambda: sown(False)).get("intermediates", {})


def test_trainer_loss_is_main_plus_weighted_auxiliary():
    arch = darts.from_string("DARTS_V1")
    net = DartsNetwork(2, 3, 10, auxiliary=True)
    cfg = TrainConfig(epochs=1, batch_size=4, augment=False, aux_weight=0.4)
    data_spec = DATASETS["cifar10"]
    tx = optax.sgd(0.0)
    key = jax.random.key(1)
    x = np.asarray(jax.random.randint(key, (4, 32, 32, 3), 0, 256), np.uint8)
    y = np.array([0, 1, 2, 3])
    a = train.trainer.arch_arg(net, arch)
    state = make_init(net, tx, data_spec, cfg)(key, a, x[:2])
    _, m = make_train_step(net, tx, data_spec, cfg, 1)(state, a, x, y, key)
    xn = train.trainer._inputs(jnp.asarray(x), data_spec, None)
    logits, sown = jax.jit(lambda v: net.apply(v, xn, arch, train=True, mutable=["batch_stats", "intermediates"]))(
        {"params": state.params, "batch_stats": state.batch_stats})
    ce = lambda z: optax.softmax_cross_entropy_with_integer_labels(z, y).mean()
    assert float(m["loss"]) == pytest.approx(float(ce(logits) + 0.4 * ce(sown["intermediates"]["aux_logits"][0])), rel=1e-5)


def test_drop_path_keeps_or_zeroes_whole_examples_and_is_unbiased():
    x = jnp.ones((4000, 3, 3, 2))
    y = drop_path(x, 0.25, jax.random.key(0))
    per = np.asarray(y).reshape(4000, -1)
    assert np.all((per == 0) | np.isclose(per, 1 / 0.75, rtol=1e-6))
    assert (per.min(1) == per.max(1)).all()  # whole examples
    assert per[:, 0].mean() == pytest.approx(1.0, abs=0.05)  # E = x; sd of the mean 0.009
    np.testing.assert_array_equal(drop_path(x, 0.0, jax.random.key(0)), x)


def test_cutout_zeroes_one_clipped_square():
    x = jnp.ones((64, 16, 16, 1))
    z = np.asarray(cutout(jax.random.key(3), x, 6))[..., 0] == 0
    for img in z:
        rows, cols = np.flatnonzero(img.any(1)), np.flatnonzero(img.any(0))
        assert img.sum() == len(rows) * len(cols)  # one rectangle
        assert np.all(np.diff(rows) == 1) and np.all(np.diff(cols) == 1)
        assert 3 <= len(rows) <= 6 and 3 <= len(cols) <= 6  # side 6, clipped by at most half at a border
    assert any(z[i].sum() == 36 for i in range(64))


def test_training_options_a_network_lacks_are_refused_by_name():
    data_spec = DATASETS["cifar10"]
    net = NB201Network(C=4, N=1, num_classes=10)
    with pytest.raises(ValueError, match="drop_path needs a network whose __call__ takes drop_path"):
        make_train_step(net, optax.sgd(0.1), data_spec, TrainConfig(epochs=1, drop_path=0.2), 1)
    with pytest.raises(ValueError, match="unknown DARTS genotype 'DARTS_V3'"):
        darts.from_string("DARTS_V3")
    with pytest.raises(ValueError, match="0 <= drop_path < 1"):
        TrainConfig(drop_path=1.0)


def test_drop_path_reaches_every_op_but_the_identity_in_training_only():
    # a normal cell of identities only (skip_connect from nodes 0 and 1) is untouched; other ops are dropped
    ident = darts.from_string("DARTS_V2")[0].copy()
    ident[:, :, 1] = darts.OPS.index("skip_connect")
    ident[:, 0, 0], ident[:, 1, 0] = 0, 1
    s = jax.random.normal(jax.random.key(0), (8, 8, 8, 4))
    for genotype, changes in ((ident, False), (darts.from_string("DARTS_V2")[0], True)):
        cell = EvalCell(4, reduction=False, reduction_prev=False)
        v = cell.init(jax.random.key(0), s, s, genotype, False)
        run = jax.jit(lambda rate, train: cell.apply(v, s, s, genotype, train, rate, rngs={"dropout": jax.random.key(5)},
                                                     mutable=["batch_stats"])[0], static_argnums=1)
        assert (not np.allclose(run(0.5, True), run(0.0, True), atol=1e-6)) == changes
        np.testing.assert_array_equal(run(0.5, False), run(0.0, False))


@pytest.mark.parametrize("impl", ["shifted", "dense"])
@pytest.mark.parametrize("cls", ["SepConv", "DilConv"])
def test_depthwise_forms_of_the_ops_equal_grouped_ones_with_the_same_parameters(cls, impl):
    from jnas.nets import darts as D

    x = jax.random.normal(jax.random.key(0), (2, 9, 9, 6))
    for k, stride in ((3, 1), (5, 2)):
        a, b = getattr(D, cls)(6, k, stride, depthwise="xla"), getattr(D, cls)(6, k, stride, depthwise=impl)
        v = a.init(jax.random.key(1), x, False)
        assert jax.tree.map(jnp.shape, v) == jax.tree.map(jnp.shape, b.init(jax.random.key(1), x, False))
        np.testing.assert_allclose(b.apply(v, x, False), a.apply(v, x, False), atol=1e-5)
    with pytest.raises(ValueError, match="unknown depthwise implementation 'cudnn'"):
        getattr(D, cls)(6, 3, depthwise="cudnn").init(jax.random.key(1), x, False)
