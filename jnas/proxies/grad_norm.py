"""grad_norm (Abdelfattah et al., ICLR 2021): sum over conv/linear kernels of the Euclidean
norm of the loss gradient, cross-entropy on one batch of 64."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jnas.proxies.base import Proxy, kernel_sum, loss_fn


def grad_norm(net, variables, arch, x, y):
    grads = jax.grad(loss_fn(net, variables, arch, x, y))(variables["params"])
    return kernel_sum(lambda g: jnp.sqrt(jnp.sum(g * g)), grads)


PROXY = Proxy("grad_norm", grad_norm, batch_size=64, weight_grads=True, reverse_only=True)
