"""Fisher channel saliency (Theis et al. 2018, Turner et al. 2020; as a NAS proxy:
Abdelfattah et al., ICLR 2021).

For every conv/linear output activation a (before BatchNorm) and channel c:
F_c = 0.5 * mean_b (sum_hw a * dL/da)^2. The network is built with channel probes, so
``dL/dp[b, c]`` of a zero probe p in ``a * (1 + p)`` *is* ``sum_hw a * dL/da``.

As in the reference code, each channel value is broadcast over the weights of that
output channel before summing, i.e. weighted by the layer's fan-in (c_in * kh * kw).

``a`` includes the conv bias where there is one. The reference code scores NB201 search
cells, whose convs carry a bias that the following BatchNorm cancels; the bias still enters
``a``, and on NAS-Bench-201 it takes the Spearman correlation with accuracy from 0.60 to the
published 0.36 (``NB201Network(cell_affine=False)``, see the README).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jnas.proxies.base import Proxy, cross_entropy, forward


def _kernel_path(probe_path: tuple[str, ...]) -> tuple[str, ...]:
    """Path of the kernel a probe sits behind: ``.../probe`` -> ``.../conv``, ``x_probe`` -> ``x``."""
    *head, name = probe_path
    return tuple(head) + (("conv",) if name == "probe" else (name.removesuffix("_probe"),))


def fisher(net, variables, arch, x, y):
    probes = variables["probes"]

    def loss(p):
        return cross_entropy(forward(net, {**variables, "probes": p}, x, arch), y)

    grads = jax.grad(loss)(probes)
    kernels = {tuple(k.key for k in path): leaf for path, leaf in jax.tree_util.tree_flatten_with_path(variables["params"])[0]}
    total = jnp.zeros(())
    for path, g in jax.tree_util.tree_flatten_with_path(grads)[0]:
        names = tuple(k.key for k in path)[:-1]  # drop the variable name "scale"
        kernel = kernels[_kernel_path(names) + ("kernel",)]
        fan_in = 1
        for d in kernel.shape[:-1]:
            fan_in *= d
        per_channel = 0.5 * jnp.mean(g.reshape(g.shape[0], -1) ** 2, axis=0)
        total = total + fan_in * jnp.sum(per_channel)
    return total


PROXY = Proxy("fisher", fisher, configure=lambda net: net.clone(probes=True), batch_size=64, reverse_only=True)
