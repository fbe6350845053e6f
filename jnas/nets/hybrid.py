"""The hybrid CNN-Transformer U-Net of :mod:`jnas.spaces.hybrid`: one elastic supernet and its
stand-alone sub-networks, from one piece of code.

``HybridUNet(space)`` is the **supernet**: it holds the maximal weights (every block type at
every depth, the widest channels, the largest kernel, ratio and head count) and takes the
architecture as an input array, so one jitted function serves every candidate, and
``jax.lax.map``/``jax.vmap`` push a batch of candidates through one call. A candidate is
realised by masking: channels beyond its width are zero (``width``), blocks beyond its depth
are skipped (``lax.cond``), its block type is a ``lax.switch`` branch, kernels are the centre
``k x k`` crop of the largest (OFA's elastic kernel without the transform matrices),
the MLP/expansion hidden units beyond ``ratio * width`` are zero, and attention channels are
grouped into the candidate's heads by per-head channel masks (each head of width
``width / heads``, as ``reshape(..., heads, width // heads)`` groups them).

``HybridUNet(space, fixed=arch)`` is the **stand-alone** network of one candidate: the same
code with exact shapes and no masks. :func:`extract` slices the supernet's weights into it
(leading slices; centre crops of kernels), and the two give equal outputs
(``tests/nets/test_hybrid.py``): weight sharing here is exact, not approximate.

Layout (channels last): a 3x3 stem at full resolution, then per stage a stride-2 3x3
convolution to the stage width and ``depth`` residual blocks; a U-Net decoder (Ronneberger et
al. 2015) upsamples by 2 (nearest), adds a 3x3 convolution of the skip to one of the
upsampled map (a convolution of their concatenation, split so each part slices alone), then
norm-ReLU-conv-norm-ReLU, back to the stem's resolution; a 1x1 head gives the logits.
Normalisation is a per-pixel LayerNorm over the active channels (no running statistics, so
training and inference agree, and masked channels stay out of the statistics).

With ``taps=True`` the network also returns what the dense zero-cost proxies read
(:mod:`jnas.seg.proxies`): the per-pixel NASWOT kernel over ``probe`` sampled pixels of every
image (every ReLU/GELU of active channels adds its binary-code agreement counts), the sum of
``log(std)`` of every normalisation's input (Zen-NAS's BN term), and the pre-head features.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from jnas.nets.kernels import conv_fn, depthwise
from jnas.spaces.hybrid import BLOCKS, SPACE, HybridSpace

EPS = 1e-5
kernel_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")  # PyTorch's default


class Taps(NamedTuple):
    codes: Array  # (b * probe, b * probe) float32 NASWOT agreement counts (0 when probe == 0)
    log_std: Array  # () sum over norm layers of log sqrt(mean input variance)
    features: Array  # (b, h, w, stem_width) pre-head features


def _sizes_mask(n: int, active, dtype) -> Array | None:
    return None if active is None else (jnp.arange(n) < active).astype(dtype)


def conv(x, w, stride: int = 1, groups: int = 1, fn: Callable = jax.lax.conv_general_dilated):
    """"Same"-padded NHWC/HWIO convolution by ``fn`` (a :func:`jnas.nets.kernels.conv_fn` backend)."""
    pads = []
    for n, k in zip(x.shape[1:3], w.shape[:2]):
        total = max((-(-n // stride) - 1) * stride + k - n, 0)
        pads.append((total // 2, total - total // 2))
    return fn(x, w, (stride, stride), pads, dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=groups)


def upsample2(x):
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def masked(x, m):
    return x if m is None else x * m


class _Ctx:
    """Per-call state: masks helpers, the tap accumulators and the probe pixel grid."""

    def __init__(self, use_norm: bool, probe: int, taps: bool, conv_grads: str = "xla"):
        self.use_norm, self.probe, self.taps = use_norm, probe, taps
        self.conv = partial(conv, fn=conv_fn(conv_grads))

    def norm(self, x, g, b, m):
        """Per-pixel LayerNorm over the active channels; returns (y, log std tap)."""
        if m is None:
            mean = x.mean(-1, keepdims=True)
            var = ((x - mean) ** 2).mean(-1, keepdims=True)
        else:
            n = jnp.maximum(m.sum(), 1.0)
            mean = (x * m).sum(-1, keepdims=True) / n
            var = (((x - mean) * m) ** 2).sum(-1, keepdims=True) / n
        tap = 0.5 * jnp.log(jnp.mean(var) + EPS) if self.taps else jnp.zeros((), x.dtype)
        if not self.use_norm:
            return x, tap
        y = (x - mean) * jax.lax.rsqrt(var + EPS) * g + b
        return masked(y, m), tap

    def codes(self, pre, m):
        """NASWOT agreement counts of one activation's binary codes at the probe pixels."""
        if not (self.taps and self.probe):
            return jnp.zeros((), pre.dtype)
        b, h, w, c = pre.shape
        side = int(round(math.sqrt(self.probe)))
        pos = ((np.arange(side) + 0.5) / side * h).astype(int), ((np.arange(side) + 0.5) / side * w).astype(int)
        pts = pre[:, pos[0]][:, :, pos[1]].reshape(b * side * side, c)
        s = jnp.where(pts > 0, 1.0, -1.0).astype(pre.dtype)
        n = float(c)
        if m is not None:
            s, n = s * m.astype(pre.dtype), m.sum().astype(pre.dtype)
        return 0.5 * (n + s @ s.T)

    def zero_taps(self, b, dtype):
        n = b * self.probe if (self.taps and self.probe) else 0
        return (jnp.zeros((n, n), dtype) if n else jnp.zeros((), dtype)), jnp.zeros((), dtype)


class HybridUNet(nn.Module):
    """Hybrid U-Net over :class:`HybridSpace` (module docstring).

    Attributes:
      space: the search space.
      fixed: a concrete architecture (tuple of gene indices): the stand-alone network of that
        candidate; None: the supernet, which takes the architecture as an input array.
      in_channels, out_channels: image channels and logit maps (1: binary segmentation).
      use_norm: False removes normalisation (SynFlow's convention).
      taps: also return :class:`Taps` (``probe`` pixels per image for the NASWOT kernel,
        a square number).
    """

    space: HybridSpace = SPACE
    fixed: tuple[int, ...] | None = None
    in_channels: int = 3
    out_channels: int = 1
    use_norm: bool = True
    taps: bool = False
    probe: int = 16
    conv_grads: str = "xla"  # jnas.nets.kernels backend; "explicit": written-out weight gradients (reverse mode)

    def _param(self, name: str, shape: tuple, init=kernel_init):
        return self.param(name, init, shape)

    @nn.compact
    def __call__(self, x: Float[Array, "b h w c"], arch=None):
        sp = self.space
        if x.ndim != 4 or x.shape[-1] != self.in_channels:
            raise ValueError(f"HybridUNet takes images (b, h, w, {self.in_channels}), got {x.shape}")
        if x.shape[1] % 2 ** sp.stages or x.shape[2] % 2 ** sp.stages:
            raise ValueError(f"image sides {x.shape[1:3]} must be multiples of {2 ** sp.stages} ({sp.stages} stages)")
        if self.taps and self.probe and round(math.sqrt(self.probe)) ** 2 != self.probe:
            raise ValueError(f"probe must be a square number of pixels, got {self.probe}")
        ctx = _Ctx(self.use_norm, self.probe, self.taps, self.conv_grads)
        cand = None if self.fixed is None else sp.decode(np.asarray(self.fixed))
        if cand is not None and x.shape[1:3] != (cand.resolution, cand.resolution):
            raise ValueError(f"this candidate takes {cand.resolution}x{cand.resolution} images (its resolution gene), "
                             f"got {x.shape[1]}x{x.shape[2]}")
        if cand is None:
            if arch is None:
                raise ValueError("the supernet (fixed=None) needs arch, an int array of the space's genes")
            arch = jnp.asarray(arch, jnp.int32)
            if arch.shape != sp.arch_shape:
                raise ValueError(f"arch must have shape {sp.arch_shape}, got {arch.shape}")
        codes, log_std = ctx.zero_taps(x.shape[0], x.dtype)
        def ln(name, n):
            return self._param(name + "_g", (n,), nn.initializers.ones), self._param(name + "_b", (n,), nn.initializers.zeros)

        # ---- stem
        h = ctx.conv(x, self._param("stem", (3, 3, self.in_channels, sp.stem_width)))
        g, b = ln("stem_norm", sp.stem_width)
        h, t = ctx.norm(h, g, b, None)
        log_std += t
        codes += ctx.codes(h, None)
        h = jax.nn.relu(h)
        skips, masks = [h], [None]
        prev = sp.stem_width
        for s in range(sp.stages):
            if cand is None:
                get = lambda field, s=s: jnp.asarray(sp.lookup(field))[s, arch[sp.gene(s, field)]]  # noqa: E731
                W, K, R, H, D = sp.max_width[s], max(sp.kernels), max(sp.mlp_ratios), max(sp.heads), max(sp.depths)
                width, kernel, ratio, heads, depth = get("width"), get("kernel"), get("mlp"), get("heads"), get("depth")
                m = _sizes_mask(W, width, x.dtype)
                mh = _sizes_mask(R * W, ratio * width, x.dtype)
                half = jnp.abs(jnp.arange(K) - K // 2) <= kernel // 2
                km = (half[:, None] & half[None, :]).astype(x.dtype)[:, :, None, None]
                block = arch[sp.gene(s, "block")]
                types = sp.stage_blocks[s]
            else:
                st = cand.stages[s]
                W, K, R, H, D = st.width, st.kernel, st.mlp, st.heads, st.depth
                m = mh = km = None
                heads = st.heads
                types = (st.block,)
            h = masked(ctx.conv(h, self._param(f"s{s}_down", (3, 3, prev, W)), stride=2), m)
            for j in range(D):
                fns = [self._block(t_, f"s{s}_b{j}_{t_}", W, K, R, H, m, mh, km, heads, ctx) for t_ in types]
                if cand is None:
                    run = lambda h, fns=fns: jax.lax.switch(block, fns, h)  # noqa: E731
                    h, c_, t_ = jax.lax.cond(j < depth, run, lambda h: (h, *ctx.zero_taps(x.shape[0], x.dtype)), h)
                else:
                    h, c_, t_ = fns[0](h)
                codes, log_std = codes + c_, log_std + t_
            skips.append(h)
            masks.append(m)
            prev = W
        # ---- decoder
        for i in range(sp.stages - 1, -1, -1):
            out_w = skips[i].shape[-1]
            up = upsample2(h)
            y = ctx.conv(up, self._param(f"d{i}_up", (3, 3, h.shape[-1], out_w))) + \
                ctx.conv(skips[i], self._param(f"d{i}_skip", (3, 3, out_w, out_w)))
            for k in range(2):
                if k:
                    y = ctx.conv(y, self._param(f"d{i}_conv", (3, 3, out_w, out_w)))
                g, b = ln(f"d{i}_norm{k}", out_w)
                y, t = ctx.norm(masked(y, masks[i]), g, b, masks[i])
                log_std += t
                codes += ctx.codes(y, masks[i])
                y = jax.nn.relu(y)
            h = y
        logits = ctx.conv(h, self._param("head", (1, 1, sp.stem_width, self.out_channels)))
        logits = logits + self._param("head_bias", (self.out_channels,), nn.initializers.zeros)
        if self.taps:
            return logits, Taps(codes, log_std, h)
        return logits

    # ------------------------------------------------------------------ blocks
    def _block(self, kind: str, name: str, W, K, R, H, m, mh, km, heads, ctx: _Ctx) -> Callable:
        """Parameters of one residual block (created now) and its function ``h -> (h, codes, log_std)``."""
        p = lambda n, shape, init=kernel_init: self._param(f"{name}_{n}", shape, init)  # noqa: E731
        one, zero = nn.initializers.ones, nn.initializers.zeros
        kmask = (lambda w: w) if km is None else (lambda w: w * km)
        if kind == "conv":
            w1, w2 = p("conv1", (K, K, W, W)), p("conv2", (K, K, W, W))
            n1, n2 = (p("norm1_g", (W,), one), p("norm1_b", (W,), zero)), (p("norm2_g", (W,), one), p("norm2_b", (W,), zero))

            def f(h):
                y, t1 = ctx.norm(h, *n1, m)
                c1 = ctx.codes(y, m)
                y = masked(ctx.conv(jax.nn.relu(y), kmask(w1)), m)
                y, t2 = ctx.norm(y, *n2, m)
                c2 = ctx.codes(y, m)
                y = masked(ctx.conv(jax.nn.relu(y), kmask(w2)), m)
                return h + y, c1 + c2, t1 + t2
            return f
        if kind == "mbconv":
            wide = R * W
            w_in, w_dw, w_out = p("expand", (1, 1, W, wide)), p("depthwise", (K, K, 1, wide)), p("project", (1, 1, wide, W))
            n1 = (p("norm_g", (W,), one), p("norm_b", (W,), zero))

            def f(h):
                y, t = ctx.norm(h, *n1, m)
                y = masked(ctx.conv(y, w_in), mh)
                c1 = ctx.codes(y, mh)
                y = depthwise(jax.nn.relu(y), kmask(w_dw))
                c2 = ctx.codes(y, mh)
                y = masked(ctx.conv(jax.nn.relu(y), w_out), m)
                return h + y, c1 + c2, t
            return f
        if kind == "transformer":
            wide = R * W
            w_pe = p("pos", (K, K, 1, W))
            q, k, v, o = (p(n, (W, W)) for n in ("q", "k", "v", "o"))
            fc1, fc2 = p("fc1", (W, wide)), p("fc2", (wide, W))
            n1 = (p("norm1_g", (W,), one), p("norm1_b", (W,), zero))
            n2 = (p("norm2_g", (W,), one), p("norm2_b", (W,), zero))

            def f(h):
                b_, hh, ww, _ = h.shape
                h = h + masked(depthwise(h, kmask(w_pe)), m)  # convolutional position encoding
                y, t1 = ctx.norm(h, *n1, m)
                tok = y.reshape(b_, hh * ww, W)
                a = _attention(tok @ q, tok @ k, tok @ v, W, H, m, heads)
                h = h + masked((a @ o).reshape(h.shape), m)
                y, t2 = ctx.norm(h, *n2, m)
                z = masked(y @ fc1, mh)
                c = ctx.codes(z, mh)
                h = h + masked(jax.nn.gelu(z) @ fc2, m)
                return h, c, t1 + t2
            return f
        raise ValueError(f"unknown block {kind!r}; valid blocks are {list(BLOCKS)}")


def _attention(q, k, v, W: int, H: int, m, heads):
    """Multi-head self-attention of ``(b, n, W)`` tokens. Stand-alone (``m is None``):
    ``heads == H`` heads of width ``W // H``. Supernet: ``heads`` (traced) heads of width
    ``width / heads`` over the active channels, by per-head channel masks (up to ``H``)."""
    b, n, _ = q.shape
    if m is None:
        d = W // H
        split = lambda t: t.reshape(b, n, H, d)  # noqa: E731
        att = jax.nn.softmax(jnp.einsum("bqhd,bkhd->bhqk", split(q), split(k)) / math.sqrt(d), axis=-1)
        return jnp.einsum("bhqk,bkhd->bqhd", att, split(v)).reshape(b, n, W)
    width = m.sum()
    d = width / heads
    head_of = jnp.floor(jnp.arange(W) / d)
    out = jnp.zeros_like(v)
    for i in range(H):
        mi = ((head_of == i) * m).astype(q.dtype)
        att = jax.nn.softmax(jnp.einsum("bqc,bkc->bqk", q * mi, k) / jnp.sqrt(d), axis=-1)
        out = out + jnp.einsum("bqk,bkc->bqc", att, v * mi)
    return out


# ---------------------------------------------------------------------- extraction and costs
def standalone(space: HybridSpace, arch, **kwargs) -> HybridUNet:
    """The stand-alone network of ``arch`` (validated)."""
    return HybridUNet(space, fixed=tuple(int(g) for g in space.check(arch).reshape(-1)), **kwargs)


def extract(params: dict, net: HybridUNet, x_shape: tuple[int, ...]) -> dict:
    """The supernet's ``params`` sliced into the stand-alone ``net``'s shapes: leading slices on
    every axis, except the spatial axes of convolution kernels, which take the centre crop."""
    shapes = jax.eval_shape(lambda: net.init(jax.random.key(0), jnp.zeros(x_shape)))["params"]

    def cut(path, want):
        name = "/".join(str(getattr(p, "key", p)) for p in path)
        have = params
        for p in path:
            have = have[getattr(p, "key", p)]
        index = []
        for ax, (n_have, n_want) in enumerate(zip(have.shape, want.shape)):
            start = (n_have - n_want) // 2 if (have.ndim == 4 and ax < 2) else 0
            index.append(slice(start, start + n_want))
        if any(a < w for a, w in zip(have.shape, want.shape)):
            raise ValueError(f"supernet weight {name} {have.shape} is smaller than the candidate's {want.shape}")
        return have[tuple(index)]

    return {"params": jax.tree_util.tree_map_with_path(cut, shapes)}


class Cost(NamedTuple):
    params: int
    flops: int  # 2 x multiply-accumulates of convolutions and matrix products (attention included)


def _taps(n: int, k: int, stride: int) -> int:
    """Kernel taps inside the image, summed over the outputs of one axis of a "same" convolution."""
    out = -(-n // stride)
    lo = max((out - 1) * stride + k - n, 0) // 2
    return sum(sum(0 <= o * stride - lo + t < n for t in range(k)) for o in range(out))


def cost(space: HybridSpace, arch, in_channels: int = 3, out_channels: int = 1, padded: bool = True) -> Cost:
    """Parameters and FLOPs of the stand-alone network of ``arch``, counted in closed form at its
    own resolution. ``padded=True`` counts every kernel tap at every output (the usual FLOPs
    convention); ``False`` only the taps inside the image, as XLA's cost analysis does (the
    tests compare the two with it)."""
    c = space.decode(arch)
    r = c.resolution
    params, macs = 0, 0

    def conv_(k, cin, cout, side, groups=1, stride=1):
        nonlocal params, macs
        n = k * k * (cin // groups) * cout
        params += n
        src = side * stride  # input side
        taps = (k * (-(-src // stride))) ** 2 if padded else _taps(src, k, stride) ** 2
        macs += taps * (cin // groups) * cout

    def norm_(w):
        nonlocal params
        params += 2 * w

    conv_(3, in_channels, space.stem_width, r)
    norm_(space.stem_width)
    prev, side, widths = space.stem_width, r, [space.stem_width]
    for st in c.stages:
        side //= 2
        conv_(3, prev, st.width, side, stride=2)
        W, K, wide = st.width, st.kernel, st.mlp * st.width
        for _ in range(st.depth):
            if st.block == "conv":
                conv_(K, W, W, side), conv_(K, W, W, side), norm_(W), norm_(W)
            elif st.block == "mbconv":
                conv_(1, W, wide, side), conv_(K, wide, wide, side, groups=wide), conv_(1, wide, W, side), norm_(W)
            else:
                n = side * side
                conv_(K, W, W, side, groups=W)
                for _ in range(4):  # q, k, v, o
                    conv_(1, W, W, side)
                macs += 2 * n * n * W  # q k^T and attention x v
                conv_(1, W, wide, side), conv_(1, wide, W, side)
                norm_(W), norm_(W)
        widths.append(W)
        prev = W
    for i in range(space.stages - 1, -1, -1):
        side *= 2
        out_w = widths[i]
        conv_(3, prev, out_w, side), conv_(3, out_w, out_w, side), conv_(3, out_w, out_w, side)
        norm_(out_w), norm_(out_w)
        prev = out_w
    conv_(1, space.stem_width, out_channels, r)
    params += out_channels
    return Cost(int(params), int(2 * macs))
