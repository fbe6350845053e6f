"""Building blocks shared by jnas networks: PyTorch-default initialisers, ReLU-Conv-BN,
and the two probes the zero-cost proxies read out of a forward pass.

Probes
------
* ``relu_kernel`` (NASWOT, Mellor et al. 2021): every ReLU adds
  ``c c^T + (1-c)(1-c)^T`` for the binary code ``c = [x > 0]`` of its input, so the sum over
  ReLUs counts, for each pair of images, the units on which they agree. Networks return
  this ``(b, b)`` kernel beside the logits when built with ``codes=True``.
* ``channel_probe`` (fisher, Abdelfattah et al. 2021): with ``probes=True`` each conv/linear
  output ``a`` is multiplied by ``(1 + p)`` with ``p = 0`` of shape ``(b, 1, 1, c)``, so
  ``dL/dp[b, c] = sum_hw a * dL/da``, the per-image, per-channel term of the Fisher
  pruning score, without storing activations.
"""

from __future__ import annotations

import jax
import numpy as np
import jax.numpy as jnp
import flax.linen as nn
from jaxtyping import Array, Float

from jnas.nets.conv import check_conv_grads, conv_fn

# PyTorch's default Conv/Linear init: kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in)).
# Zero-cost proxies are published for networks with this init, so jnas uses it too.
torch_kernel_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def torch_bias_init(fan_in: int):
    """U(+-1/sqrt(fan_in)), PyTorch's default bias init."""
    bound = 1.0 / jnp.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def concrete(arch, net: str, what: str = "architecture") -> np.ndarray:
    """``arch`` as numpy, for networks whose layer shapes depend on it (``select="static"``).

    Raises:
      ValueError: ``arch`` is a traced array (such a network compiles once per architecture).
    """
    try:
        return np.asarray(arch)
    except jax.errors.TracerArrayConversionError:
        raise ValueError(f"{net} needs a concrete {what} (numpy), not a traced array") from None


def relu_kernel(x: Float[Array, "b ..."]) -> Float[Array, "b b"]:
    """NASWOT agreement kernel of one ReLU's input: ``c c^T + (1-c)(1-c)^T``, c = [x > 0].

    Computed as ``(D + s s^T) / 2`` with ``s = 2c - 1`` (one matmul instead of two). ``s`` is
    held in a narrow type where +-1 is exact and the products are summed in a wider one
    (``preferred_element_type``), so the counts are exact integers: int8 with int32 sums on
    CPU (1.2 ms for a batch of 128 32x32x16 maps on the 2-core CPU jnas is tested on, against
    2.3 ms in bfloat16 and 5.7 ms in float32), bfloat16 with float32 sums elsewhere (exact
    below 2^24 units; GPUs run it on their matrix units). The kernel is returned in float32.
    """
    narrow, wide = (jnp.int8, jnp.int32) if jax.default_backend() == "cpu" else (jnp.bfloat16, jnp.float32)
    s = jnp.where(x.reshape(x.shape[0], -1) > 0, narrow(1), narrow(-1))
    ss = jax.lax.dot_general(s, s, (((1,), (1,)), ((), ())), preferred_element_type=wide)
    return 0.5 * (s.shape[1] + ss.astype(jnp.float32))


class ChannelProbe(nn.Module):
    """Identity unless the ``probes`` collection is in use; then ``a * (1 + p)``, p = 0."""

    @nn.compact
    def __call__(self, a: Array) -> Array:
        shape = (a.shape[0],) + (1,) * (a.ndim - 2) + (a.shape[-1],)
        p = self.variable("probes", "scale", jnp.zeros, shape, a.dtype)
        return a * (1.0 + p.value)


class ReLUConvBN(nn.Module):
    """ReLU -> Conv -> BatchNorm, the NAS-Bench-201 / DARTS conv op.

    The conv has no bias unless ``conv_bias`` (PyTorch's default bias init then);
    ``conv_grads`` picks its backward pass (see :mod:`jnas.nets.conv`).
    Returns ``(y, k)``: ``k`` is the NASWOT kernel of the ReLU input when ``codes`` else 0.
    """

    features: int
    kernel: int
    stride: int = 1
    use_bn: bool = True
    codes: bool = False
    probes: bool = False
    affine: bool = True
    conv_bias: bool = False
    conv_grads: str = "xla"

    @nn.compact
    def __call__(self, x: Array, train: bool) -> tuple[Array, Array]:
        k = relu_kernel(x) if self.codes else jnp.zeros((), jnp.float32)
        pad = (self.kernel - 1) // 2
        y = nn.Conv(
            self.features,
            (self.kernel, self.kernel),
            strides=(self.stride, self.stride),
            padding=((pad, pad), (pad, pad)),
            use_bias=self.conv_bias,
            kernel_init=torch_kernel_init,
            bias_init=torch_bias_init(x.shape[-1] * self.kernel * self.kernel),
            conv_general_dilated=conv_fn(self.conv_grads),
            name="conv",
        )(nn.relu(x))
        if self.probes:
            y = ChannelProbe(name="probe")(y)
        if self.use_bn:
            y = batch_norm(train, "bn", self.affine, grads=self.conv_grads)(y)
        return y, k


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
    stored: jacob_cov about 2% faster, median of 10 interleaved rounds on 16 cells).
    Reverse mode only, like the convolutions of :mod:`jnas.nets.conv`.
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


def channel_shuffle(x: Float[Array, "... c"], groups: int) -> Float[Array, "... c"]:
    """Interleave ``groups`` channel groups: channel g*(c/groups)+i moves to i*groups+g
    (ShuffleNet's shuffle, as PC-DARTS applies it after each partial-channel edge)."""
    c = x.shape[-1]
    return x.reshape(*x.shape[:-1], groups, c // groups).swapaxes(-1, -2).reshape(x.shape)


def avg_pool_3x3(x: Float[Array, "b h w c"], stride: int = 1, grads: str = "xla") -> Float[Array, "b h' w' c"]:
    """3x3 average pooling with padding 1 that ignores the padding (``count_include_pad=False``).

    Written as nine shifted slices of the zero-padded input, summed: XLA fuses them into one
    loop, 2-3x faster on a 2-core CPU than its ``reduce_window`` (2.1 vs 5.9 ms for a batch
    of 128 32x32x16 maps). The divisor is built with numpy from the static shape. (Flax's
    own version pools an array of ones, which XLA constant-folds at compile time: over 10 s
    per op for a batch of 1,000 32x32 images once the architecture is static.)

    ``grads="explicit"`` (stride 1; reverse mode only, like the convolutions of
    :mod:`jnas.nets.conv`) writes the backward pass out: the box sum is symmetric, so the
    input gradient is the same nine-slice sum of ``g / counts``, where autodiff transposes
    each slice into a padded copy and adds nine of them (0.6 vs 1.2-1.9 ms for a batch of 64
    32x32x16 maps on 2 CPU cores).
    """
    check_conv_grads(grads, "grads")
    if grads == "explicit" and stride == 1:
        return _avg_pool_explicit(x)
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
