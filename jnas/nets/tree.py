"""GNAS weight-sharing supernet for tree-structured multi-attribute networks (:mod:`jnas.spaces.tree`).

Every possible connection (block i of layer l -> block j of layer l + 1) owns its weights,
and a tree uses the weights of the connections it has: that is GNAS's weight sharing, by
which every candidate tree is scored without training it. The architecture (the parent
array) is an *input array*: one compiled function serves every tree, so the greedy search
never recompiles.

Connections into hidden layers are 3x3 conv + bias + ReLU followed by 2x2 max pooling
(batch norm would need statistics per connection and is left out); connections into the
output layer are linear classifiers on the flattened parent block, one per attribute with
its own number of classes.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from jnas.nets.layers import torch_bias_init
from jnas.spaces.tree import TreeSpace


def _per_connection(batch_axes: tuple[int, ...]):
    """PyTorch's default kernel init for weights stacked over connections (the leading axes)."""
    return nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform", batch_axis=batch_axes)


class TreeSupernet(nn.Module):
    """``apply(v, x, parents) -> tuple of (b, K_n) logits``, one per attribute.

    ``C`` channels per hidden block; ``classes[n]`` outputs for attribute n.
    """

    space: TreeSpace
    classes: tuple[int, ...]
    C: int = 16

    @nn.compact
    def __call__(self, x: Float[Array, "b h w c"], parents: Int[Array, "L"], train: bool = True):
        sp = self.space
        if len(self.classes) != sp.num_attributes:
            raise ValueError(f"{len(self.classes)} class counts for {sp.num_attributes} attributes")
        h = x[None]  # (B_l, b, h, w, c): the blocks of the current layer
        for l in range(sp.layers - 2):
            B_in, B_out, c_in = sp.blocks[l], sp.blocks[l + 1], h.shape[-1]
            w = self.param(f"conv{l}", _per_connection((0, 1)), (B_in, B_out, 3, 3, c_in, self.C))
            bias = self.param(f"bias{l}", torch_bias_init(9 * c_in), (B_in, B_out, self.C))
            outs = []
            for j in range(B_out):
                p = parents[sp.offset(l) + j]
                y = jax.lax.conv_general_dilated(h[p], w[p, j], (1, 1), "SAME",
                                                 dimension_numbers=("NHWC", "HWIO", "NHWC"))
                y = nn.relu(y + bias[p, j])
                outs.append(nn.max_pool(y, (2, 2), strides=(2, 2)) if min(y.shape[1:3]) >= 2 else y)
            h = jnp.stack(outs)
        l = sp.layers - 2
        flat = h.reshape(h.shape[0], h.shape[1], -1)
        logits = []
        for n, k in enumerate(self.classes):
            w = self.param(f"head{n}", _per_connection((0,)), (sp.blocks[l], flat.shape[-1], k))
            b = self.param(f"head{n}_bias", torch_bias_init(flat.shape[-1]), (sp.blocks[l], k))
            p = parents[sp.offset(l) + n]
            logits.append(flat[p] @ w[p] + b[p])
        return tuple(logits)
