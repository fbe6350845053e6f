"""NASWOT: neural architecture search without training (Mellor et al., ICML 2021).

score = log|det K|, K_ij = number of ReLU units on which images i and j have the same
binary code, summed over every ReLU the network executes. A forward pass suffices: the
network sows K as it runs (``codes=True``, :func:`jnas.nets.layers.codes_kernel`), so no
backward pass is needed.
Batch 128 as in the paper. The kernel holds exact integer counts (float32 is exact below
2^24); its log-determinant is taken in float64, as numpy does in the reference code.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jnas.nets.layers import codes_kernel
from jnas.proxies.base import Proxy


def naswot(net, variables, arch, x, y):
    # BatchNorm in training mode, as in base.forward; the kernel comes back in "intermediates".
    _, state = net.apply(variables, x, arch, train=True, mutable=["batch_stats", "intermediates"])
    kernel = codes_kernel(state)
    dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    return jnp.linalg.slogdet(kernel.astype(dtype))[1]


PROXY = Proxy("naswot", naswot, configure=lambda net: net.clone(codes=True), batch_size=128, float64=True, cpu_conv_library="eigen")
