"""What every zero-cost proxy shares: its record type, the forward pass, the loss, and
selection of the weight kernels that the pruning-at-init scores sum over."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, Int


class Proxy(NamedTuple):
    """A zero-cost proxy.

    Attributes:
      name: registry name.
      fn: ``fn(net, variables, arch, x, y) -> scalar`` for one architecture; ``net`` is static.
      configure: turns the base network into the one the proxy is defined on
        (e.g. without BatchNorm, or with NASWOT codes).
      batch_size: images per score in the proxy's paper (None: needs no data).
      float64: the published implementation runs in double precision.
      higher_is_better: sign convention of the published score.
      weight_grads: needs gradients with respect to conv kernels.
      reverse_only: differentiates the network in reverse mode only (no ``jax.jvp``), so
        its convolutions may use written-out gradients (:mod:`jnas.nets.kernels`), which
        :func:`jnas.proxies.scoring.score` does on CPU.
      cpu_conv_library: the library that ran its convolutions fastest on CPU (``"ynnpack"``,
        XLA's default, or ``"eigen"``; see :mod:`jnas.nets.kernels`), measured by scoring.
      reads_weights: False for proxies computed from the network's structure alone (params,
        FLOPs): ``fn`` then gets empty variables (``{}``) instead of an initialisation, which
        for the full NB201 network costs 20-30 s of compilation on CPU.
    """

    name: str
    fn: Callable[..., Array]
    configure: Callable[[nn.Module], nn.Module] = lambda net: net
    batch_size: int | None = 64
    float64: bool = False
    higher_is_better: bool = True
    weight_grads: bool = False
    reverse_only: bool = False
    cpu_conv_library: str = "ynnpack"
    reads_weights: bool = True


def forward(net: nn.Module, variables: dict, x: Array, arch: Array, train: bool = True) -> Any:
    """Network output with BatchNorm in training mode (batch statistics), as in the
    proxies' reference code, which scores freshly built PyTorch modules in train mode."""
    out, _ = net.apply(variables, x, arch, train=train, mutable=["batch_stats"])
    return out


def cross_entropy(logits: Float[Array, "b k"], y: Int[Array, "b"]) -> Array:
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def loss_fn(net: nn.Module, variables: dict, arch: Array, x: Array, y: Array) -> Callable[[dict], Array]:
    """``params -> mean cross-entropy`` with the other collections held fixed."""

    def loss(params):
        return cross_entropy(forward(net, {**variables, "params": params}, x, arch), y)

    return loss


def is_kernel(path) -> bool:
    """Conv and Dense weights: the tensors the pruning scores (snip, grasp, ...) sum over."""
    return getattr(path[-1], "key", None) == "kernel"


def kernel_sum(fn: Callable[..., Array], *trees) -> Array:
    """``sum over kernel leaves of fn(leaf, ...)`` (biases and BatchNorm excluded)."""
    leaves = jax.tree_util.tree_flatten_with_path(trees[0])[0]
    others = [jax.tree_util.tree_leaves(t) for t in trees[1:]]
    total = jnp.zeros((), leaves[0][1].dtype)
    for i, (path, leaf) in enumerate(leaves):
        if is_kernel(path):
            total = total + fn(leaf, *[o[i] for o in others])
    return total
