from functools import partial

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jnas.nets import NB201Network, arch_cost, cost_tables
from jnas.nets.layers import codes_kernel
from jnas.spaces import nb201 as sp

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


def _apply(net, variables, x):
    return jax.jit(lambda a: net.apply(variables, x, a, mutable=["batch_stats"])[0])


def test_param_and_flop_counts_match_benchmark(table, key):
    # Published NB201 values (params_M, flops_M columns) within 1%, for all-none,
    # all-conv3x3, the table's best cell, and random cells.
    t = cost_tables(NB201Network())
    archs = [jnp.zeros(6, jnp.int32), jnp.full(6, 3), sp.from_string(BEST)]
    archs += list(sp.sample(key, 30))
    batch = jnp.stack(archs)
    np.testing.assert_allclose(arch_cost(t["params_fixed"], t["params_per_op"], batch) / 1e6, table.query(batch, "params_M"), rtol=1e-4)
    for a in archs:
        params = float(arch_cost(t["params_fixed"], t["params_per_op"], a)) / 1e6
        flops = float(arch_cost(t["macs_fixed"], t["macs_per_op"], a)) / 1e6
        assert params == pytest.approx(float(table.query(a, "params_M")), rel=0.01)
        assert flops == pytest.approx(float(table.query(a, "flops_M")), rel=0.01)


def test_param_count_of_subnetwork_equals_leaves_it_uses(key):
    # Independent count: build the network, then count by hand the parameter leaves the
    # architecture touches (its ops' leaves on every cell plus everything outside cells).
    net = NB201Network(C=4, N=2)
    variables = jax.eval_shape(net.init, key, jnp.zeros((1, 32, 32, 3)), jnp.zeros(6, jnp.int32))  # shapes suffice
    t = cost_tables(net)
    a = np.array([3, 2, 0, 1, 3, 4])
    total = 0
    for path, leaf in jax.tree_util.tree_flatten_with_path(variables["params"])[0]:
        names = [p.key for p in path]
        edges = [n for n in names if n.startswith("edge_")]
        if edges:
            e = int(edges[0].split("_")[1])
            if names[names.index(edges[0]) + 1] != sp.OPS[a[e]]:
                continue
        total += int(np.prod(leaf.shape))
    assert float(arch_cost(t["params_fixed"], t["params_per_op"], jnp.asarray(a))) == total


def test_one_trace_serves_every_architecture(key, tiny_net):
    x = jax.random.normal(key, (2, 8, 8, 3))
    variables = jax.jit(tiny_net.init)(key, x, jnp.zeros(6, jnp.int32))

    @jax.jit
    @chex.assert_max_traces(n=1)
    def apply(a):
        return tiny_net.apply(variables, x, a, mutable=["batch_stats"])[0]

    y1 = apply(jnp.array([3, 3, 3, 3, 3, 3]))
    y2 = apply(jnp.array([1, 0, 2, 4, 1, 3]))
    assert not np.allclose(y1, y2)


def test_switch_mask_and_batching_modes_agree(key, tiny_net):
    x = jax.random.normal(key, (4, 8, 8, 3))
    archs = sp.sample(jax.random.key(7), 6)
    variables = jax.jit(tiny_net.init)(key, x, archs[0])
    masked = tiny_net.clone(select="mask")
    f_switch = lambda a: tiny_net.apply(variables, x, a, mutable=["batch_stats"])[0]
    f_mask = lambda a: masked.apply(variables, x, a, mutable=["batch_stats"])[0]
    loop = np.stack([np.asarray(jax.jit(f_switch)(a)) for a in archs])
    np.testing.assert_allclose(jax.jit(lambda A: jax.lax.map(f_switch, A))(archs), loop, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(jax.jit(jax.vmap(f_mask))(archs), loop, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(f_switch(archs[0]), loop[0], rtol=1e-5, atol=1e-5)  # no jit


def test_mask_accepts_mixing_weights(key, tiny_net):
    # A (6, 5) weight matrix mixes op outputs linearly: weights w and one-hot(a) agree when w is one-hot.
    x = jax.random.normal(key, (2, 8, 8, 3))
    net = tiny_net.clone(select="mask")
    a = jnp.array([2, 1, 3, 4, 0, 3])
    variables = jax.jit(net.init)(key, x, a)
    f = jax.jit(lambda w: net.apply(variables, x, w, mutable=["batch_stats"])[0])
    np.testing.assert_allclose(f(jax.nn.one_hot(a, 5)), f(a.astype(jnp.int32)), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("select", ["switch", "mask", "static"])
def test_cell_nodes_sum_their_edges_in_closed_form(key, select):
    # Parameter-free ops give each node in closed form: with edges (skip, none, pool, skip,
    # none, skip), node1 = x, node2 = 0 + pool(node1), node3 = x + 0 + node2. "none" and
    # "skip" appear both as a node's first edge and as later ones (summed into the node).
    from jnas.nets.kernels import avg_pool_3x3
    from jnas.nets.nb201 import Cell

    x = jax.random.normal(key, (2, 6, 6, 4))
    arch = np.array([1, 0, 4, 1, 0, 1])
    cell = Cell(4, select)
    variables = cell.init(key, x, jnp.asarray(arch), True)
    out = cell.apply(variables, x, arch if select == "static" else jnp.asarray(arch), True, mutable=["batch_stats"])[0]
    p = avg_pool_3x3(x)
    np.testing.assert_allclose(out, x + p, rtol=1e-6, atol=1e-6)


def test_all_none_cell_gives_input_independent_logits(key, tiny_net):
    # No path through any cell: the classifier sees only the residual shortcuts of a zero map.
    x = jax.random.normal(key, (3, 8, 8, 3))
    a = jnp.zeros(6, jnp.int32)
    variables = jax.jit(tiny_net.init)(key, x, a)
    y = jax.jit(lambda v: tiny_net.apply(v, x, a, mutable=["batch_stats"])[0])(variables)
    np.testing.assert_allclose(y, jnp.broadcast_to(y[0], y.shape), atol=1e-6)


def test_low_fidelity_sizes_and_bad_select(key):
    # Shapes only: jax.eval_shape traces init and apply without compiling them.
    net = NB201Network(C=8, N=1, num_classes=5)
    x = jnp.zeros((2, 16, 16, 3))
    variables = jax.eval_shape(net.init, key, x, jnp.zeros(6, jnp.int32))
    y = jax.eval_shape(lambda v: net.apply(v, x, jnp.full(6, 3), mutable=["batch_stats"])[0], variables)
    chex.assert_shape(y, (2, 5))
    assert variables["params"]["classifier"]["kernel"].shape == (32, 5)
    with pytest.raises(ValueError, match="unknown select mode 'bogus'"):
        jax.eval_shape(NB201Network(select="bogus").init, key, x, jnp.zeros(6, jnp.int32))


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("size", [(7, 8), (32, 32)])
def test_avg_pool_excludes_padding_like_flax(key, stride, size):
    import flax.linen as nn

    from jnas.nets.kernels import avg_pool_3x3

    x = jax.random.normal(key, (2, *size, 3))
    ref = nn.avg_pool(x, (3, 3), strides=(stride, stride), padding=((1, 1), (1, 1)), count_include_pad=False)
    np.testing.assert_allclose(avg_pool_3x3(x, stride), ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(avg_pool_3x3(x, stride, grads="explicit"), ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(avg_pool_3x3(x, stride, grads="plain"), ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("size", [(7, 8), (5, 5)])
def test_avg_pool_written_out_gradient_equals_autodiff(key, size):
    # float64, a nonlinear loss so the cotangent varies over the map; the written-out
    # backward (box sum of g / counts) against autodiff of flax's pooling.
    import flax.linen as nn

    from jnas.nets.kernels import avg_pool_3x3

    with jax.enable_x64(True):
        x = jax.random.normal(key, (2, *size, 3), jnp.float64)
        ref = lambda x: nn.avg_pool(x, (3, 3), padding=((1, 1), (1, 1)), count_include_pad=False)
        loss = lambda pool: lambda x: jnp.sum(jnp.sin(pool(x)) * jnp.arange(x.size, dtype=x.dtype).reshape(x.shape))
        got = jax.grad(loss(lambda x: avg_pool_3x3(x, grads="explicit")))(x)
        np.testing.assert_allclose(got, jax.grad(loss(ref))(x), rtol=1e-12, atol=1e-12)
    with pytest.raises(TypeError, match="custom_vjp"):
        jax.jvp(lambda x: avg_pool_3x3(x, grads="explicit"), (x,), (x,))
    with pytest.raises(ValueError, match=r"unknown grads 'fast'; valid choices are \['xla', 'explicit', 'plain'\]"):
        avg_pool_3x3(x, grads="fast")


@pytest.mark.parametrize("affine", [True, False])
def test_explicit_batch_norm_matches_flax_values_statistics_and_gradients(key, affine):
    # Same variables, outputs and running-average updates as nn.BatchNorm in training mode,
    # and the written-out backward against autodiff of flax's BatchNorm in float64, with
    # cotangents on the output and on the batch statistics (through the running averages).
    from jnas.nets.kernels import ExplicitBatchNorm, batch_norm

    with jax.enable_x64(True):
        x = 1.5 * jax.random.normal(key, (4, 5, 6, 3), jnp.float64) + 0.7
        flax_bn, mine = batch_norm(True, affine=affine), batch_norm(True, affine=affine, grads="explicit")
        assert isinstance(mine, ExplicitBatchNorm)
        variables = flax_bn.init(key, x)
        chex.assert_trees_all_equal_shapes_and_dtypes(mine.init(key, x), variables)
        if affine:  # non-trivial scale and shift
            variables = {**variables, "params": {"scale": jnp.array([0.5, 1.0, 2.0]), "bias": jnp.array([0.1, -0.2, 0.3])}}
        w = jax.random.normal(jax.random.key(1), x.shape, jnp.float64)

        def loss(bn):
            def f(params, x):
                y, stats = bn.apply({**variables, "params": params}, x, mutable=["batch_stats"])
                s = stats["batch_stats"]
                return jnp.sum(jnp.sin(y) * w) + jnp.sum(s["mean"] ** 2) + jnp.sum(jnp.cos(s["var"])), (y, s)
            return f

        params = variables.get("params", {})
        (l_ref, (y_ref, s_ref)), g_ref = jax.value_and_grad(loss(flax_bn), (0, 1), has_aux=True)(params, x)
        (l_got, (y_got, s_got)), g_got = jax.value_and_grad(loss(mine), (0, 1), has_aux=True)(params, x)
        np.testing.assert_allclose(y_got, y_ref, rtol=1e-12, atol=1e-12)
        chex.assert_trees_all_close(s_got, s_ref, rtol=1e-12, atol=1e-12)
        chex.assert_trees_all_close(g_got, g_ref, rtol=1e-10, atol=1e-12)
    eval_bn = batch_norm(False, grads="explicit")  # eval mode: running statistics, flax's module
    assert not isinstance(eval_bn, ExplicitBatchNorm)
    with pytest.raises(ValueError, match=r"unknown grads 'fast'"):
        batch_norm(True, grads="fast")


@pytest.mark.slow
def test_search_cells_have_biased_convs_and_plain_batchnorm(key):
    # cell_affine=False: the search-cell ops the zero-cost reference code scores. Cell convs
    # get a bias and cell BatchNorms lose scale/shift; the stem, reductions and head do not
    # change. In training mode the BatchNorm removes the bias again, so the logits equal
    # those of the benchmark network with the same kernels (to float32 rounding).
    x = jax.random.normal(key, (4, 8, 8, 3))
    a = jnp.array([3, 2, 1, 4, 3, 2])
    bench, search = NB201Network.benchmark(C=4, N=1), NB201Network.search_code(C=4, N=1)
    vb = jax.jit(bench.init)(key, x, a)
    vs = jax.jit(search.init)(key, x, a)
    flat_b = {tuple(p.key for p in path): leaf for path, leaf in jax.tree_util.tree_flatten_with_path(vb["params"])[0]}
    flat_s = {tuple(p.key for p in path): leaf for path, leaf in jax.tree_util.tree_flatten_with_path(vs["params"])[0]}
    in_cell = lambda path: path[0].startswith("cell_")  # noqa: E731
    assert {p for p in flat_s if in_cell(p) and p[-1] == "bias"} == {p[:-1] + ("bias",) for p in flat_b if in_cell(p) and p[-1] == "kernel"}
    assert not [p for p in flat_s if in_cell(p) and p[-2] == "bn"]
    assert {p for p in flat_b if not in_cell(p)} == {p for p in flat_s if not in_cell(p)}
    for p, leaf in flat_s.items():
        if p[-1] == "bias" and in_cell(p):
            fan_in = int(np.prod(flat_s[p[:-1] + ("kernel",)].shape[:-1]))
            assert float(jnp.max(jnp.abs(leaf))) <= 1 / np.sqrt(fan_in) and float(jnp.std(leaf)) > 0
    # the same kernels, then compare logits
    params = {**vs["params"]}
    for p, leaf in flat_b.items():
        if p[-1] == "kernel" or not in_cell(p):
            node = params
            for k in p[:-1]:
                node[k] = dict(node[k])
                node = node[k]
            node[p[-1]] = leaf
    yb = jax.jit(lambda v: bench.apply(v, x, a, mutable=["batch_stats"])[0])(vb)
    ys = jax.jit(lambda v: search.apply(v, x, a, mutable=["batch_stats"])[0])({**vs, "params": params})
    np.testing.assert_allclose(ys, yb, rtol=1e-4, atol=1e-5)


def test_relu_kernel_counts_agreements_exactly(key):
    # The bfloat16 sign matmul with float32 sums must give exact integer counts.
    from jnas.nets.layers import relu_kernel

    x = jax.random.normal(key, (6, 48, 48, 16))  # 36,864 units per image
    c = (np.asarray(x).reshape(6, -1) > 0).astype(np.float64)
    expected = c @ c.T + (1 - c) @ (1 - c).T
    np.testing.assert_array_equal(np.asarray(jax.jit(relu_kernel)(x), np.float64), expected)


def codes_of(net, variables, x, arch):
    """The NASWOT kernel a ``codes=True`` network sows on ``x``."""
    return codes_kernel(net.apply(variables, x, arch, mutable=["batch_stats", "intermediates"])[1])


@pytest.mark.parametrize("partial,cells", [
    (1, (0, 2, 4)),  # no conv edge, a mixed cell, a node no conv reads: the fast case
    pytest.param(1, range(5), marks=pytest.mark.slow),
    pytest.param(2, range(5), marks=pytest.mark.slow),
])
def test_codes_kernel_sums_every_executed_relu(key, partial, cells):
    # The NASWOT kernel the network returns (one kernel per node, times the conv edges
    # leaving it) against every ReLU input recorded from a concrete, un-jitted run, for
    # cells with and without conv edges and with nodes no conv reads; every select mode
    # must give the same integer counts exactly.
    import flax.linen as nn

    from jnas.nets.layers import ReLUConvBN

    net = NB201Network(C=2, N=1, num_classes=3, codes=True, partial=partial)
    x = jax.random.normal(key, (5, 8, 8, 3))
    archs = [np.zeros(6, np.int32), np.full(6, 3), np.array([3, 2, 1, 4, 3, 2]), np.array([4, 0, 2, 1, 1, 1]),
             np.array([2, 2, 2, 0, 0, 0])]
    archs = [archs[i] for i in cells]
    variables = jax.jit(net.init)(key, x, jnp.asarray(archs[0]))  # eager, every edge's switch compiles alone

    def kernel(select):  # one compilation serves every cell (the cell is an input)
        return jax.jit(lambda x, arch: codes_of(net.clone(select=select), variables, x, arch))

    traced = {"switch": kernel("switch"), "mask": kernel("mask")}
    for a in archs:
        inputs = []

        def record(next_fun, args, kwargs, context):
            out = next_fun(*args, **kwargs)
            if context.method_name == "__call__" and isinstance(context.module, ReLUConvBN):
                inputs.append(np.asarray(args[0]).reshape(args[0].shape[0], -1))
            if context.method_name == "__call__" and context.module.scope.path[-1:] == ("last_bn",):
                inputs.append(np.asarray(out).reshape(out.shape[0], -1))
            return out

        with nn.intercept_methods(record):
            net.clone(select="static").apply(variables, x, a, mutable=["batch_stats"])
        assert len(inputs) == 3 * sum(int(o) in (2, 3) for o in a) + 2 * 2 + 1
        c = np.concatenate(inputs, axis=1) > 0
        expected = (c.astype(np.float64) @ c.T + (~c).astype(np.float64) @ (~c).T)
        static = jax.jit(lambda x: codes_of(net.clone(select="static"), variables, x, a))
        np.testing.assert_array_equal(np.asarray(static(x), np.float64), expected, err_msg=f"{a} static")
        for select, fn in traced.items():
            np.testing.assert_array_equal(np.asarray(fn(x, jnp.asarray(a)), np.float64), expected, err_msg=f"{a} {select}")
        weights = jax.nn.one_hot(jnp.asarray(a), sp.NUM_OPS)  # mixing weights: the same counts
        got = traced["mask"](x, weights)
        np.testing.assert_array_equal(np.asarray(got, np.float64), expected, err_msg=f"{a} weights")


def _read_by_search(a, codes):
    """Reference for read_nodes: a node is read when a path of non-none edges leads from it
    to the output node, or (codes) when a conv edge leaves it."""
    def reaches(i):
        return i == 3 or any(a[e] != 0 and reaches(j) for e, (s, j) in enumerate(sp.EDGES) if s == i)
    return [reaches(i) or (codes and any(a[e] in (2, 3) for e, (s, _) in enumerate(sp.EDGES) if s == i))
            for i in range(4)]


@pytest.mark.parametrize("codes", [False, True])
def test_read_nodes_matches_path_search_on_every_cell(codes):
    from jnas.nets.nb201 import read_nodes

    archs = sp.enumerate_all()
    got = np.stack(jax.jit(jax.vmap(lambda a: jnp.stack(read_nodes(a, codes))))(archs))
    ref = np.array([_read_by_search(a, codes) for a in np.asarray(archs).tolist()])
    np.testing.assert_array_equal(got[:, 1:], ref[:, 1:])  # node 0 is the cell input
    assert 0 < (~ref[:, 1:]).sum() < ref[:, 1:].size


def test_skipping_unread_edges_keeps_logits_and_codes(key):
    # [3,3,2,3,0,0]: node 2 feeds nothing (3<-2 is none), so 2<-0 and 2<-1 are skipped; node 1
    # reaches the output through no edge, but its ReLU is read by the conv 2<-1, so NASWOT's
    # codes keep 1<-0. [2,4,1,1,0,0]: node 1 is read by nothing, codes or not. (Gradients:
    # the proxies' mode tests score switch, which skips, against mask, which does not.)
    net = NB201Network(C=4, N=1, num_classes=3, codes=True)
    x = jax.random.normal(key, (5, 8, 8, 3))
    variables = jax.jit(net.init)(key, x, jnp.zeros(6, jnp.int32))
    def step(a, n):
        logits, state = n.apply(variables, x, a, mutable=["batch_stats", "intermediates"])
        return logits, codes_kernel(state), state

    steps = {skip: jax.jit(partial(step, n=net.clone(skip_unread=skip))) for skip in (False, True)}
    for a, skipped in (([3, 3, 2, 3, 0, 0], (1, 2)), ([2, 4, 1, 1, 0, 0], (0, 1, 2))):  # one compilation each
        a = jnp.asarray(a)
        logits, k, _ = steps[False](a)
        logits_s, k_s, stats_s = steps[True](a)
        np.testing.assert_allclose(logits_s, logits, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(np.asarray(k_s), np.asarray(k))  # exact integer counts
        cell = stats_s["batch_stats"]["cell_0_0"]
        for e in range(6):  # a skipped edge's BatchNorm saw no batch; the others did
            conv = sp.OPS[int(a[e])]
            if conv.startswith("nor_conv"):
                moved = bool(jnp.any(cell[f"edge_{e}"][conv]["bn"]["mean"] != 0))
                assert moved == (e not in skipped), (a, e)
