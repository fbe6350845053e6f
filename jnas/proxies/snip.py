"""SNIP connection sensitivity (Lee et al., ICLR 2019; as a NAS proxy: Abdelfattah et al. 2021).

score = sum over conv/linear kernels of |theta * dL/dtheta| (the gradient of the loss with
respect to a multiplicative mask at 1), cross-entropy on one batch of 64.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jnas.proxies.base import Proxy, kernel_sum, loss_fn


def snip(net, variables, arch, x, y):
    params = variables["params"]
    grads = jax.grad(loss_fn(net, variables, arch, x, y))(params)
    return kernel_sum(lambda p, g: jnp.sum(jnp.abs(p * g)), params, grads)


PROXY = Proxy("snip", snip, batch_size=64, weight_grads=True, reverse_only=True)
