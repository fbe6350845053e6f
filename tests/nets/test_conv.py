"""Convolutions with written-out gradients (jnas.nets.kernels) against JAX autodiff."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jnas.nets import NB201Network
from jnas.nets.kernels import NHWC, compiler_options, conv_fn, conv_general_dilated, depthwise, depthwise_dense, fusion_barrier


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def _lax(x, k, strides, padding):
    return lax.conv_general_dilated(x, k, strides, padding, dimension_numbers=NHWC)


def _ours(x, k, strides, padding):
    return conv_general_dilated(x, k, strides, padding, dimension_numbers=NHWC)


@pytest.mark.parametrize(
    "ksize, padding, strides",
    [(3, ((1, 1), (1, 1)), (1, 1)), (1, ((0, 0), (0, 0)), (1, 1)), (3, ((0, 2), (1, 0)), (1, 1)),
     (5, ((2, 2), (2, 2)), (1, 1)), (3, ((1, 1), (1, 1)), (2, 2)), (1, ((0, 0), (0, 0)), (2, 2)),
     (3, ((0, 1), (1, 0)), (2, 2)), (5, ((2, 2), (2, 2)), (2, 2)), (3, ((1, 1), (1, 1)), (2, 1)),
     (2, ((0, 0), (0, 0)), (3, 2)), (3, ((-1, 2), (2, -1)), (2, 2))],
)
@pytest.mark.parametrize("size", [(7, 6), (8, 8)])
def test_gradients_equal_autodiff(x64, key, ksize, padding, strides, size):
    # float64, a nonlinear loss so the cotangent is not constant. Strided cases take the
    # phase-decomposed gradients: odd and even sizes, kernels narrower than the stride
    # (phases no tap reaches), asymmetric and negative padding.
    kx, kk, kc = jax.random.split(key, 3)
    x = jax.random.normal(kx, (3, *size, 4), jnp.float64)
    k = jax.random.normal(kk, (ksize, ksize, 4, 5), jnp.float64)

    def loss(conv):
        return lambda x, k: jnp.sum(jnp.sin(conv(x, k, strides, padding)))

    np.testing.assert_allclose(_ours(x, k, strides, padding), _lax(x, k, strides, padding), rtol=1e-12)
    got = jax.grad(loss(_ours), (0, 1))(x, k)
    want = jax.grad(loss(_lax), (0, 1))(x, k)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kshape", [(3, 3, 3, 16), (3, 5, 2, 16), (2, 2, 1, 8)])
@pytest.mark.parametrize("padding", [((1, 1), (1, 1)), ((0, 2), (2, 1)), ((-1, 2), (0, 0))])
def test_few_input_channels_take_the_tap_sum(x64, key, kshape, padding):
    # kh * kw * c_in <= 2 c_out (the stem's 3 -> 16): the input gradient is one matmul and
    # shifted sums of its taps; it must equal autodiff's, and no convolution computes it.
    kx, kk = jax.random.split(key)
    x = jax.random.normal(kx, (2, 7, 8, kshape[2]), jnp.float64)
    k = jax.random.normal(kk, kshape, jnp.float64)

    def loss(conv):
        return lambda x, k: jnp.sum(jnp.sin(conv(x, k, (1, 1), padding)))

    got = jax.grad(loss(_ours), (0, 1))(x, k)
    want = jax.grad(loss(_lax), (0, 1))(x, k)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)
    convs = str(jax.make_jaxpr(jax.grad(loss(_ours), (0, 1)))(x, k)).count("conv_general_dilated")
    assert convs == 2  # the forward and the kernel gradient; a convolution for dx would make 3


def test_strided_input_gradient_dilates_nothing(key):
    # The written-out input gradient of a stride-2 convolution is stride-1 convolutions of g;
    # autodiff's is a convolution over g with zeros inserted (lhs_dilate), which XLA:CPU runs
    # 3-5x slower.
    x = jax.random.normal(key, (2, 8, 8, 4))
    k = jax.random.normal(key, (3, 3, 4, 4))

    def dilations(conv):
        f = jax.grad(lambda x: jnp.sum(conv(x, k, (2, 2), ((1, 1), (1, 1))) ** 2))
        text = jax.jit(f).lower(x).as_text()
        return [d for d in re.findall(r"lhs_dilate = \[(\d+), (\d+)\]", text) if d != ("1", "1")]

    assert dilations(_lax) == [("2", "2")] and dilations(_ours) == []


def test_gradients_inside_switch_and_map(x64, key):
    x = jax.random.normal(key, (2, 5, 5, 3), jnp.float64)
    k = jax.random.normal(jax.random.fold_in(key, 1), (3, 3, 3, 3), jnp.float64)
    pad = ((1, 1), (1, 1))

    def loss(conv, x, k, op):
        y = lax.switch(op, (lambda x: x, lambda x: conv(jax.nn.relu(x), k, (1, 1), pad)), x)
        return jnp.sum(y**3)

    ops = jnp.array([1, 0, 1])
    got = jax.jit(lambda x, k: lax.map(lambda o: jax.grad(loss, (1, 2))(_ours, x, k, o), ops))(x, k)
    want = jax.jit(lambda x, k: lax.map(lambda o: jax.grad(loss, (1, 2))(_lax, x, k, o), ops))(x, k)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)
    assert float(jnp.abs(got[1][1]).sum()) == 0.0  # op 0 (identity) leaves the kernel unused


def test_network_gradients_agree_and_forward_mode_is_refused(key):
    net = NB201Network(C=2, N=1, num_classes=3)
    fast = net.clone(conv_grads="explicit")
    x = jax.random.normal(key, (4, 8, 8, 3))
    a = jnp.array([3, 2, 1, 4, 3, 2])
    v = jax.jit(net.init)(key, x, a)

    def loss(n):
        return lambda p, x: jnp.sum(n.apply({**v, "params": p}, x, a, mutable=["batch_stats"])[0] ** 2)

    got = jax.jit(jax.grad(loss(fast), (0, 1)))(v["params"], x)
    want = jax.jit(jax.grad(loss(net), (0, 1)))(v["params"], x)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(g, w, rtol=2e-4, atol=1e-6)
    with pytest.raises(TypeError, match="custom_vjp"):
        jax.jvp(lambda x: loss(fast)(v["params"], x), (x,), (x,))
    with pytest.raises(ValueError, match="unknown conv_grads 'fast'"):
        conv_fn("fast")
    with pytest.raises(ValueError, match="unknown conv_grads"):
        jax.eval_shape(net.clone(conv_grads="fast").init, key, x, a)  # refused while tracing, before any compile


@pytest.mark.parametrize(
    "kshape, padding", [((3, 3), ((1, 1), (1, 1))), ((3, 3), ((0, 2), (1, 0))), ((5, 5), ((2, 2), (2, 2))),
                        ((3, 1), ((1, 1), (0, 0))), ((1, 3), ((0, 0), (1, 1))), ((1, 1), ((0, 0), (0, 0))),
                        ((1, 1), ((1, 0), (0, 1)))],
)
def test_lax_conv_row_form_equals_lax(x64, key, kshape, padding):
    # float64 on CPU takes the row-stacked form, an unpadded 1x1 kernel a matmul: values,
    # reverse- and forward-mode derivatives must equal lax's own convolution (kernel height
    # 1 otherwise keeps lax's form).
    from jnas.nets.kernels import lax_conv

    kx, kk, kt = jax.random.split(key, 3)
    x = jax.random.normal(kx, (2, 7, 6, 4), jnp.float64)
    k = jax.random.normal(kk, (*kshape, 4, 5), jnp.float64)
    mine = lambda x, k: lax_conv(x, k, (1, 1), padding, dimension_numbers=NHWC)
    theirs = lambda x, k: _lax(x, k, (1, 1), padding)
    np.testing.assert_allclose(mine(x, k), theirs(x, k), rtol=1e-12, atol=1e-12)
    loss = lambda conv: lambda x, k: jnp.sum(jnp.sin(conv(x, k)))
    for g, w in zip(jax.grad(loss(mine), (0, 1))(x, k), jax.grad(loss(theirs), (0, 1))(x, k)):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)
    tangents = (jax.random.normal(kt, x.shape, jnp.float64), k)
    np.testing.assert_allclose(jax.jvp(mine, (x, k), tangents)[1], jax.jvp(theirs, (x, k), tangents)[1], rtol=1e-10, atol=1e-12)
    assert conv_fn("xla") is lax_conv


def _ynn_fused_convolutions(hlo: str) -> int:
    """Convolutions that the compiled module runs inside a YNNPACK fusion."""
    fused = {m.group(1) for m in re.finditer(r"calls=%?([\w.\-]+).*__ynn_fusion", hlo)}
    count, current = 0, None
    for line in hlo.splitlines():
        head = re.match(r"\s*%?([\w.\-]+)\s.*\{\s*$", line)
        if head and not line.startswith(" "):
            current = head.group(1)
        elif current in fused and " convolution(" in line:
            count += 1
    return count


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="XLA:CPU compile option")
def test_eigen_library_takes_convolutions_out_of_ynnpack(key):
    """conv_library="eigen" compiles a 3x3 convolution outside YNNPACK, to the same values."""
    x = jax.random.normal(key, (2, 16, 16, 32))  # small shapes stay outside YNNPACK anyway
    k = jax.random.normal(jax.random.fold_in(key, 1), (3, 3, 32, 32))

    def f(x, k):
        return _lax(x, k, (1, 1), ((1, 1), (1, 1)))

    options = compiler_options("eigen")
    if options is not None:  # this jaxlib has YNNPACK: by default it runs the convolution
        assert _ynn_fused_convolutions(jax.jit(f).lower(x, k).compile().as_text()) >= 1
    eigen = jax.jit(f, compiler_options=options)
    assert _ynn_fused_convolutions(eigen.lower(x, k).compile().as_text()) == 0
    np.testing.assert_allclose(eigen(x, k), jax.jit(f)(x, k), rtol=1e-4, atol=1e-4)
    assert compiler_options("ynnpack") is None and compiler_options("eigen", backend="gpu") is None
    with pytest.raises(ValueError, match=r"unknown conv_library 'mkl'; valid choices are \['ynnpack', 'eigen'\]"):
        compiler_options("mkl")


@pytest.mark.parametrize("impl", [depthwise, depthwise_dense], ids=["shifted", "dense"])
@pytest.mark.parametrize("k,stride,dilation,size", [(3, 1, 1, 7), (5, 2, 1, 8), (3, 2, 2, 9), (5, 1, 2, 6)])
def test_depthwise_forms_equal_grouped_convolution(x64, key, impl, k, stride, dilation, size):
    """kernels.depthwise (k*k shifted multiply-adds) and kernels.depthwise_dense (block-diagonal
    dense kernel) against lax's grouped convolution with the same padding, values and both
    gradients, in float64."""
    kx, kw, kg = jax.random.split(key, 3)
    x = jax.random.normal(kx, (2, size, size, 3), jnp.float64)
    w = jax.random.normal(kw, (k, k, 1, 3), jnp.float64)
    p = dilation * (k - 1) // 2
    ref = lambda x, w: jax.lax.conv_general_dilated(x, w, (stride, stride), ((p, p), (p, p)), rhs_dilation=(dilation, dilation),
                                                    dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=3)
    got = lambda x, w: impl(x, w, stride, dilation)
    np.testing.assert_allclose(got(x, w), ref(x, w), rtol=1e-12, atol=1e-12)
    g = jax.random.normal(kg, ref(x, w).shape, jnp.float64)
    dg = jax.grad(lambda x, w: jnp.sum(got(x, w) * g), argnums=(0, 1))(x, w)
    dr = jax.grad(lambda x, w: jnp.sum(ref(x, w) * g), argnums=(0, 1))(x, w)
    for a, b in zip(dg, dr):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_fusion_barrier_is_the_identity_in_every_mode(key):
    # Exact (bitwise) in the forward pass, the backward pass and forward-over-reverse, which the
    # exact second-order hypergradient and the Hessian eigenvalue of the supernet use.
    x = jax.random.normal(key, (2, 5, 5, 7)) * 1e3
    f = lambda x: jnp.sum(jnp.sin(fusion_barrier(x)) * x)
    g = lambda x: jnp.sum(jnp.sin(x) * x)
    assert jnp.array_equal(jax.jit(fusion_barrier)(x), x)
    np.testing.assert_array_equal(jax.jit(jax.grad(f))(x), jax.jit(jax.grad(g))(x))
    v = jax.random.normal(jax.random.fold_in(key, 1), x.shape)
    hvp = lambda h: jax.jit(lambda x, v: jax.jvp(jax.grad(h), (x,), (v,))[1])(x, v)
    np.testing.assert_array_equal(hvp(f), hvp(g))
    hlo = jax.jit(jax.grad(f)).lower(x).compile().as_text()
    assert hlo.count(" dot(") + hlo.count("ynn_fusion") >= 1  # the dot survives simplification
