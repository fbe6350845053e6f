"""GraSP (Wang et al., ICLR 2020; as a NAS proxy: Abdelfattah et al. 2021).

score = sum over conv/linear kernels of -theta * (H g), where g = dL/dtheta is held
constant and H is the Hessian of the loss in the kernels (biases and BatchNorm fixed).
H g is a Hessian-vector product (``jax.jvp`` of ``jax.grad``); no Hessian is formed.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jnas.proxies.base import Proxy, is_kernel, kernel_sum, loss_fn


def grasp(net, variables, arch, x, y):
    params = variables["params"]
    mask = jax.tree_util.tree_map_with_path(lambda p, _: is_kernel(p), params)
    loss = loss_fn(net, variables, arch, x, y)
    grad = jax.grad(loss)
    g = jax.tree.map(lambda gi, m: jnp.where(m, gi, 0.0), jax.lax.stop_gradient(grad(params)), mask)
    _, hg = jax.jvp(grad, (params,), (g,))  # tangent is zero off the kernels: H restricted to them
    return kernel_sum(lambda p, h: -jnp.sum(p * h), params, hg)


PROXY = Proxy("grasp", grasp, batch_size=64, weight_grads=True)
