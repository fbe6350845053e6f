"""DARTS cell-space operations and search supernet (Liu et al., ICLR 2019), in Flax linen.

Ops follow the DARTS code (NHWC here): ``SepConv`` is ReLU -> depthwise k x k (stride s)
-> 1x1 -> BN -> ReLU -> depthwise k x k -> 1x1 -> BN; ``DilConv`` is ReLU -> dilated
depthwise k x k (dilation 2) -> 1x1 -> BN; ``FactorizedReduce`` halves the resolution with
two stride-2 1x1 convs on pixel grids offset by one, concatenated; pooling ops are followed
by a non-affine BN inside the mixed op, as in the DARTS search model.

``DartsSupernet`` takes mixing weights ``{"normal": (14, 8), "reduce": (14, 8)}`` as an
input (softmax of alpha, see :mod:`jnas.oneshot.darts_cells`). Search networks use BN
without affine parameters, like DARTS. ``partial=K`` gives PC-DARTS partial channel
connections (ops see C/K channels; in reduction edges the bypass channels are max-pooled
2x2), followed by a channel shuffle.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from jnas.nets.kernels import avg_pool_3x3, batch_norm, depthwise, depthwise_dense, fusion_barrier
from jnas.nets.layers import ReLUConvBN, channel_shuffle, concrete, torch_bias_init, torch_kernel_init
from jnas.spaces import darts as space


def _conv(features: int, k: int, stride: int = 1, dilation: int = 1, groups: int = 1, name: str | None = None) -> nn.Conv:
    pad = dilation * (k - 1) // 2
    return nn.Conv(
        features,
        (k, k),
        strides=(stride, stride),
        padding=((pad, pad), (pad, pad)),
        kernel_dilation=(dilation, dilation),
        feature_group_count=groups,
        use_bias=False,
        kernel_init=torch_kernel_init,
        name=name,
    )


class FactorizedReduce(nn.Module):
    """ReLU -> two stride-2 1x1 convs (C/2 each, the second on the grid shifted by one
    pixel) -> concat -> BN: halves the resolution without losing alternate pixels."""

    features: int
    affine: bool = True

    @nn.compact
    def __call__(self, x: Array, train: bool) -> Array:
        if self.features % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {self.features}")
        x = nn.relu(x)
        a = _conv(self.features // 2, 1, stride=2, name="conv_1")(x)
        b = _conv(self.features // 2, 1, stride=2, name="conv_2")(x[:, 1:, 1:])
        return batch_norm(train, "bn", self.affine)(jnp.concatenate([a, b], axis=-1))


DEPTHWISE = ("dense", "xla", "shifted")


class DepthwiseConv(nn.Module):
    """k x k depthwise convolution without bias, DARTS's padding, as ``k * k`` shifted
    multiply-adds (``impl="shifted"``, :func:`jnas.nets.kernels.depthwise`) or one dense
    convolution with a block-diagonal kernel (``"dense"``, :func:`jnas.nets.kernels.depthwise_dense`);
    the same ``kernel`` parameter of shape ``(k, k, 1, c)`` and initialisation as the grouped
    ``nn.Conv`` they replace."""

    kernel: int
    stride: int = 1
    dilation: int = 1
    impl: str = "dense"

    @nn.compact
    def __call__(self, x: Array) -> Array:
        w = self.param("kernel", torch_kernel_init, (self.kernel, self.kernel, 1, x.shape[-1]))
        fn = depthwise if self.impl == "shifted" else depthwise_dense
        return fn(x, w.astype(x.dtype), self.stride, self.dilation)


def _depthwise(impl: str, c: int, k: int, stride: int = 1, dilation: int = 1, name: str | None = None):
    """The depthwise convolution of SepConv/DilConv: a dense convolution with a block-diagonal
    kernel (``"dense"``, the fastest on XLA:CPU), XLA's grouped convolution (``"xla"``) or
    shifted multiply-adds (``"shifted"``); same parameters and numbers either way."""
    if impl in ("dense", "shifted"):
        return DepthwiseConv(k, stride, dilation, impl, name=name)
    if impl != "xla":
        raise ValueError(f"unknown depthwise implementation {impl!r}; choose one of {list(DEPTHWISE)}")
    return _conv(c, k, stride, dilation, groups=c, name=name)


class SepConv(nn.Module):
    """Separable conv applied twice (DARTS ``SepConv``)."""

    features: int
    kernel: int
    stride: int = 1
    affine: bool = True
    depthwise: str = "dense"

    @nn.compact
    def __call__(self, x: Array, train: bool) -> Array:
        c_in = x.shape[-1]
        y = _depthwise(self.depthwise, c_in, self.kernel, self.stride, name="dw_1")(nn.relu(x))
        y = batch_norm(train, "bn_1", self.affine)(_conv(c_in, 1, name="pw_1")(y))
        y = _depthwise(self.depthwise, c_in, self.kernel, name="dw_2")(nn.relu(y))
        return batch_norm(train, "bn_2", self.affine)(_conv(self.features, 1, name="pw_2")(y))


class DilConv(nn.Module):
    """Dilated separable conv (DARTS ``DilConv``, dilation 2)."""

    features: int
    kernel: int
    stride: int = 1
    dilation: int = 2
    affine: bool = True
    depthwise: str = "dense"

    @nn.compact
    def __call__(self, x: Array, train: bool) -> Array:
        c_in = x.shape[-1]
        y = _depthwise(self.depthwise, c_in, self.kernel, self.stride, self.dilation, name="dw")(nn.relu(x))
        return batch_norm(train, "bn", self.affine)(_conv(self.features, 1, name="pw")(y))


def _pool(kind: str, x: Array, stride: int) -> Array:
    pad = ((1, 1), (1, 1))
    if kind == "max":
        return nn.max_pool(x, (3, 3), strides=(stride, stride), padding=pad)
    return avg_pool_3x3(x, stride)


class MixedOp(nn.Module):
    """All DARTS ops on one edge, summed with mixing weights ``w`` of shape (8,)."""

    features: int
    stride: int
    partial: int = 1
    skip_dropout: bool = False
    depthwise: str = "dense"

    @nn.compact
    def __call__(self, x: Array, w: Float[Array, "8"], train: bool, drop_rate: Array | float = 0.0) -> Array:
        if self.partial > 1:
            cp = x.shape[-1] // self.partial
            y = self._mix(x[..., :cp], w, train, drop_rate, cp)
            rest = x[..., cp:]
            if self.stride == 2:
                rest = nn.max_pool(rest, (2, 2), strides=(2, 2))
            return channel_shuffle(jnp.concatenate([y, rest], axis=-1), self.partial)
        return self._mix(x, w, train, drop_rate, self.features)

    def _mix(self, x: Array, w: Array, train: bool, drop_rate, c: int) -> Array:
        s = self.stride
        outs = {
            "none": jnp.zeros_like(x[:, ::s, ::s]),
            "max_pool_3x3": batch_norm(train, "max_pool_bn", False)(_pool("max", x, s)),
            "avg_pool_3x3": batch_norm(train, "avg_pool_bn", False)(_pool("avg", x, s)),
            "skip_connect": x if s == 1 else FactorizedReduce(c, affine=False, name="skip_connect")(x, train),
            "sep_conv_3x3": SepConv(c, 3, s, affine=False, depthwise=self.depthwise, name="sep_conv_3x3")(x, train),
            "sep_conv_5x5": SepConv(c, 5, s, affine=False, depthwise=self.depthwise, name="sep_conv_5x5")(x, train),
            "dil_conv_3x3": DilConv(c, 3, s, affine=False, depthwise=self.depthwise, name="dil_conv_3x3")(x, train),
            "dil_conv_5x5": DilConv(c, 5, s, affine=False, depthwise=self.depthwise, name="dil_conv_5x5")(x, train),
        }
        if self.skip_dropout and s == 1:  # P-DARTS: dropout after the identity op
            skip = outs["skip_connect"]
            keep = jax.random.bernoulli(self.make_rng("dropout"), 1.0 - drop_rate, skip.shape)
            outs["skip_connect"] = jnp.where(keep, skip / (1.0 - drop_rate), 0.0).astype(skip.dtype)
        return sum(w[i] * outs[name] for i, name in enumerate(space.OPS))


class SearchCell(nn.Module):
    """DARTS search cell: preprocess both inputs to C channels, 4 nodes each summing a
    mixed op from every earlier node, output = concat(nodes 2..5) with 4C channels."""

    features: int
    reduction: bool
    reduction_prev: bool
    partial: int = 1
    skip_dropout: bool = False
    depthwise: str = "dense"

    @nn.compact
    def __call__(self, s0: Array, s1: Array, weights: Float[Array, "14 8"], train: bool, drop_rate=0.0) -> Array:
        c = self.features
        if self.reduction_prev:
            s0 = FactorizedReduce(c, affine=False, name="preprocess0")(s0, train)
        else:
            s0 = ReLUConvBN(c, 1, affine=False, name="preprocess0")(s0, train)
        s1 = ReLUConvBN(c, 1, affine=False, name="preprocess1")(s1, train)
        states = [s0, s1]
        for j in range(2, 2 + space.STEPS):
            node = 0.0
            for i in range(j):
                e = space.edge_index(i, j)
                stride = 2 if self.reduction and i < 2 else 1
                op = MixedOp(c, stride, self.partial, self.skip_dropout, self.depthwise, name=f"edge_{e}")
                node = node + op(states[i], weights[e], train, drop_rate)
            states.append(node)
        return jnp.concatenate(states[2:], axis=-1)


def _network(x, train: bool, C: int, layers: int, stem_multiplier: int, num_classes: int, cell, aux=None) -> Array:
    """The DARTS macro-architecture shared by the search and evaluation networks: 3x3 stem
    (stem_multiplier * C) -> ``layers`` cells, reductions at 1/3 and 2/3 depth doubling C,
    each cell fed by the two previous outputs -> global average pool -> linear.
    ``cell(i, c, reduction, reduction_prev, s0, s1)`` applies cell i; ``aux(s1)``, if given, sees
    the output of cell ``2 * layers // 3`` (the second reduction). Call inside a compact method."""
    s = batch_norm(train, "stem_bn")(_conv(stem_multiplier * C, 3, name="stem")(x))
    s0 = s1 = s
    c, reduction_prev = C, False
    for i in range(layers):
        reduction = i in (layers // 3, 2 * layers // 3)
        if reduction:
            c *= 2
        s0, s1 = s1, cell(i, c, reduction, reduction_prev, s0, s1)
        reduction_prev = reduction
        if aux is not None and i == 2 * layers // 3:
            aux(s1)
    y = s1.mean(axis=(1, 2))
    return nn.Dense(num_classes, kernel_init=torch_kernel_init, bias_init=torch_bias_init(y.shape[-1]), name="classifier")(y)


class DartsSupernet(nn.Module):
    """DARTS search network: 3x3 stem (3C) -> ``layers`` cells, reduction cells at 1/3 and
    2/3 depth doubling C -> global pool -> linear. ``apply(v, x, weights, train, drop_rate)``
    with ``weights = {"normal": (14, 8), "reduce": (14, 8)}``. ``depthwise``: how the
    separable convolutions' depthwise part runs (:data:`DEPTHWISE`; same parameters);
    ``cell_barrier`` passes each cell's output through :func:`jnas.nets.kernels.fusion_barrier`
    (exact; keeps XLA:CPU from fusing the backward pass across cells)."""

    C: int = 16
    layers: int = 8
    num_classes: int = 10
    stem_multiplier: int = 3
    partial: int = 1
    skip_dropout: bool = False
    depthwise: str = "dense"
    cell_barrier: bool = True

    @nn.compact
    def __call__(self, x: Float[Array, "b h w c"], weights: dict[str, Array], train: bool = True, drop_rate=0.0):
        for name in space.CELLS:
            w = weights.get(name) if isinstance(weights, dict) else None
            if w is None or w.shape != (space.NUM_EDGES, space.NUM_OPS):
                got = None if w is None else w.shape
                raise ValueError(f"weights[{name!r}] must have shape ({space.NUM_EDGES}, {space.NUM_OPS}), got {got}")
        def cell(i, c, reduction, reduction_prev, s0, s1):
            if c % self.partial:
                raise ValueError(f"partial={self.partial} must divide the cell width {c}")
            m = SearchCell(c, reduction, reduction_prev, self.partial, self.skip_dropout, self.depthwise, name=f"cell_{i}")
            y = m(s0, s1, weights["reduce" if reduction else "normal"], train, drop_rate)
            return fusion_barrier(y) if self.cell_barrier else y

        return _network(x, train, self.C, self.layers, self.stem_multiplier, self.num_classes, cell)


def drop_path(x: Array, rate, key: Array) -> Array:
    """Zero whole examples of ``x`` with probability ``rate`` and scale the rest by
    ``1 / (1 - rate)`` (DARTS's drop path on one op's output; Larsson et al. 2017)."""
    keep = 1.0 - rate
    mask = jax.random.bernoulli(key, keep, (x.shape[0],) + (1,) * (x.ndim - 1))
    return jnp.where(mask, x / keep, 0.0).astype(x.dtype)


class AuxiliaryHead(nn.Module):
    """DARTS's auxiliary CIFAR classifier on the 8x8 output of the second reduction cell:
    ReLU -> 5x5 average pool, stride 3 (2x2) -> 1x1 conv 128 -> BN -> ReLU -> 2x2 conv 768 ->
    BN -> ReLU -> linear. Its loss, weighted 0.4 in DARTS, is added during training only."""

    num_classes: int

    @nn.compact
    def __call__(self, x: Array, train: bool) -> Array:
        if x.shape[1] < 5 or x.shape[2] < 5:
            raise ValueError(f"the auxiliary head needs at least 5x5 maps after the second reduction cell, got "
                             f"{x.shape[1]}x{x.shape[2]} (inputs of at least 20x20 pixels)")
        x = nn.avg_pool(nn.relu(x), (5, 5), strides=(3, 3), padding="VALID")
        x = nn.relu(batch_norm(train, "bn_1")(_conv(128, 1, name="conv_1")(x)))
        x = nn.relu(batch_norm(train, "bn_2")(_conv(768, 2, name="conv_2")(x)))
        y = x.mean(axis=(1, 2))  # 1x1 at CIFAR size; pooled so other sizes keep 768 features
        return nn.Dense(self.num_classes, kernel_init=torch_kernel_init, bias_init=torch_bias_init(768), name="classifier")(y)


class EvalCell(nn.Module):
    """A derived DARTS cell: node j sums the genotype's two ops on its two chosen inputs;
    in training, each op's output but the identity's is dropped with ``drop_rate`` (drop path)."""

    features: int
    reduction: bool
    reduction_prev: bool
    depthwise: str = "dense"

    @nn.compact
    def __call__(self, s0: Array, s1: Array, genotype, train: bool, drop_rate=0.0) -> Array:
        c = self.features
        if self.reduction_prev:
            s0 = FactorizedReduce(c, name="preprocess0")(s0, train)
        else:
            s0 = ReLUConvBN(c, 1, name="preprocess0")(s0, train)
        s1 = ReLUConvBN(c, 1, name="preprocess1")(s1, train)
        states = [s0, s1]
        for n in range(space.STEPS):
            h = 0.0
            for slot in range(2):
                i, o = (int(v) for v in genotype[n, slot])
                stride = 2 if self.reduction and i < 2 else 1
                y = _eval_op(space.OPS[o], c, stride, f"node{n + 2}_{slot}", states[i], train, self.depthwise)
                identity = space.OPS[o] == "skip_connect" and stride == 1
                if train and not identity and not (isinstance(drop_rate, float) and drop_rate == 0.0):
                    y = drop_path(y, drop_rate, self.make_rng("dropout"))
                h = h + y
            states.append(h)
        return jnp.concatenate(states[2:], axis=-1)


def _eval_op(name: str, c: int, stride: int, module_name: str, x: Array, train: bool, depthwise: str = "dense") -> Array:
    """One op of a derived cell, as in the DARTS evaluation network (affine BN, pools without BN)."""
    if name == "max_pool_3x3":
        return _pool("max", x, stride)
    if name == "avg_pool_3x3":
        return _pool("avg", x, stride)
    if name == "skip_connect":
        return x if stride == 1 else FactorizedReduce(c, name=module_name)(x, train)
    if name.startswith("sep_conv"):
        return SepConv(c, int(name[-1]), stride, depthwise=depthwise, name=module_name)(x, train)
    return DilConv(c, int(name[-1]), stride, depthwise=depthwise, name=module_name)(x, train)


class DartsNetwork(nn.Module):
    """DARTS evaluation network (``NetworkCIFAR``) for one genotype: 3x3 stem (3C) ->
    ``layers`` derived cells, reductions at 1/3 and 2/3 depth doubling C -> global pool ->
    linear. ``apply(v, x, genotype, train)`` with a concrete ``(2, 4, 2, 2)`` genotype.

    Each genotype has its own topology, so the genotype is static (``select = "static"``:
    the trainer compiles once per genotype). DARTS's evaluation extras: ``auxiliary=True``
    adds the :class:`AuxiliaryHead` after the second reduction cell, whose logits are sown
    as ``intermediates/aux_logits`` in training (the trainer's ``aux_weight`` adds their loss);
    ``drop_path`` (a rate, traced, so a schedule needs no recompile; needs a ``"dropout"``
    rng) drops op outputs in training. Published parameter counts leave the auxiliary head
    out (P-DARTS at C=36, 20 layers: 3,433,798).
    """

    C: int = 36
    layers: int = 20
    num_classes: int = 10
    stem_multiplier: int = 3
    select: str = "static"
    auxiliary: bool = False
    depthwise: str = "dense"

    @nn.compact
    def __call__(self, x: Float[Array, "b h w c"], genotype, train: bool = True, drop_path=0.0):
        genotype = space.check(concrete(genotype, "DartsNetwork", "genotype"))
        def cell(i, c, reduction, reduction_prev, s0, s1):
            return EvalCell(c, reduction, reduction_prev, self.depthwise, name=f"cell_{i}")(s0, s1, genotype[int(reduction)], train, drop_path)

        def aux(s):
            self.sow("intermediates", "aux_logits", AuxiliaryHead(self.num_classes, name="auxiliary")(s, train))

        return _network(x, train, self.C, self.layers, self.stem_multiplier, self.num_classes, cell,
                        aux if self.auxiliary and train else None)
