"""SynFlow (Tanaka et al., NeurIPS 2020; as a NAS proxy: Abdelfattah et al., ICLR 2021).

On the network without BatchNorm, with every parameter replaced by its absolute value
and an all-ones input image, R = sum(f(1)); score = sum over conv/linear kernels of
|theta * dR/dtheta|. Data-free. Runs in float64 as the reference code does: products of
~50 layer gains overflow float32 for deep all-conv cells.

Computed in forward mode. With |theta| and a positive input every activation is >= 0 and R
is non-decreasing in every weight, so each term |theta * dR/dtheta| = theta * dR/dtheta and
their sum is the directional derivative of R along the kernels themselves (Euler's identity
for R(s * kernels)): one ``jax.jvp``, with no kernel-gradient convolutions, which XLA:CPU
runs slowly inside ``lax.switch`` and which ``vmap`` over architectures turns into grouped
convolutions.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jnas.proxies.base import Proxy, forward, is_kernel


def synflow(net, variables, arch, x, y):
    dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    params = jax.tree.map(lambda p: jnp.abs(p).astype(dtype), variables["params"])
    ones = jnp.ones((1,) + x.shape[1:], dtype)

    def total(p):
        return jnp.sum(forward(net, {**variables, "params": p}, ones, arch))

    along = jax.tree_util.tree_map_with_path(lambda path, p: p if is_kernel(path) else jnp.zeros_like(p), params)
    return jax.jvp(total, (params,), (along,))[1]


PROXY = Proxy("synflow", synflow, configure=lambda net: net.clone(use_bn=False), batch_size=None, float64=True)
