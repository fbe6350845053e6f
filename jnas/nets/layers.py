"""Building blocks shared by jnas networks: PyTorch-default initialisers, ReLU-Conv-BN,
and the two probes the zero-cost proxies read out of a forward pass.

Probes
------
* ``relu_kernel`` (NASWOT, Mellor et al. 2021): every ReLU adds
  ``c c^T + (1-c)(1-c)^T`` for the binary code ``c = [x > 0]`` of its input, so the sum over
  ReLUs counts, for each pair of images, the units on which they agree. Networks built with
  ``codes=True`` sow this ``(b, b)`` kernel into the ``"intermediates"`` collection (their
  output stays the logits); :func:`codes_kernel` sums it back out.
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

from jnas.nets.kernels import batch_norm, conv_fn

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
    CPU (the fastest there, docs/performance.md), bfloat16 with float32 sums elsewhere (exact
    below 2^24 units; GPUs run it on their matrix units). The kernel is returned in float32.
    """
    narrow, wide = (jnp.int8, jnp.int32) if jax.default_backend() == "cpu" else (jnp.bfloat16, jnp.float32)
    s = jnp.where(x.reshape(x.shape[0], -1) > 0, narrow(1), narrow(-1))
    ss = jax.lax.dot_general(s, s, (((1,), (1,)), ((), ())), preferred_element_type=wide)
    return 0.5 * (s.shape[1] + ss.astype(jnp.float32))


KERNEL_NAME = "naswot_kernel"  # where networks built with codes=True sow relu_kernel sums


def sow_codes(module: nn.Module, kernel: Array) -> None:
    """Add ``kernel`` to ``module``'s NASWOT kernel in ``"intermediates"`` (not at init, so the
    kernel never lands in the variables that ``init`` returns)."""
    if not module.is_initializing():
        module.sow("intermediates", KERNEL_NAME, kernel, init_fn=lambda: jnp.zeros((), jnp.float32),
                   reduce_fn=lambda a, b: a + b)


def codes_kernel(state: dict) -> Float[Array, "b b"]:
    """The NASWOT kernel summed over every module of an ``apply(...,
    mutable=["intermediates", ...])`` state.

    Raises:
      ValueError: nothing sowed a kernel (the network was not built with ``codes=True``, or
        ``"intermediates"`` was not mutable).
    """
    leaves = [leaf for path, leaf in jax.tree_util.tree_flatten_with_path(state.get("intermediates", {}))[0]
              if any(getattr(p, "key", None) == KERNEL_NAME for p in path)]
    if not leaves:
        raise ValueError("the network sowed no NASWOT kernel: build it with codes=True and apply it with "
                         "mutable=['intermediates', ...]")
    return sum(leaves[1:], leaves[0])


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
    ``conv_grads`` picks its backward pass (see :mod:`jnas.nets.kernels`). With ``codes`` it
    sows the NASWOT kernel of its ReLU input (:func:`sow_codes`).
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
    def __call__(self, x: Array, train: bool) -> Array:
        if self.codes:
            sow_codes(self, relu_kernel(x))
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
        return y


def channel_shuffle(x: Float[Array, "... c"], groups: int) -> Float[Array, "... c"]:
    """Interleave ``groups`` channel groups: channel g*(c/groups)+i moves to i*groups+g
    (ShuffleNet's shuffle, as PC-DARTS applies it after each partial-channel edge)."""
    c = x.shape[-1]
    return x.reshape(*x.shape[:-1], groups, c // groups).swapaxes(-1, -2).reshape(x.shape)
