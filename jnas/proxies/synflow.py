"""SynFlow (Tanaka et al., NeurIPS 2020; as a NAS proxy: Abdelfattah et al., ICLR 2021).

On the network without BatchNorm, with every parameter replaced by its absolute value
and an all-ones input image, R = sum(f(1)); score = sum over conv/linear kernels of
|theta * dR/dtheta|. Data-free. Runs in float64 as the reference code does: products of
~50 layer gains overflow float32 for deep all-conv cells.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jnas.proxies.base import Proxy, forward, kernel_sum


def synflow(net, variables, arch, x, y):
    dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    params = jax.tree.map(lambda p: jnp.abs(p).astype(dtype), variables["params"])
    ones = jnp.ones((1,) + x.shape[1:], dtype)

    def total(p):
        return jnp.sum(forward(net, {**variables, "params": p}, ones, arch))

    grads = jax.grad(total)(params)
    return kernel_sum(lambda p, g: jnp.sum(jnp.abs(p * g)), params, grads)


PROXY = Proxy("synflow", synflow, configure=lambda net: net.clone(use_bn=False), batch_size=None, float64=True)
