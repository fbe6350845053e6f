"""NASWOT: neural architecture search without training (Mellor et al., ICML 2021).

score = log|det K|, K_ij = number of ReLU units on which images i and j have the same
binary code, summed over every ReLU the network executes. A forward pass suffices: the
network accumulates K as it runs (``codes=True``), so no backward pass is needed.
Batch 128 as in the paper. The kernel holds exact integer counts (float32 is exact below
2^24); its log-determinant is taken in float64, as numpy does in the reference code.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jnas.proxies.base import Proxy, forward


def naswot(net, variables, arch, x, y):
    _, kernel = forward(net, variables, x, arch)
    dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    return jnp.linalg.slogdet(kernel.astype(dtype))[1]


PROXY = Proxy("naswot", naswot, configure=lambda net: net.clone(codes=True), batch_size=128, float64=True, cpu_conv_library="eigen")
