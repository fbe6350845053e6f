"""DARTS supernets: equivalence with the standalone network, op shapes, discretisation."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jnas import bilevel
from jnas.nets.darts import DartsSupernet, DilConv, FactorizedReduce, SearchCell, SepConv
from jnas.nets.layers import channel_shuffle
from jnas.nets.nb201 import NB201Network
from jnas.oneshot import darts_cells, pdarts
from jnas.oneshot import nb201 as os201
from jnas.spaces import darts as dspace


def test_one_hot_alpha_reproduces_the_standalone_network(key):
    x = jax.random.normal(key, (4, 16, 16, 3))
    net = os201.supernet(C=4, N=1)
    standalone = NB201Network(C=4, N=1)
    init = jax.jit(standalone.init)  # one compilation of each serves both cells
    ref_fn = jax.jit(lambda v, arch: standalone.apply(v, x, arch, mutable=["batch_stats"])[0])
    out_fn = jax.jit(lambda v, arch: net.apply(v, x, os201.mixing_weights({"ops": 1e3 * jax.nn.one_hot(arch, 5)}), mutable=["batch_stats"])[0])
    for arch in ([3, 0, 1, 2, 4, 3], [1, 1, 0, 3, 2, 2]):
        arch = jnp.array(arch)
        v = init(key, x, arch)  # same parameter tree as the supernet
        ref, out = ref_fn(v, arch), out_fn(v, arch)
        np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6)
        assert jnp.all(os201.discretize({"ops": jax.nn.one_hot(arch, 5)}) == arch)


def test_finite_difference_matches_exact_second_order_on_a_small_smooth_network(key):
    # A 2-layer mixed-op network with smooth ops (tanh, sin, identity, softplus), float32, DARTS's eps.
    k1, k2, k3, k4 = jax.random.split(key, 4)
    xs, xv = jax.random.normal(k1, (32, 6)), jax.random.normal(k2, (32, 6))
    ys, yv = jnp.arange(32) % 3, (jnp.arange(32) + 1) % 3
    ops = (jnp.tanh, jnp.sin, lambda h: h, jax.nn.softplus)

    def loss(w, a, x, y):
        h = x @ w["w1"]
        h = sum(p * f(h) for p, f in zip(jax.nn.softmax(a), ops))
        return optax.softmax_cross_entropy_with_integer_labels(h @ w["w2"], y).mean()

    w = {"w1": jax.random.normal(k3, (6, 16)) / 2.5, "w2": jax.random.normal(k4, (16, 3)) / 4}
    a = jnp.array([0.1, -0.2, 0.3, 0.0])
    prob = bilevel.Problem(outer=lambda a, w: loss(w, a, xv, yv), inner=lambda a, w: loss(w, a, xs, ys))
    exact = bilevel.second_order(0.5)(prob, a, w, key)
    fd = bilevel.finite_difference(0.5)(prob, a, w, key)
    first = bilevel.first_order()(prob, a, w, key)
    err = float(jnp.linalg.norm(fd - exact) / jnp.linalg.norm(exact))
    assert err < 1e-2, err
    assert float(jnp.linalg.norm(first - exact) / jnp.linalg.norm(exact)) > 1e-2  # the second-order term matters


@pytest.mark.slow
def test_finite_difference_converges_to_exact_on_the_nb201_supernet(key):
    # ReLU kinks make DARTS's eps = 0.01/||v|| inaccurate on real supernets; with a tiny eps in
    # float64 the central difference must match the jvp product (checks the estimator's algebra).
    with jax.enable_x64(True):
        x = jax.random.normal(key, (4, 8, 8, 3), jnp.float64)
        x2 = jax.random.normal(jax.random.key(1), (4, 8, 8, 3), jnp.float64)
        y = jnp.arange(4)
        net = os201.supernet(C=4, N=1)
        alpha = {"ops": 0.1 * jax.random.normal(key, (6, 5), jnp.float64)}
        v = net.init(key, x, os201.mixing_weights(alpha))
        params = jax.tree.map(lambda p: p.astype(jnp.float64), v["params"])

        def loss(w, a, xb):
            logits = net.apply({"params": w, "batch_stats": v["batch_stats"]}, xb, os201.mixing_weights(a), True, mutable=["batch_stats"])[0]
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        prob = bilevel.Problem(outer=lambda a, w: loss(w, a, x2), inner=lambda a, w: loss(w, a, x))
        exact = bilevel.second_order(0.025)(prob, alpha, params, key)["ops"]
        fd = bilevel.finite_difference(0.025, scale=1e-6)(prob, alpha, params, key)["ops"]
        unrolled = bilevel.unrolled(1, 0.025)(prob, alpha, params, key)["ops"]
        assert float(jnp.linalg.norm(fd - exact) / jnp.linalg.norm(exact)) < 1e-6
        assert float(jnp.linalg.norm(unrolled - exact) / jnp.linalg.norm(exact)) < 1e-10


def test_edge_normalisation_and_pruned_ops(key):
    alpha = os201.init_alpha(key, edge_norm=True, scale=1.0)
    mask = os201.full_mask().at[:, 0].set(False)
    w = os201.mixing_weights(alpha, mask)
    assert jnp.all(w[:, 0] == 0)
    per_edge = w.sum(1)  # = softmax(beta) over the edges entering each node
    for edges in os201.NODE_EDGES:
        np.testing.assert_allclose(per_edge[np.array(edges)].sum(), 1.0, rtol=1e-6)
    beta = np.asarray(alpha["edges"])
    e = np.array(os201.NODE_EDGES[2])
    np.testing.assert_allclose(per_edge[e], np.exp(beta[e]) / np.exp(beta[e]).sum(), rtol=1e-5)


def test_channel_shuffle_matches_the_nchw_reference():
    x = np.arange(2 * 12).reshape(2, 1, 1, 12).astype(np.float32)
    ref = x.transpose(0, 3, 1, 2).reshape(2, 3, 4, 1, 1).transpose(0, 2, 1, 3, 4).reshape(2, 12, 1, 1).transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(channel_shuffle(jnp.asarray(x), 3), ref)


def test_partial_channel_supernet_shapes_and_bypass(key):
    x = jax.random.normal(key, (2, 16, 16, 3))
    net = os201.supernet(C=8, N=1, partial=4)
    alpha = os201.init_alpha(key, edge_norm=True)
    w = os201.mixing_weights(alpha)
    v = jax.eval_shape(net.init, key, x, w)  # shapes only: traced, not compiled
    # Convs on edges see C/4 channels.
    assert v["params"]["cell_0_0"]["edge_0"]["nor_conv_3x3"]["conv"]["kernel"].shape == (3, 3, 2, 2)
    assert jax.eval_shape(lambda v: net.apply(v, x, w, mutable=["batch_stats"])[0], v).shape == (2, 10)
    with pytest.raises(ValueError, match="partial=3"):
        jax.eval_shape(os201.supernet(C=8, N=1, partial=3).init, key, x, w)


@pytest.mark.parametrize("module,stride,out", [
    (FactorizedReduce(12), None, (2, 8, 8, 12)),
    (SepConv(10, 3, 1), None, (2, 16, 16, 10)),
    (SepConv(10, 5, 2), None, (2, 8, 8, 10)),
    (DilConv(10, 3, 1), None, (2, 16, 16, 10)),
    (DilConv(10, 5, 2), None, (2, 8, 8, 10)),
])
def test_darts_op_shapes(key, module, stride, out):
    x = jax.random.normal(key, (2, 16, 16, 6))
    v = module.init(key, x, True)
    assert module.apply(v, x, True, mutable=["batch_stats"])[0].shape == out


def test_factorized_reduce_reads_both_pixel_grids(key):
    x = jnp.zeros((1, 4, 4, 2)).at[0, 1, 1, 0].set(1.0)  # only on the odd grid
    fr = FactorizedReduce(4, affine=False)
    v = fr.init(key, x, False)
    y = fr.apply(v, x, False)  # eval mode: BN with init running stats is the identity (up to eps)
    assert float(jnp.abs(y[..., :2]).max()) == 0.0 and float(jnp.abs(y[..., 2:]).max()) > 0.0


def test_reduction_cell_and_supernet_shapes(key):
    # Shapes only, so jax.eval_shape traces init and apply without compiling them.
    w = darts_cells.mixing_weights(darts_cells.init_alpha(key))
    s0, s1 = jnp.ones((2, 16, 16, 12)), jnp.ones((2, 16, 16, 12))
    for reduction, reduction_prev, s0_in, side in ((False, False, s0, 16), (True, False, s0, 8), (False, True, jnp.ones((2, 32, 32, 6)), 16)):
        cell = SearchCell(4, reduction, reduction_prev)
        out, v = jax.eval_shape(lambda k: cell.init_with_output(k, s0_in, s1, w["normal"], True), key)
        assert out.shape == (2, side, side, 16)  # concat of 4 nodes of C=4 channels
    net = DartsSupernet(C=4, layers=3)
    x = jnp.ones((2, 16, 16, 3))
    out, v = jax.eval_shape(lambda k: net.init_with_output(k, x, w), key)
    assert out.shape == (2, 10)
    # Cells 1 and 2 are reductions with doubled width: 4 -> 8 -> 16 channels per node.
    assert v["params"]["cell_2"]["preprocess1"]["conv"]["kernel"].shape == (1, 1, 32, 16)
    with pytest.raises(ValueError, match=r"weights\['reduce'\] must have shape \(14, 8\)"):
        jax.eval_shape(net.init, key, x, {"normal": w["normal"]})


def test_darts_discretisation_matches_brute_force(key):
    alpha = darts_cells.init_alpha(key, scale=1.0)
    arch = darts_cells.discretize(alpha)
    w = {c: np.asarray(v) for c, v in darts_cells.mixing_weights(alpha).items()}
    for c, name in enumerate(dspace.CELLS):
        for n, j in enumerate(range(2, 6)):
            def strength(i):
                return w[name][dspace.edge_index(i, j), 1:].max()
            best = max(itertools.combinations(range(j), 2), key=lambda p: strength(p[0]) + strength(p[1]))
            assert tuple(arch[c, n, :, 0]) == best
            for i, op in arch[c, n]:
                assert op == 1 + np.argmax(w[name][dspace.edge_index(i, j), 1:])


def test_darts_genotype_codec():
    arch = dspace.from_string(dspace.DARTS_V2)
    assert dspace.to_string(arch) == dspace.DARTS_V2
    assert arch[0, 3, 1].tolist() == [2, dspace.OPS.index("dil_conv_3x3")]
    bad_op = dspace.DARTS_V2.replace("dil_conv_3x3", "dil_conv_9x9")
    with pytest.raises(ValueError, match=r"unknown op 'dil_conv_9x9' at position \d+"):
        dspace.from_string(bad_op)
    with pytest.raises(ValueError, match="input 5 must be in 0..4"):
        dspace.from_string(dspace.DARTS_V2.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', 5)"))
    with pytest.raises(ValueError, match="both inputs are node 1"):
        dspace.from_string(dspace.DARTS_V2.replace("('sep_conv_3x3', 0), ('sep_conv_3x3', 1)", "('sep_conv_3x3', 1), ('sep_conv_3x3', 1)", 1))


def test_pdarts_pruning_and_skip_limit():
    logits = jnp.array([[0.0, 3.0, 1.0, 2.0, -1.0]] * 3 + [[0.0, 1.0, 5.0, 2.0, 0.5]] * 3)
    mask = pdarts.prune_ops(logits, os201.full_mask(), keep=2)
    assert mask.sum(1).tolist() == [2] * 6 and bool(mask[0, 1]) and bool(mask[0, 3]) and bool(mask[3, 2])
    # Three edges prefer skip (op 1); allow two: the two with the largest skip weight keep it.
    logits = logits.at[1, 1].set(4.0).at[2, 1].set(2.5)
    arch = pdarts.limit_skips(logits, os201.full_mask(), max_skips=2, skip=1)
    assert arch.tolist() == [1, 1, 3, 2, 2, 2]  # edge 2: skip 2.5 is weakest -> next best op 3
    assert pdarts.drop_rate(0.4, 0) == 0.4 and abs(pdarts.drop_rate(0.4, 5) - 0.4 * np.exp(-1.0)) < 1e-12
    with pytest.raises(ValueError, match="keep must be in 1..5"):
        pdarts.prune_ops(logits, os201.full_mask(), keep=0)


def test_darts_edge_normalisation_sums_to_one_per_node(key):
    w = darts_cells.mixing_weights(darts_cells.init_alpha(key, edge_norm=True, scale=1.0))
    for c in dspace.CELLS:
        per_edge = np.asarray(w[c]).sum(1)
        for edges in darts_cells.NODE_EDGES:
            np.testing.assert_allclose(per_edge[np.array(edges)].sum(), 1.0, rtol=1e-6)


@pytest.mark.slow  # about 3 minutes of compiling (the dense Hessian and the power loop); tests/bilevel/test_curvature.py is the fast check
def test_alpha_curvature_is_the_dense_hessians_dominant_eigenvalue(key):
    # RobustDARTS's signal on a tiny NB201 supernet: power iteration on jvp-of-grad products
    # against the eigendecomposition of the full 30x30 Hessian of the same loss in alpha.
    from jnas.oneshot import SearchConfig, init_state, make_alpha_curvature, search_loss

    k1, k2 = jax.random.split(key)
    x, y = jax.random.normal(k1, (8, 8, 8, 3)), jnp.arange(8) % 10
    net = os201.supernet(C=4, N=1)
    alpha = {"ops": 0.5 * jax.random.normal(k2, (6, 5))}
    state = init_state(key, net, alpha, os201.mixing_weights, x[:2], SearchConfig(total_steps=1))
    mask = os201.full_mask()
    eig = make_alpha_curvature(net, os201.mixing_weights, iters=500, tol=1e-7)(state, (x, y), key, mask)
    k_loss = jax.random.split(key)[0]
    loss = search_loss(net, os201.mixing_weights)
    f = lambda ops: loss(state.params, state.batch_stats, {"ops": ops.reshape(6, 5)}, (x, y), k_loss, 0.0, mask)[0]
    dense = np.linalg.eigvalsh(np.asarray(jax.jit(jax.hessian(f))(alpha["ops"].ravel()), np.float64))
    top = dense[np.argmax(np.abs(dense))]
    assert abs(top) > 1e-4, dense  # a non-trivial curvature to compare
    np.testing.assert_allclose(float(eig.value), top, rtol=1e-3)


def test_darts_es_rule_fires_where_worked_out_by_hand():
    from jnas.oneshot.robust import early_stop

    # a step from 1 to 3 at epoch 21: the centred average of epoch 19 (epochs 17-21) is 1.4,
    # first above 1.3 x that of epoch 14; known at epoch 21 -> return epoch 14's cell
    ev = [1.0] * 20 + [3.0] * 30
    assert tuple(early_stop(ev)) == (14, 21)
    assert early_stop([1.0] * 50) is None  # flat: never
    assert early_stop([1.0 + 0.005 * e for e in range(50)]) is None  # slow drift: the ratio stays under 1.3
    assert early_stop(ev, start=15) == (15, 22)  # a later start compares later windows
    with pytest.raises(ValueError, match="odd window"):
        early_stop(ev, window=4)
    with pytest.raises(ValueError, match="epochs \\[3\\]"):
        early_stop([1.0, 1.0, float("nan")])


def test_warm_up_steps_leave_alpha_alone_then_move_it(key):
    # Two compiled programs (with and without the alpha step), picked on the host by the step count.
    from jnas.oneshot import SearchConfig, init_state, make_step

    net = os201.supernet(C=2, N=1)
    x = jax.random.normal(key, (4, 8, 8, 3))
    batch = (x, jnp.array([0, 1, 2, 3]))
    conf = SearchConfig(total_steps=4, warmup_steps=1)
    state = init_state(key, net, os201.init_alpha(key), os201.mixing_weights, x[:2], conf)
    step = make_step(net, os201.mixing_weights, conf)
    a0 = state.alpha["ops"]
    state, _ = step(state, batch, batch, key, 0.0, os201.full_mask())
    assert jnp.array_equal(state.alpha["ops"], a0) and int(state.step) == 1
    state, m = step(state, batch, batch, key, 0.0, os201.full_mask())
    assert not jnp.array_equal(state.alpha["ops"], a0) and jnp.isfinite(m["val_loss"])
    with pytest.raises(ValueError, match=r"unknown conv_library 'mkl'; valid choices are \['ynnpack', 'eigen'\]"):
        init_state(key, net, os201.init_alpha(key), os201.mixing_weights, x[:2], SearchConfig(total_steps=1, conv_library="mkl"))


def test_one_shot_accuracy_equals_each_standalone_cell_on_batch_statistics(key):
    # Brute force: every cell as its own network (same parameters), batch by batch, in training mode.
    net, standalone = os201.supernet(C=2, N=1), NB201Network(C=2, N=1)
    x = jax.random.normal(key, (13, 8, 8, 3))  # 3 batches of 4; the 13th image is dropped
    y = jax.random.randint(jax.random.fold_in(key, 1), (13,), 0, 10)
    v = net.init(key, x[:4], os201.mixing_weights(os201.init_alpha(key)))
    archs = jnp.array([[3, 0, 1, 2, 4, 3], [1, 1, 0, 3, 2, 2], [0, 0, 0, 0, 0, 0], [2, 2, 2, 2, 2, 2], [4, 3, 2, 1, 0, 4]])
    got = os201.one_shot_accuracy(net, v["params"], v["batch_stats"], archs, x, y, batch=4, chunk=2, progress=False)
    logits = jax.jit(lambda arch, xb: standalone.apply(v, xb, arch, True, mutable=["batch_stats"])[0])
    want = [np.mean([np.mean(np.argmax(logits(a, x[b:b + 4]), -1) == y[b:b + 4]) for b in (0, 4, 8)]) for a in archs]
    np.testing.assert_allclose(got, want, atol=1 / 12 + 1e-6)  # at most one near-tied image may flip
    with pytest.raises(ValueError, match=r"shape \(6,\) or \(n, 6\)"):
        os201.one_shot_accuracy(net, v["params"], v["batch_stats"], archs[:, :, None], x, y, batch=4)
    with pytest.raises(ValueError, match="at least batch=16 images; got 13"):
        os201.one_shot_accuracy(net, v["params"], v["batch_stats"], archs, x, y, batch=16)


def test_sdarts_perturbation_matches_the_reference_clip_rule(key):
    # The SDARTS code's rule, written out in numpy on the same noise: add, clamp to [0, 1],
    # an all-zero edge keeps its largest noisy op, divide by the sum; pruned ops stay off.
    from jnas.oneshot.mixing import perturb

    logits = jnp.array([[0.1, 2.0, -1.0, 0.3, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0], [5.0, -5.0, 0.0, 1.0, -1.0]])
    mask = jnp.array([[True] * 5, [True, True, False, True, True], [True] * 5])
    w = os201.op_weights(logits, mask)
    for eps in (0.0, 0.03, 0.3, 5.0):
        got = np.asarray(perturb(w, key, eps))
        noise = np.asarray(jax.random.uniform(key, w.shape, w.dtype, -eps, eps))
        for row, wr, nr in zip(got, np.asarray(w), noise):
            on = wr > 0
            line = np.where(on, wr + nr, 0.0)
            top = np.argmax(np.where(on, line, -np.inf))
            line = np.clip(line, 0, 1)
            if line.sum() == 0:
                line[top] = 1.0
            np.testing.assert_allclose(row, line / line.sum(), rtol=1e-5, atol=1e-7)
        assert got[1, 2] == 0.0  # the pruned op
    assert np.allclose(perturb(w, key, 0.0), w, atol=1e-7)
    scaled = perturb(0.5 * w, key, 0.3)  # under edge normalisation an edge keeps its total
    np.testing.assert_allclose(scaled.sum(-1), 0.5, rtol=1e-6)


def test_gdas_hard_sample_draws_by_weight_and_passes_the_relaxed_gradient(key):
    from jnas.oneshot.mixing import gumbel_hard

    logits = jnp.array([[0.5, 1.5, -1.0, 0.0, 1.0], [2.0, 0.0, 0.0, -2.0, 0.0]])
    mask = jnp.array([[True] * 5, [True, True, False, True, True]])
    w = os201.op_weights(logits, mask)
    draws = jax.vmap(lambda k: gumbel_hard(w, k, 1.0))(jax.random.split(key, 4000))
    d = np.asarray(draws)
    np.testing.assert_array_equal((d != 0).sum(-1), 1)  # one op per edge, weighted by the edge's total
    np.testing.assert_array_equal(d.sum(-1), np.broadcast_to(np.asarray(w).sum(-1), d.shape[:-1]))
    assert float(draws[:, 1, 2].max()) == 0.0  # a pruned op is never drawn
    # Draw frequencies are the weights (Gumbel-max): 4,000 draws, 4 standard errors.
    freq, se = np.asarray(draws.mean(0)), np.sqrt(np.asarray(w) * (1 - np.asarray(w)) / 4000)
    assert np.all(np.abs(freq - np.asarray(w)) <= 4 * se + 1e-9)
    np.testing.assert_allclose(gumbel_hard(0.5 * w, key, 1.0).sum(-1), 0.5)  # edge normalisation keeps the total
    # Straight-through: the gradient is the relaxed sample's, worked out by hand from the same noise.
    c = jax.random.normal(jax.random.fold_in(key, 1), w.shape)
    tau = 0.7
    g = jax.grad(lambda a: (c * gumbel_hard(os201.op_weights(a, mask), key, tau)).sum())(logits)
    noise = jax.random.gumbel(key, w.shape)
    relaxed = lambda a: (c * jax.nn.softmax((jnp.where(mask, jax.nn.log_softmax(jnp.where(mask, a, -1e30)), -1e30) + noise) / tau)).sum()
    np.testing.assert_allclose(g, jax.grad(relaxed)(logits), rtol=1e-4, atol=1e-6)
