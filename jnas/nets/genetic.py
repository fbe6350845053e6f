"""Genetic-CNN network (Xie & Yuille 2017) for a binary stage genome (:mod:`jnas.spaces.genetic`).

Each stage: a default input node (3x3 conv-BN-ReLU) feeds every node without inputs; node j
sums its inputs and applies 3x3 conv-BN-ReLU; nodes without outputs are summed into a
default output node (3x3 conv-BN-ReLU); nodes with neither inputs nor outputs are dropped.
Stages are followed by 2x2 max pooling, the network by a fully connected classifier on the
flattened features (the design of the survey (docs/references.md): "pooling, then fully connected"; a global average
pool instead loses where the strokes are and reached only 37% on MNIST in a test run). The topology differs per genome, so the genome is static (``select="static"``).
"""

from __future__ import annotations

import flax.linen as nn
import numpy as np
from jaxtyping import Array, Float

from jnas.nets.kernels import batch_norm
from jnas.nets.layers import concrete, torch_bias_init, torch_kernel_init
from jnas.spaces import genetic as space


class ConvBNReLU(nn.Module):
    features: int

    @nn.compact
    def __call__(self, x: Array, train: bool) -> Array:
        y = nn.Conv(self.features, (3, 3), padding=((1, 1), (1, 1)), use_bias=False, kernel_init=torch_kernel_init)(x)
        return nn.relu(batch_norm(train, "bn")(y))


class GeneticNetwork(nn.Module):
    """``apply(v, x, genome, train)``; stage s has ``C * 2**s`` channels."""

    stages: tuple[int, ...] = (7,)
    C: int = 8
    num_classes: int = 10
    select: str = "static"

    @nn.compact
    def __call__(self, x: Float[Array, "b h w c"], genome, train: bool = True):
        adj = space.adjacency(space.GeneticSpace(self.stages), concrete(genome, "GeneticNetwork", "genome"))
        for s, a in enumerate(adj):
            c = self.C * 2**s
            x = ConvBNReLU(c, name=f"stage{s}_input")(x, train)
            has_in, has_out = a.any(0), a.any(1)
            outs = {}
            for j in range(len(a)):
                if not has_in[j] and not has_out[j]:
                    continue  # isolated node: dropped
                inp = sum(outs[i] for i in np.flatnonzero(a[:, j])) if has_in[j] else x
                outs[j] = ConvBNReLU(c, name=f"stage{s}_node{j + 1}")(inp, train)
            ends = [outs[j] for j in outs if not has_out[j]]
            x = ConvBNReLU(c, name=f"stage{s}_output")(sum(ends) if ends else x, train)
            x = nn.max_pool(x, (2, 2), strides=(2, 2))
        y = x.reshape(x.shape[0], -1)
        return nn.Dense(self.num_classes, kernel_init=torch_kernel_init, bias_init=torch_bias_init(y.shape[-1]),
                        name="classifier")(y)
