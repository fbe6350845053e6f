"""The two hand-designed segmentation baselines, trained with the same recipe as the found
networks (:mod:`jnas.seg.train`):

* ``unet``: U-Net (Ronneberger, Fischer & Brox, MICCAI 2015): per level two 3x3
  convolutions with norm and ReLU, 2x2 max-pooling down, a bottleneck of twice the last
  width, and a decoder that upsamples and merges the skip. Widths 16-32-64-128 (bottleneck
  256), a quarter of the paper's 64-1024, to train on a CPU.
* ``unet_transformer``: the same U-Net with its bottleneck replaced by Transformer layers
  (multi-head self-attention and an MLP, pre-norm, after a 3x3 depthwise convolutional
  position encoding) over the bottleneck tokens, as TransUNet (Chen et al. 2021, arXiv
  2102.04306) puts a Transformer between a CNN encoder and a U-Net decoder; it stands in for
  the application note's fixed "U-Net layers + Transformer" design.

Both share :class:`jnas.nets.hybrid.HybridUNet`'s decoder step, norm and attention, so the
only differences from the searched networks are the encoders.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from jnas.nets.hybrid import _attention, _Ctx, kernel_init, upsample2
from jnas.nets.kernels import depthwise

BASELINES = ("unet", "unet_transformer")


class UNet(nn.Module):
    """U-Net; ``transformer_layers > 0`` replaces the bottleneck's convolutions with that many
    Transformer layers (``heads`` heads, MLP ratio ``mlp``)."""

    widths: tuple[int, ...] = (16, 32, 64, 128)
    transformer_layers: int = 0
    heads: int = 8
    mlp: int = 4
    out_channels: int = 1

    @nn.compact
    def __call__(self, x: Float[Array, "b h w c"], arch=None):
        levels = len(self.widths)
        if x.shape[1] % 2 ** levels or x.shape[2] % 2 ** levels:
            raise ValueError(f"image sides {x.shape[1:3]} must be multiples of {2 ** levels} ({levels} poolings)")
        ctx = _Ctx(True, 0, False)
        p = lambda name, shape, init=kernel_init: self.param(name, init, shape)  # noqa: E731

        def norm_relu(name, y):
            w = y.shape[-1]
            y, _ = ctx.norm(y, p(name + "_g", (w,), nn.initializers.ones), p(name + "_b", (w,), nn.initializers.zeros), None)
            return jax.nn.relu(y)

        def double(name, y, w):
            y = norm_relu(name + "_n1", ctx.conv(y, p(name + "_c1", (3, 3, y.shape[-1], w))))
            return norm_relu(name + "_n2", ctx.conv(y, p(name + "_c2", (3, 3, w, w))))

        skips, h = [], x
        for i, w in enumerate(self.widths):
            h = double(f"e{i}", h, w)
            skips.append(h)
            h = nn.max_pool(h, (2, 2), (2, 2))
        bottom = 2 * self.widths[-1]
        if self.transformer_layers:
            h = ctx.conv(h, p("embed", (1, 1, h.shape[-1], bottom)))
            b, hh, ww, W = h.shape
            for j in range(self.transformer_layers):
                q = lambda n, shape: p(f"t{j}_{n}", shape)  # noqa: E731
                h = h + depthwise(h, q("pos", (3, 3, 1, W)))
                g1, b1 = p(f"t{j}_n1_g", (W,), nn.initializers.ones), p(f"t{j}_n1_b", (W,), nn.initializers.zeros)
                y, _ = ctx.norm(h, g1, b1, None)
                tok = y.reshape(b, hh * ww, W)
                a = _attention(tok @ q("q", (W, W)), tok @ q("k", (W, W)), tok @ q("v", (W, W)), W, self.heads, None, self.heads)
                h = h + (a @ q("o", (W, W))).reshape(h.shape)
                g2, b2 = p(f"t{j}_n2_g", (W,), nn.initializers.ones), p(f"t{j}_n2_b", (W,), nn.initializers.zeros)
                y, _ = ctx.norm(h, g2, b2, None)
                h = h + jax.nn.gelu(y @ q("fc1", (W, self.mlp * W))) @ q("fc2", (self.mlp * W, W))
        else:
            h = double("bottom", h, bottom)
        for i in range(levels - 1, -1, -1):
            w = self.widths[i]
            y = ctx.conv(upsample2(h), p(f"d{i}_up", (3, 3, h.shape[-1], w))) + ctx.conv(skips[i], p(f"d{i}_skip", (3, 3, w, w)))
            y = norm_relu(f"d{i}_n1", y)
            h = norm_relu(f"d{i}_n2", ctx.conv(y, p(f"d{i}_conv", (3, 3, w, w))))
        return ctx.conv(h, p("head", (1, 1, h.shape[-1], self.out_channels))) + p("head_bias", (self.out_channels,), nn.initializers.zeros)


def baseline(name: str) -> nn.Module:
    """``"unet"`` or ``"unet_transformer"`` (module docstring); ValueError for another name."""
    if name == "unet":
        return UNet()
    if name == "unet_transformer":
        return UNet(transformer_layers=2)
    raise ValueError(f"unknown baseline {name!r}; valid baselines are {list(BASELINES)}")


def count_params(params) -> int:
    return int(sum(leaf.size for leaf in jax.tree.leaves(params)))


def xla_flops(net: nn.Module, params, x_shape: tuple[int, ...]) -> float:
    """FLOPs per image of ``net`` at input shape ``x_shape`` (batch 1) from XLA's cost analysis."""
    x = jnp.zeros((1, *x_shape[1:]))
    ca = jax.jit(net.apply).lower({"params": params}, x).compile().cost_analysis()
    return float((ca[0] if isinstance(ca, list) else ca)["flops"])
