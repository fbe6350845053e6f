"""The CNN of a psoCNN chain (:mod:`jnas.spaces.cnn_chain`): conv-BN-ReLU, 2x2/2 pooling,
flatten, ReLU fully connected layers, and a linear output layer of ``num_classes`` units.

The chain fixes the layer shapes, so it is a static argument (``select="static"``: one
compiled step per chain), as for Genetic-CNN. psoCNN trains with dropout before the fully
connected layers; jnas leaves it out (the trainer has no dropout key) and says so here.
"""

from __future__ import annotations

import flax.linen as nn
from jaxtyping import Array, Float

from jnas.nets.kernels import batch_norm
from jnas.nets.layers import concrete, torch_bias_init, torch_kernel_init
from jnas.spaces import cnn_chain as space


class ChainNetwork(nn.Module):
    """``apply(v, x, chain_array, train)`` with the ``(W, 3)`` array form of a chain."""

    num_classes: int = 10
    select: str = "static"

    @nn.compact
    def __call__(self, x: Float[Array, "b h w c"], chain, train: bool = True):
        layers = space.decode(concrete(chain, "ChainNetwork", "chain"))
        flat = False
        for i, layer in enumerate(layers):
            if layer.kind == "conv":
                x = nn.Conv(layer.size, (layer.kernel, layer.kernel), padding="SAME", use_bias=False,
                            kernel_init=torch_kernel_init, name=f"conv{i}")(x)
                x = nn.relu(batch_norm(train, f"bn{i}")(x))
            elif layer.kind in space.POOLS:
                if min(x.shape[1:3]) < 2:
                    raise ValueError(f"layer {i} pools a {x.shape[1]}x{x.shape[2]} map; the input allows fewer "
                                     "pooling layers (see cnn_chain.limit_pools)")
                pool = nn.max_pool if layer.kind == "maxpool" else nn.avg_pool
                x = pool(x, (2, 2), strides=(2, 2))
            else:
                if not flat:
                    x, flat = x.reshape(x.shape[0], -1), True
                x = nn.relu(nn.Dense(layer.size, kernel_init=torch_kernel_init,
                                     bias_init=torch_bias_init(x.shape[-1]), name=f"fc{i}")(x))
        if not flat:
            x = x.reshape(x.shape[0], -1)
        return nn.Dense(self.num_classes, kernel_init=torch_kernel_init, bias_init=torch_bias_init(x.shape[-1]),
                        name="output")(x)
