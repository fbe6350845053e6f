"""The CPU backend switch: every kernel jnas networks run differently from plain JAX, in one
place, chosen by one argument (``conv_grads``: ``"xla"`` or ``"explicit"``) so the model code
(:mod:`jnas.nets.nb201`, :mod:`jnas.nets.darts`, ...) reads as the papers' networks.

``"explicit"`` writes out the backward passes that XLA:CPU runs slowly inside
``lax.switch``/``lax.map`` (how an NB201 edge runs only its chosen op): convolutions
(:func:`conv_general_dilated`: input and kernel gradients as forward convolutions; a strided
convolution's input gradient phase by phase instead of over a zero-dilated gradient; a
few-channel input gradient as one matmul and shifted tap maps), training-mode BatchNorm
(:class:`ExplicitBatchNorm`: one residual instead of two) and 3x3 average pooling. Each is a
``jax.custom_vjp``: reverse mode only (synflow and grasp use ``jax.jvp`` and keep ``"xla"``).
``"xla"`` keeps autodiff's gradients; on CPU :func:`lax_conv` still runs plain unpadded 1x1
convolutions as matmuls and float64 3x3 ones in a row-stacked form, and the pool is nine
shifted slices. ``"plain"`` is XLA's own ops with none of these rewrites (``lax`` convolutions,
a ``reduce_window`` pool): the rewrites pay off in the proxies' forward and switch-heavy
programs, but the DARTS supernet's training step (every op on every edge) compiles and runs
faster without them. Which library runs the
convolutions (YNNPACK or Eigen) is a compile option, :func:`compiler_options`.
:func:`fusion_barrier` (the identity, as a dot) keeps XLA:CPU from fusing elementwise work
across the cells of a deep supernet.

Every choice computes the same numbers up to float rounding (tests compare each with
autodiff and with flax's layers); the speed of each, measured, is in ``docs/performance.md``
("CPU kernels").
"""

from __future__ import annotations

from functools import cache, partial

import jax
import jax.numpy as jnp
from jax import lax
import flax.linen as nn
import numpy as np
from jaxtyping import Array, Float

CONV_GRADS = ("xla", "explicit", "plain")  # the backend switch
CONV_LIBRARIES = ("ynnpack", "eigen")
# XLA:CPU's YNNPACK fusions in jaxlib 0.10.2 are {individual dots, reductions, individual
# convolutions}; "eigen" keeps the first two.
_YNN_OPTION = "xla_cpu_experimental_ynn_fusion_type"
_YNN_WITHOUT_CONVOLUTIONS = "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE"
NHWC = lax.ConvDimensionNumbers((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2))


def _conv(x: Array, k: Array, padding, precision=None) -> Array:
    """Stride-1 NHWC/HWIO convolution; an unpadded 1x1 one on CPU is a matmul over channels
    (see module docstring)."""
    if k.shape[:2] == (1, 1) and all(p == (0, 0) for p in padding) and jax.default_backend() == "cpu":
        return lax.dot_general(x, k[0, 0], (((3,), (0,)), ((), ())), precision=precision)
    return lax.conv_general_dilated(x, k, (1, 1), padding, dimension_numbers=NHWC, precision=precision)


@partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _explicit(x: Float[Array, "b h w i"], k: Float[Array, "kh kw i o"], strides, padding, precision):
    return _forward(x, k, strides, padding, precision)


def _forward(x, k, strides, padding, precision):
    if strides == (1, 1):
        return _conv(x, k, padding, precision)
    return lax.conv_general_dilated(x, k, strides, padding, dimension_numbers=NHWC, precision=precision)


def _explicit_fwd(x, k, strides, padding, precision):
    return _forward(x, k, strides, padding, precision), (x, k)


def _explicit_bwd(strides, padding, precision, res, g):
    x, k = res
    if strides != (1, 1):
        dx, dk = _strided_dx(g, k, x.shape, strides, padding, precision), _strided_dk(x, g, k.shape, strides, padding, precision)
        return dx.astype(x.dtype), dk.astype(k.dtype)
    (lo_h, hi_h), (lo_w, hi_w) = padding
    kh, kw, c_in, c_out = k.shape
    if kh * kw > 1 and kh * kw * c_in <= 2 * c_out:
        dx = _dx_by_taps(g, k, x.shape, padding, precision)
    else:
        # dL/dx: the output gradient convolved with the flipped, in/out-swapped kernel.
        k_t = jnp.flip(k, (0, 1)).swapaxes(2, 3)
        dx = _conv(g, k_t, ((kh - 1 - lo_h, kh - 1 - hi_h), (kw - 1 - lo_w, kw - 1 - hi_w)), precision)
    # dL/dk[p, q, i, o] = sum_{b, h, w} x_pad[b, h + p, w + q, i] g[b, h, w, o]: a convolution
    # with channels as the batch and the batch as the contracted feature axis.
    dk = _conv(x.transpose(3, 1, 2, 0), g.transpose(1, 2, 0, 3), padding, precision).transpose(1, 2, 0, 3)
    return dx.astype(x.dtype), dk.astype(k.dtype)


_explicit.defvjp(_explicit_fwd, _explicit_bwd)


def _dx_by_taps(g: Float[Array, "b h w o"], k: Float[Array, "kh kw i o"], x_shape, padding, precision) -> Array:
    """dL/dx of a stride-1 convolution with few input channels (NB201's stem: 3): one matmul
    of ``g`` with every tap's kernel at once, then the taps' shifted maps summed (as a
    convolution, an output of ``i`` channels keeps the vector units mostly idle).

    ``dx[y, x] = sum_{p, q} z[y + lo_h - p, x + lo_w - q, p, q]`` with
    ``z[.., p, q, :] = g[..] @ k[p, q].T``, over the output positions inside ``g``."""
    kh, kw, c_in, _ = k.shape
    b, h, w = x_shape[:3]
    (lo_h, _), (lo_w, _) = padding
    n_h, n_w = g.shape[1:3]
    z = lax.dot_general(g, k.reshape(kh * kw * c_in, -1), (((3,), (1,)), ((), ())), precision=precision)
    z = z.reshape(b, n_h, n_w, kh, kw, c_in)
    dx = jnp.zeros((b, h, w, c_in), z.dtype)
    for p in range(kh):
        for q in range(kw):
            # output row i feeds input row i + p - lo_h; keep the rows that land in 0..h-1
            i0, i1 = max(lo_h - p, 0), min(n_h, h + lo_h - p)
            j0, j1 = max(lo_w - q, 0), min(n_w, w + lo_w - q)
            if i0 < i1 and j0 < j1:
                dx = dx.at[:, i0 + p - lo_h : i1 + p - lo_h, j0 + q - lo_w : j1 + q - lo_w].add(z[:, i0:i1, j0:j1, p, q])
    return dx


def _crop_pad(x: Array, padding) -> tuple[Array, tuple]:
    """``x`` with the negative parts of ``padding`` (on axes 1, 2) cropped off, and the
    padding left for the convolution."""
    (lo_h, hi_h), (lo_w, hi_w) = padding
    x = x[:, max(-lo_h, 0) : x.shape[1] - max(-hi_h, 0), max(-lo_w, 0) : x.shape[2] - max(-hi_w, 0)]
    return x, ((max(lo_h, 0), max(hi_h, 0)), (max(lo_w, 0), max(hi_w, 0)))


def _phase_taps(r: int, s: int, size: int, lo: int, n_in: int, n_out: int) -> tuple[int, int, tuple[int, int], int]:
    """For input positions ``s m + r`` of a stride-``s`` convolution along one axis: the first
    kernel tap that reaches them and the number of such taps, the padding of the stride-1
    convolution of the output gradient that applies them, and how many positions there are.

    ``x[s m + r]`` meets ``y[i]`` through tap ``p`` when ``s i + p - lo = s m + r``: the taps
    ``p = p0, p0 + s, ...`` with ``p0 = (r + lo) mod s``, the j-th at ``i = m + d0 - j``; so
    the convolution applies them in reverse order over the offsets ``d0 - J + 1 ... d0``.
    """
    p0, d0 = (r + lo) % s, (r + lo) // s
    n_taps = len(range(p0, size, s))
    m = -(-(n_in - r) // s)
    return p0, n_taps, (n_taps - 1 - d0, m + d0 - n_out), m


def _strided_dx(g, k, x_shape, strides, padding, precision) -> Array:
    """dL/dx of a strided convolution without dilating ``g``: each of the ``sh x sw`` phases
    of x (positions ``s m + r``) is a stride-1 convolution of ``g`` with the kernel taps that
    reach it; the phases are then interleaved. (XLA derives an lhs-dilated convolution that
    multiplies the inserted zeros too.)"""
    b, h, w, c = x_shape
    (sh, sw), ((lo_h, _), (lo_w, _)) = strides, padding
    kh, kw = k.shape[:2]
    k_t = k.swapaxes(2, 3)
    mh, mw = -(-h // sh), -(-w // sw)
    rows = []
    for ry in range(sh):
        py, ny, pad_y, my = _phase_taps(ry, sh, kh, lo_h, h, g.shape[1])
        cols = []
        for rx in range(sw):
            px, nx, pad_x, mx = _phase_taps(rx, sw, kw, lo_w, w, g.shape[2])
            if ny and nx:
                gp, pad = _crop_pad(g, (pad_y, pad_x))
                d = _conv(gp, k_t[py::sh][::-1, px::sw][:, ::-1], pad, precision)
            else:  # no tap reaches this phase
                d = jnp.zeros((b, my, mx, c), g.dtype)
            cols.append(jnp.pad(d, ((0, 0), (0, mh - my), (0, mw - mx), (0, 0))))
        rows.append(jnp.stack(cols, axis=3))
    return jnp.stack(rows, axis=2).reshape(b, mh * sh, mw * sw, c)[:, :h, :w]


def _strided_dk(x, g, k_shape, strides, padding, precision) -> Array:
    """dL/dk of a strided convolution: tap ``(s u + ry, s v + rx)`` sees the phase
    ``x_pad[ry::s, rx::s]`` shifted by ``(u, v)``, so each phase's taps are a stride-1
    kernel-gradient convolution (channels as the batch, as in the stride-1 case)."""
    (sh, sw), ((lo_h, hi_h), (lo_w, hi_w)) = strides, padding
    kh, kw = k_shape[:2]
    n_h, n_w = g.shape[1:3]
    xp = lax.pad(x, jnp.zeros((), x.dtype), ((0, 0, 0), (lo_h, hi_h, 0), (lo_w, hi_w, 0), (0, 0, 0)))
    gt = g.transpose(1, 2, 0, 3)
    dk = jnp.zeros(k_shape, g.dtype)
    for ry in range(min(sh, kh)):
        u = len(range(ry, kh, sh))
        for rx in range(min(sw, kw)):
            v = len(range(rx, kw, sw))
            phase = xp[:, ry::sh, rx::sw][:, : n_h + u - 1, : n_w + v - 1]
            d = _conv(phase.transpose(3, 1, 2, 0), gt, ((0, 0), (0, 0)), precision)
            dk = dk.at[ry::sh, rx::sw].set(d.transpose(1, 2, 0, 3))
    return dk


def _plain(lhs, padding, lhs_dilation, rhs_dilation, dimension_numbers, feature_group_count,
           batch_group_count, preferred_element_type) -> bool:
    """A 2-D, undilated, ungrouped NHWC convolution with explicit padding (any stride)."""
    return (
        lhs.ndim == 4
        and not isinstance(padding, str)
        and all(d in (None, 1) for d in (lhs_dilation or ())) and all(d in (None, 1) for d in (rhs_dilation or ()))
        and dimension_numbers == NHWC
        and feature_group_count == 1
        and batch_group_count == 1
        and preferred_element_type is None
    )


def _rows(x: Float[Array, "b h w i"], k: Float[Array, "kh kw i o"], padding, precision=None) -> Array:
    """The same convolution as a 1 x kw one: the kh row-shifted copies of the padded input,
    stacked on channels, with the image rows moved into the batch."""
    b, h, w, c = x.shape
    kh, kw, _, o = k.shape
    (lo_h, hi_h), pad_w = padding
    xp = jnp.pad(x, ((0, 0), (lo_h, hi_h), (0, 0), (0, 0)))
    rows = xp.shape[1] - kh + 1
    stacked = jnp.concatenate([xp[:, i : i + rows] for i in range(kh)], axis=-1).reshape(b * rows, 1, w, kh * c)
    k_rows = k.transpose(1, 0, 2, 3).reshape(1, kw, kh * c, o)  # channel index dy * c + i, as stacked
    y = _conv(stacked, k_rows, ((0, 0), pad_w), precision)
    return y.reshape(b, rows, y.shape[2], o)


def lax_conv(
    lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None, dimension_numbers=None,
    feature_group_count=1, batch_group_count=1, precision=None, preferred_element_type=None,
):
    """``lax.conv_general_dilated``, taking the row-stacked form (:func:`_rows`) for
    plain float64 convolutions with kernel height > 1 on CPU, and a matmul for plain unpadded
    1x1 ones there. Autodiff differentiates each."""
    if jax.default_backend() == "cpu" and tuple(window_strides) == (1, 1) and _plain(
        lhs, padding, lhs_dilation, rhs_dilation, dimension_numbers, feature_group_count,
        batch_group_count, preferred_element_type,
    ):
        pad = tuple((int(lo), int(hi)) for lo, hi in padding)
        if rhs.shape[:2] == (1, 1):
            return _conv(lhs, rhs, pad, precision)  # a matmul when unpadded
        if lhs.dtype == jnp.float64:
            return _rows(lhs, rhs, pad, precision)
    return lax.conv_general_dilated(
        lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers,
        feature_group_count, batch_group_count, precision, preferred_element_type,
    )


def conv_general_dilated(
    lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None, dimension_numbers=None,
    feature_group_count=1, batch_group_count=1, precision=None, preferred_element_type=None,
):
    """``lax.conv_general_dilated`` with written-out gradients for plain 2-D convolutions."""
    if not _plain(lhs, padding, lhs_dilation, rhs_dilation, dimension_numbers, feature_group_count,
                  batch_group_count, preferred_element_type):
        return lax.conv_general_dilated(
            lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers,
            feature_group_count, batch_group_count, precision, preferred_element_type,
        )
    pad = tuple((int(lo), int(hi)) for lo, hi in padding)
    return _explicit(lhs, rhs, tuple(int(s) for s in window_strides), pad, precision)


def depthwise(x: Float[Array, "b h w c"], w: Float[Array, "k k 1 c"], stride: int = 1, dilation: int = 1) -> Array:
    """Depthwise convolution with zero padding ``dilation * (k - 1) // 2`` per side ("same"
    at stride 1, as DARTS's and the hybrid space's), written as ``k * k`` shifted, strided
    multiply-adds: the numbers of ``lax.conv_general_dilated(..., feature_group_count=c)``,
    but forward and gradients are elementwise work, where XLA:CPU's grouped convolutions
    (forward and backward-filter) measured many times slower (docs/performance.md)."""
    k = w.shape[0]
    p = dilation * (k - 1) // 2
    xp = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    ho = (x.shape[1] + 2 * p - dilation * (k - 1) - 1) // stride + 1
    wo = (x.shape[2] + 2 * p - dilation * (k - 1) - 1) // stride + 1
    out = jnp.zeros((x.shape[0], ho, wo, w.shape[-1]), jnp.result_type(x, w))
    for i in range(k):
        for j in range(k):
            a, b = i * dilation, j * dilation
            out = out + xp[:, a:a + (ho - 1) * stride + 1:stride, b:b + (wo - 1) * stride + 1:stride, :] * w[i, j, 0]
    return out


def depthwise_dense(x: Float[Array, "b h w c"], w: Float[Array, "k k 1 c"], stride: int = 1, dilation: int = 1) -> Array:
    """:func:`depthwise` as one dense convolution with the block-diagonal kernel
    ``w[:, :, 0, :, None] * eye(c)``: ``c`` times the multiplies, but XLA:CPU runs dense
    convolutions (forward and both gradients) 4-7x faster than its grouped ones at the DARTS
    supernet's shapes (docs/bilevel.md), and autodiff maps the kernel gradient back to the
    diagonal. Compiles like a convolution, unlike the ``k * k`` slices of :func:`depthwise`."""
    k, c = w.shape[0], x.shape[-1]
    p = dilation * (k - 1) // 2
    dense = w[:, :, 0, :, None] * jnp.eye(c, dtype=w.dtype)
    return lax.conv_general_dilated(x, dense.astype(x.dtype), (stride, stride), ((p, p), (p, p)),
                                    rhs_dilation=(dilation, dilation), dimension_numbers=("NHWC", "HWIO", "NHWC"))


def fusion_barrier(x: Float[Array, "... c"]) -> Float[Array, "... c"]:
    """``x`` unchanged (a product with the identity over channels is exact), materialised.

    XLA:CPU fuses elementwise chains freely and recomputes a fused producer in each of its
    consumers; in a deep supernet the backward pass along skip edges becomes loops over
    dozens of saved tensors, recomputed many times. It never fuses a dot into an elementwise
    loop, and the transpose of this dot is again one, so the barrier holds in the forward
    pass, the backward pass and forward-over-reverse. ``lax.optimization_barrier`` does not
    (XLA:CPU removes it before fusion), and a ``lax.scan`` over cells runs its body's
    convolutions several times slower. Costs one 1x1 convolution's multiplies.
    """
    eye = jnp.eye(x.shape[-1], dtype=x.dtype)
    return jnp.einsum("...c,cd->...d", x, eye, precision=lax.Precision.HIGHEST)


def check_conv_grads(value: str, argument: str = "conv_grads") -> None:
    """Raise ValueError naming ``argument`` unless ``value`` is one of :data:`CONV_GRADS`."""
    if value not in CONV_GRADS:
        raise ValueError(f"unknown {argument} {value!r}; valid choices are {list(CONV_GRADS)}")


def conv_fn(conv_grads: str):
    """The convolution for ``nn.Conv(conv_general_dilated=...)``: :func:`lax_conv` for
    ``"xla"`` (autodiff's gradients), :func:`conv_general_dilated` for ``"explicit"``, and
    ``lax.conv_general_dilated`` itself for ``"plain"``.

    Raises:
      ValueError: unknown ``conv_grads``.
    """
    check_conv_grads(conv_grads)
    return {"explicit": conv_general_dilated, "xla": lax_conv, "plain": lax.conv_general_dilated}[conv_grads]


def compiler_options(conv_library: str, backend: str | None = None) -> dict[str, str] | None:
    """XLA compiler options (for ``jax.jit(..., compiler_options=...)``) that run the CPU
    convolutions in ``conv_library``; None (XLA's defaults) for ``"ynnpack"`` and off CPU.

    Raises:
      ValueError: unknown ``conv_library``.
    """
    if conv_library not in CONV_LIBRARIES:
        raise ValueError(f"unknown conv_library {conv_library!r}; valid choices are {list(CONV_LIBRARIES)}")
    backend = jax.default_backend() if backend is None else backend
    if conv_library == "ynnpack" or backend != "cpu" or not _ynn_option_known():
        return None
    return {_YNN_OPTION: _YNN_WITHOUT_CONVOLUTIONS}


@cache
def _ynn_option_known() -> bool:
    """Whether this jaxlib accepts the YNNPACK fusion option (older ones have no YNNPACK:
    their convolutions are XLA's own already)."""
    try:
        jax.jit(lambda v: v + 1, compiler_options={_YNN_OPTION: _YNN_WITHOUT_CONVOLUTIONS}).lower(1.0).compile()
    except Exception:  # XlaRuntimeError / ValueError, depending on the version
        return False
    return True


# ---------------------------------------------------------------- BatchNorm and pooling


BN_MOMENTUM, BN_EPSILON = 0.9, 1e-5


def batch_norm(train: bool, name: str | None = None, affine: bool = True, grads: str = "xla") -> nn.Module:
    """PyTorch-equivalent BatchNorm (momentum 0.1 there = 0.9 here, eps 1e-5); ``affine``
    False drops scale and bias, as DARTS search networks do. ``grads="explicit"`` in training
    mode gives :class:`ExplicitBatchNorm` (same variables and values, written-out backward)."""
    check_conv_grads(grads, "grads")
    if grads == "explicit" and train:
        return ExplicitBatchNorm(affine=affine, name=name)
    return nn.BatchNorm(
        use_running_average=not train, momentum=BN_MOMENTUM, epsilon=BN_EPSILON, use_scale=affine, use_bias=affine,
        name=name,
    )


class ExplicitBatchNorm(nn.Module):
    """Training-mode BatchNorm with ``nn.BatchNorm``'s variables, statistics (``E[x^2] -
    E[x]^2``, clipped at 0) and running-average update, whose backward pass is written out.

    Autodiff of the normalisation keeps two activation-sized residuals (``x - mean`` and
    the ``x`` of ``x^2``); the written-out form keeps ``x`` alone and recomputes ``x_hat``
    in the one fused pass that also forms ``dx = s (g - mean(g) - x_hat mean(g x_hat))``,
    with ``s = scale / sqrt(var + eps)``. Inside ``lax.switch`` each residual is also a
    zero-filled output of every other branch, so an NB201 edge pays for it on every op.
    The two sums the backward pass needs, ``sum(g)`` and ``sum(g x_hat)``, come from
    ``sum(g)`` and ``sum(g x)``, which read ``g`` and ``x`` directly (``x_hat`` is never
    stored). Reverse mode only.
    """

    affine: bool = True

    @nn.compact
    def __call__(self, x: Float[Array, "... c"]) -> Float[Array, "... c"]:
        c = x.shape[-1]
        ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((c,), jnp.float32))
        ra_var = self.variable("batch_stats", "var", lambda: jnp.ones((c,), jnp.float32))
        dtype = jnp.promote_types(x.dtype, jnp.float32)
        scale = self.param("scale", nn.initializers.ones, (c,), jnp.float32) if self.affine else jnp.ones((c,), dtype)
        bias = self.param("bias", nn.initializers.zeros, (c,), jnp.float32) if self.affine else jnp.zeros((c,), dtype)
        y, mean, var = _batch_norm_train(x, scale.astype(dtype), bias.astype(dtype))
        if not self.is_initializing():
            ra_mean.value = BN_MOMENTUM * ra_mean.value + (1 - BN_MOMENTUM) * mean
            ra_var.value = BN_MOMENTUM * ra_var.value + (1 - BN_MOMENTUM) * var
        return y


def _bn_forward(x, scale, bias):
    axes = tuple(range(x.ndim - 1))
    xf = x.astype(scale.dtype)
    mean = xf.mean(axes)
    var = jnp.maximum((xf * xf).mean(axes) - mean * mean, 0.0)
    rstd = jax.lax.rsqrt(var + BN_EPSILON)
    y = ((xf - mean) * (rstd * scale) + bias).astype(x.dtype)
    return (y, mean, var), (x, mean, rstd, scale)


@jax.custom_vjp
def _batch_norm_train(x, scale, bias):
    """``(y, batch mean, batch variance)`` of training-mode BatchNorm over all but the last axis."""
    return _bn_forward(x, scale, bias)[0]


def _bn_backward(res, cotangents):
    x, mean, rstd, scale = res
    g, g_mean, g_var = cotangents
    axes = tuple(range(x.ndim - 1))
    n = x.size // x.shape[-1]
    xf = x.astype(scale.dtype)
    g = g.astype(scale.dtype)
    d_bias = g.sum(axes)
    # sum(g x_hat) from sum(g x): both sums read only g and x, so x_hat is never stored.
    d_scale = rstd * ((g * xf).sum(axes) - mean * d_bias)
    x_hat = (xf - mean) * rstd
    dx = (rstd * scale) * (g - d_bias / n - x_hat * (d_scale / n))
    # The batch statistics are outputs too (for the running averages); their cotangents are
    # zero unless something differentiates through them: d mean/dx = 1/n, d var/dx = 2 (x - mean)/n.
    dx = dx + g_mean / n + g_var * 2.0 * (xf - mean) / n
    return dx.astype(x.dtype), d_scale, d_bias


_batch_norm_train.defvjp(_bn_forward, _bn_backward)


def avg_pool_3x3(x: Float[Array, "b h w c"], stride: int = 1, grads: str = "xla") -> Float[Array, "b h' w' c"]:
    """3x3 average pooling with padding 1 that ignores the padding (``count_include_pad=False``).

    Written as nine shifted slices of the zero-padded input, summed (XLA fuses them into one
    loop, faster than its ``reduce_window``); the divisor is built with numpy from the static
    shape (flax's version pools an array of ones, which XLA constant-folds at compile time).

    ``grads="explicit"`` (stride 1; reverse mode only) writes the backward pass out: the box
    sum is symmetric, so the input gradient is the same nine-slice sum of ``g / counts``,
    where autodiff transposes each slice into a padded copy and adds nine of them.
    ``grads="plain"`` sums with XLA's ``reduce_window`` instead.
    """
    check_conv_grads(grads, "grads")
    if grads == "explicit" and stride == 1:
        return _avg_pool_explicit(x)
    if grads == "plain":
        window = lax.reduce_window(x, np.zeros((), x.dtype), lax.add, (1, 3, 3, 1), (1, stride, stride, 1),
                                   ((0, 0), (1, 1), (1, 1), (0, 0)))
        return (window / _counts(x.shape, stride)).astype(x.dtype)
    return (_box_sum(x, stride) / _counts(x.shape, stride)).astype(x.dtype)


def _box_sum(x: Float[Array, "b h w c"], stride: int) -> Float[Array, "b h' w' c"]:
    """Sum over each 3x3 window of the zero-padded input (padding 1), every ``stride``-th."""
    h, w = x.shape[1:3]
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    return sum(xp[:, i : i + h : stride, j : j + w : stride] for i in range(3) for j in range(3))


def _counts(shape, stride: int) -> np.ndarray:
    """In-image cells of each pooling window, ``(h', w', 1)``."""
    counts = [np.minimum(np.arange(0, n, stride) + 2, n) - np.maximum(np.arange(0, n, stride) - 1, 0)
              for n in shape[1:3]]
    return np.outer(*counts)[:, :, None].astype(np.float32)


@jax.custom_vjp
def _avg_pool_explicit(x):
    return (_box_sum(x, 1) / _counts(x.shape, 1)).astype(x.dtype)


def _avg_pool_explicit_fwd(x):
    return _avg_pool_explicit(x), None


def _avg_pool_explicit_bwd(_, g):
    return ((_box_sum(g / _counts(g.shape, 1), 1)).astype(g.dtype),)


_avg_pool_explicit.defvjp(_avg_pool_explicit_fwd, _avg_pool_explicit_bwd)
