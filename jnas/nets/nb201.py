"""The NAS-Bench-201 CIFAR network (Dong & Yang, ICLR 2020), with the cell as an input.

stem (3x3 conv, C) -> N cells (C) -> residual reduction -> N cells (2C) -> residual
reduction -> N cells (4C) -> BN-ReLU -> global average pool -> linear classifier.

The architecture is an *input array*, not a Python constant: one jitted function serves
every architecture, and ``jax.lax.map``/``jax.vmap`` run a batch of different cells at once.
The parameters are those of the supernet (every op on every edge), so **weights are shared
across architectures**: architecture ``a`` uses the sub-tree of the ops it selects, and an
op's weights are the same whichever cell selects it. Each op's weights are i.i.d. at
init, so every sub-network is a correctly initialised network of its own architecture.
(For independent weights per architecture, map ``init`` over keys.)

How an edge picks its op (``select``):

* ``"switch"`` -- ``nn.switch`` on the op index: only the chosen op runs. Best with
  ``lax.map`` or a loop. Under ``vmap`` a switch turns into a select over all ops.
* ``"mask"`` -- every op runs and the outputs are summed with weights; ``arch`` may be an
  op-index array (one-hot weights) or a ``(6, 5)`` float array of mixing weights (the
  DARTS mixed op). This is the form to ``vmap``: shared weights with a batch of inputs
  become one large convolution.
* ``"static"`` -- ``arch`` is a concrete (numpy) array and only the chosen ops are traced:
  one compilation per architecture, the fastest steps (standalone training uses it; the
  backward pass of a traced switch is slow on CPU, docs/performance.md).

The output is always the logits. The options fall in four groups, and the named
constructors set the usual combinations:

* structure -- ``C``, ``N``, ``num_classes``; ``use_bn=False`` (synflow's network);
  ``cell_affine=False`` (the search code's cells, below). :meth:`NB201Network.benchmark`,
  :meth:`NB201Network.search_code`.
* execution -- ``select``, ``conv_grads`` (the CPU kernels of :mod:`jnas.nets.kernels`),
  ``skip_unread``: how the same numbers are computed, never what they are.
* read-outs -- ``codes`` sows the NASWOT kernel into ``"intermediates"``
  (:func:`jnas.nets.layers.codes_kernel`); ``probes`` adds fisher's channel probes.
* one-shot search -- ``partial`` and ``skip_dropout`` (:meth:`NB201Network.supernet`).

Two search-time options serve :mod:`jnas.oneshot`: ``partial=K`` sends only the first C/K
channels through the ops and passes the rest by, then shuffles channels (PC-DARTS, Xu et
al. 2020); ``skip_dropout=True`` makes ``apply(..., drop_rate=p)`` drop elements of every
skip-connect output with rate p (P-DARTS, Chen et al. 2019; needs a ``"dropout"`` rng).

``cell_affine=False`` builds the cell ops as NB201 search code does (AutoDL's ``ReLUConvBN``
with ``affine=False``: BatchNorm without scale and shift, and so ``bias=not affine`` convs
*with* a bias). The zero-cost proxies' reference code (Abdelfattah et al. 2021) scores
this variant, not the benchmark's trained network (affine BN, convs without bias); for
fisher the difference decides the published correlation (see the README).
"""

from __future__ import annotations

import functools
import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from jnas.nets.kernels import avg_pool_3x3, batch_norm, conv_fn, fusion_barrier
from jnas.nets.layers import (
    ChannelProbe,
    ReLUConvBN,
    channel_shuffle,
    relu_kernel,
    sow_codes,
    torch_bias_init,
    torch_kernel_init,
)
from jnas.spaces import nb201 as space

SELECT_MODES = ("switch", "mask", "static")
NONE = space.OPS.index("none")
CONVS = (space.OPS.index("nor_conv_1x1"), space.OPS.index("nor_conv_3x3"))


class Edge(nn.Module):
    """One cell edge holding all five NB201 ops (op order as in :mod:`jnas.spaces.nb201`)."""

    features: int
    select: str = "switch"
    use_bn: bool = True
    probes: bool = False
    partial: int = 1
    skip_dropout: bool = False
    affine: bool = True
    conv_grads: str = "xla"

    def setup(self):
        kw = dict(use_bn=self.use_bn, probes=self.probes, affine=self.affine, conv_bias=not self.affine, conv_grads=self.conv_grads)
        self.nor_conv_1x1 = ReLUConvBN(self.features // self.partial, 1, **kw)
        self.nor_conv_3x3 = ReLUConvBN(self.features // self.partial, 3, **kw)

    def __call__(
        self, x: Array, op: Array, train: bool, drop_rate: Array | float = 0.0, acc: Array | None = None
    ) -> Array:
        """The op's output on ``x``, plus ``acc`` (the node's sum so far) when given."""
        if self.partial > 1:
            # PC-DARTS: the ops see the first C/K channels; the rest bypass them.
            cp = x.shape[-1] // self.partial
            y = self._ops(x[..., :cp], op, train, drop_rate, None)
            y = channel_shuffle(jnp.concatenate([y, x[..., cp:]], axis=-1), self.partial)
            return y if acc is None else acc + y
        return self._ops(x, op, train, drop_rate, acc)

    def _ops(self, x: Array, op: Array, train: bool, drop_rate: Array | float, acc: Array | None) -> Array:
        # Under "switch" the node sum is taken inside the branch (``plus``), where XLA fuses
        # the add into the op's last elementwise loop instead of a separate pass over the node.
        def plus(y, acc):
            return y if acc is None else acc + y

        def none(m, x, acc):
            return jnp.zeros_like(x) if acc is None else acc

        def skip(m, x, acc):
            if m.skip_dropout:  # P-DARTS: inverted dropout after skip-connect; rate 0 is identity
                keep = jax.random.bernoulli(m.make_rng("dropout"), 1.0 - drop_rate, x.shape)
                return plus(jnp.where(keep, x / (1.0 - drop_rate), 0.0).astype(x.dtype), acc)
            return plus(x, acc)

        def conv1(m, x, acc):
            return plus(m.nor_conv_1x1(x, train), acc)

        def conv3(m, x, acc):
            return plus(m.nor_conv_3x3(x, train), acc)

        def pool(m, x, acc):
            return plus(avg_pool_3x3(x, grads=m.conv_grads), acc)

        branches = (none, skip, conv1, conv3, pool)
        if self.select == "static" and not self.is_initializing():
            return branches[int(op)](self, x, acc)  # concrete op: trace only the chosen branch
        if self.select != "switch" or self.is_initializing():
            outs = [f(self, x, None) for f in branches]  # at init: creates every op's variables
        if self.select == "mask":
            w = op if jnp.issubdtype(op.dtype, jnp.floating) else jax.nn.one_hot(op, len(branches), dtype=x.dtype)
            return plus(sum(w[i] * o for i, o in enumerate(outs)), acc)
        if acc is None:
            return nn.switch(op, [lambda m, x, f=f: f(m, x, None) for f in branches], self, x)
        return nn.switch(op, branches, self, x, acc)


class Cell(nn.Module):
    """NB201 cell: node j = sum_{i<j} edge_(i,j)(node i); the output is the last node.

    With ``codes`` the cell sows the NASWOT kernel of the ReLUs in its conv edges.
    Every conv edge leaving node i applies its ReLU to node i itself, so node i's kernel
    enters once per such edge: the cell computes it once per node and multiplies by that
    count (and skips it under ``"switch"``/``"static"`` when no conv edge leaves the node),
    instead of once per edge. The counts are exact integers, so the kernel is the same.

    With ``skip_unread`` (``"switch"`` only) an edge into a node that nothing reads (see
    :func:`read_nodes`) runs the ``none`` op instead of its own: the logits, every gradient
    and the NASWOT kernel are unchanged (such an op's output never reaches them, so its
    parameters get zero gradients either way), but the op's BatchNorm statistics are not
    updated. On NB201 cells drawn uniformly this skips about 8% of the cells' MACs.
    """

    features: int
    select: str = "switch"
    use_bn: bool = True
    codes: bool = False
    probes: bool = False
    partial: int = 1
    skip_dropout: bool = False
    affine: bool = True
    conv_grads: str = "xla"
    skip_unread: bool = False

    @nn.compact
    def __call__(self, x: Array, arch: Array, train: bool, drop_rate: Array | float = 0.0) -> Array:
        ops = arch
        if self.skip_unread and self.select == "switch" and not self.is_initializing():
            read = read_nodes(arch, self.codes)
            ops = jnp.stack([jnp.where(read[j], arch[e], NONE) for e, (_, j) in enumerate(space.EDGES)])
        nodes = [x]
        for j in range(1, space.SPACE.num_nodes):
            acc = None
            for e, (i, jj) in enumerate(space.EDGES):
                if jj != j:
                    continue
                edge = Edge(
                    self.features, self.select, self.use_bn, self.probes, self.partial, self.skip_dropout,
                    affine=self.affine, conv_grads=self.conv_grads, name=f"edge_{e}",
                )
                acc = edge(nodes[i], ops[e], train, drop_rate, acc)
            nodes.append(acc)
        if self.codes:
            sow_codes(self, self._codes(nodes, arch))
        return nodes[-1]

    def _codes(self, nodes: list[Array], arch: Array) -> Array:
        """Sum over conv edges of the NASWOT kernel of their ReLU input (see class docstring)."""
        b = nodes[0].shape[0]
        k = jnp.zeros((b, b), jnp.float32)
        for i, node in enumerate(nodes[:-1]):
            node = node[..., : node.shape[-1] // self.partial]  # the channels the ops see
            out = [e for e, (src, _) in enumerate(space.EDGES) if src == i]
            if self.select == "static" and not self.is_initializing():
                n = sum(int(arch[e]) in CONVS for e in out)
                k = k + n * relu_kernel(node) if n else k
            elif jnp.issubdtype(arch.dtype, jnp.floating):  # mixing weights: weighted counts
                n = arch[jnp.asarray(out)][:, jnp.asarray(CONVS)].sum()
                k = k + n * relu_kernel(node)
            else:
                n = jnp.isin(arch[jnp.asarray(out)], jnp.asarray(CONVS)).sum().astype(jnp.float32)
                k = k + jax.lax.cond(n > 0, lambda node: n * relu_kernel(node), lambda node: jnp.zeros((b, b), jnp.float32), node)
        return k


def read_nodes(arch: Int[Array, "6"], codes: bool = False) -> list[Array]:
    """Whether anything reads each cell node: the output node is read, and a node is read
    when a non-``none`` edge joins it to a read node or, with NASWOT ``codes``, when a conv
    edge leaves it (its ReLU is counted wherever the edge leads). Jit-friendly booleans."""
    n = space.SPACE.num_nodes
    read: list = [None] * n
    read[n - 1] = jnp.bool_(True)
    for i in reversed(range(n - 1)):
        r = jnp.bool_(False)
        for e, (src, dst) in enumerate(space.EDGES):
            if src == i:
                r = r | ((arch[e] != NONE) & read[dst])
                if codes:
                    r = r | jnp.isin(arch[e], jnp.asarray(CONVS))
        read[i] = r
    return read


class ResidualReduction(nn.Module):
    """ResNet basic block, stride 2: ReLUConvBN(3x3, s2) -> ReLUConvBN(3x3) plus an
    avg-pool(2) + 1x1-conv shortcut, as between NB201 stages."""

    features: int
    use_bn: bool = True
    codes: bool = False
    probes: bool = False
    conv_grads: str = "xla"

    @nn.compact
    def __call__(self, x: Array, train: bool) -> Array:
        kw = dict(use_bn=self.use_bn, codes=self.codes, probes=self.probes, conv_grads=self.conv_grads)
        y = ReLUConvBN(self.features, 3, stride=2, name="conv_a", **kw)(x, train)
        y = ReLUConvBN(self.features, 3, name="conv_b", **kw)(y, train)
        s = nn.avg_pool(x, (2, 2), strides=(2, 2))
        s = nn.Conv(
            self.features, (1, 1), padding=((0, 0), (0, 0)), use_bias=False, kernel_init=torch_kernel_init,
            conv_general_dilated=conv_fn(self.conv_grads), name="shortcut",
        )(s)
        if self.probes:
            s = ChannelProbe(name="shortcut_probe")(s)
        return y + s


class NB201Network(nn.Module):
    """NAS-Bench-201 network; ``apply(variables, x, arch, train)``.

    Attributes:
      C: channels of the first stage (16 in the benchmark); stages use C, 2C, 4C.
      N: cells per stage (5 in the benchmark).
      num_classes: classifier outputs.
      select: ``"switch"`` or ``"mask"`` (see module docstring).
      use_bn: False removes every BatchNorm (synflow is defined on such a network).
      codes: sow the NASWOT ReLU-agreement kernel ``(b, b)`` into ``"intermediates"``
        (read it with :func:`jnas.nets.layers.codes_kernel`).
      probes: insert fisher channel probes (a ``"probes"`` variable collection).
      partial: PC-DARTS partial channels K (ops see C/K channels); 1 for the benchmark net.
      skip_dropout: P-DARTS dropout after skip-connect at ``drop_rate`` (rng ``"dropout"``).
      cell_affine: False gives cell ops non-affine BatchNorm and biased convs, the network
        the zero-cost proxies' reference code scores (see module docstring).
      conv_grads: ``"xla"``, ``"explicit"`` or ``"plain"``: the backward pass of the convs, the cell's
        average pools and training-mode BatchNorm (:mod:`jnas.nets.kernels`,
        :func:`jnas.nets.kernels.avg_pool_3x3`, :class:`jnas.nets.kernels.ExplicitBatchNorm`;
        ``"explicit"`` is reverse-mode only, much faster on CPU inside
        ``lax.switch``/``lax.map``).
      skip_unread: under ``"switch"``, skip the ops of edges whose output nothing reads
        (see :class:`Cell`); the zero-cost proxies turn it on.
      cell_barrier: pass each cell's output through :func:`jnas.nets.kernels.fusion_barrier`
        (the same numbers). The supernet turns it on: without it XLA:CPU fuses the backward
        pass along the skip edges of a whole stage into single loops and recomputes them in
        every consumer, so the step's cost grows faster than N (docs/performance.md).

    Returns:
      logits ``(b, num_classes)``, whatever the options.

    Example:
      >>> net = NB201Network(C=8, N=1)
      >>> x = jnp.zeros((2, 32, 32, 3)); arch = space.from_string(
      ...     "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|skip_connect~0|none~1|avg_pool_3x3~2|")
      >>> variables = net.init(jax.random.key(0), x, arch)
      >>> net.apply(variables, x, arch, mutable=["batch_stats"])[0].shape
      (2, 10)
    """

    C: int = 16
    N: int = 5
    num_classes: int = 10
    select: str = "switch"
    use_bn: bool = True
    codes: bool = False
    probes: bool = False
    partial: int = 1
    skip_dropout: bool = False
    cell_affine: bool = True
    conv_grads: str = "xla"
    skip_unread: bool = False
    cell_barrier: bool = False

    @nn.compact
    def __call__(
        self,
        x: Float[Array, "b h w c"],
        arch: Int[Array, "6"] | Float[Array, "6 5"],
        train: bool = True,
        drop_rate: Array | float = 0.0,
    ):
        if self.select not in SELECT_MODES:
            raise ValueError(f"unknown select mode {self.select!r}; valid modes are {list(SELECT_MODES)}")
        if self.partial < 1 or any(c % self.partial for c in self.stage_channels):
            raise ValueError(f"partial={self.partial} must be >= 1 and divide every stage width {list(self.stage_channels)}")
        conv = conv_fn(self.conv_grads)  # raises on an unknown choice before any layer is built
        kw = dict(use_bn=self.use_bn, codes=self.codes, probes=self.probes, conv_grads=self.conv_grads)
        y = nn.Conv(
            self.C, (3, 3), padding=((1, 1), (1, 1)), use_bias=False, kernel_init=torch_kernel_init,
            conv_general_dilated=conv, name="stem",
        )(x)
        if self.probes:
            y = ChannelProbe(name="stem_probe")(y)
        if self.use_bn:
            y = batch_norm(train, "stem_bn", grads=self.conv_grads)(y)
        for stage, c in enumerate(self.stage_channels):
            if stage > 0:
                y = ResidualReduction(c, name=f"reduce_{stage}", **kw)(y, train)
            cell_kw = dict(partial=self.partial, skip_dropout=self.skip_dropout, affine=self.cell_affine,
                           skip_unread=self.skip_unread, **kw)
            for i in range(self.N):
                y = Cell(c, self.select, name=f"cell_{stage}_{i}", **cell_kw)(y, arch, train, drop_rate)
                if self.cell_barrier:
                    y = fusion_barrier(y)
        if self.use_bn:
            y = batch_norm(train, "last_bn", grads=self.conv_grads)(y)
        if self.codes:
            sow_codes(self, relu_kernel(y))
        y = nn.relu(y).mean(axis=(1, 2))
        fan_in = y.shape[-1]
        logits = nn.Dense(
            self.num_classes, kernel_init=torch_kernel_init, bias_init=torch_bias_init(fan_in), name="classifier"
        )(y)
        if self.probes:
            logits = ChannelProbe(name="classifier_probe")(logits)
        return logits

    @classmethod
    def benchmark(cls, C: int = 16, N: int = 5, num_classes: int = 10, **execution) -> "NB201Network":
        """The network NAS-Bench-201 trained (affine BatchNorm, convs without bias); C=16,
        N=5 is the benchmark's size. ``execution``: ``select``, ``conv_grads``, ``skip_unread``."""
        return cls(C=C, N=N, num_classes=num_classes, **_execution(execution))

    @classmethod
    def search_code(cls, C: int = 16, N: int = 5, num_classes: int = 10, **execution) -> "NB201Network":
        """The cells as NB201's search code and the zero-cost proxies' reference code build
        them (non-affine BatchNorm, biased convs; see the module docstring)."""
        return cls(C=C, N=N, num_classes=num_classes, cell_affine=False, **_execution(execution))

    @classmethod
    def supernet(cls, C: int = 16, N: int = 5, num_classes: int = 10, partial: int = 1,
                 skip_dropout: bool = False, conv_grads: str = "plain", cell_barrier: bool = True) -> "NB201Network":
        """The weight-sharing supernet of differentiable search: every op runs, mixed by
        ``(6, 5)`` weights (``select="mask"``); ``partial`` and ``skip_dropout`` give PC-DARTS
        and P-DARTS (see the module docstring). ``conv_grads`` defaults to ``"plain"``: the CPU
        kernel rewrites that speed up the proxies cost this training step about 1.8x in compile
        and step time; ``cell_barrier`` (on) keeps XLA:CPU from fusing across cells
        (docs/performance.md)."""
        return cls(C=C, N=N, num_classes=num_classes, select="mask", partial=partial, skip_dropout=skip_dropout,
                   conv_grads=conv_grads, cell_barrier=cell_barrier)

    @property
    def stage_channels(self) -> Sequence[int]:
        return (self.C, 2 * self.C, 4 * self.C)


def _execution(options: dict) -> dict:
    """Refuse anything but the execution options (which never change the numbers)."""
    extra = set(options) - {"select", "conv_grads", "skip_unread"}
    if extra:
        raise ValueError(f"unknown execution options {sorted(extra)}; valid: ['conv_grads', 'select', 'skip_unread']")
    return options


def cost_tables(net: NB201Network, resolution: int = 32, in_channels: int = 3) -> dict[str, Array]:
    """Parameter and MAC counts of ``net`` split into a fixed part and per-(edge, op) parts.

    The cost of architecture ``a`` is ``fixed + sum_e per_op[e, a[e]]`` (see
    :func:`arch_cost`). Parameters count every trainable leaf (BN affine included, running
    statistics excluded); MACs count Conv and Dense multiply-accumulates at batch 1, the
    AutoDL/NAS-Bench-201 FLOP convention. Both are read off the network's own parameter
    shapes, so they follow ``C``, ``N``, ``num_classes`` and ``resolution``.

    Returns:
      ``{"params_fixed": (), "params_per_op": (6, 5), "macs_fixed": (), "macs_per_op": (6, 5)}``.
    """
    return {k: jnp.asarray(v) for k, v in _cost_tables(net, int(resolution), int(in_channels)).items()}


@functools.lru_cache(maxsize=64)
def _cost_tables(net: NB201Network, resolution: int, in_channels: int) -> dict[str, np.ndarray]:
    """The work of :func:`cost_tables`, once per network and input shape (tracing the full
    network takes seconds); numpy arrays, not to be modified."""
    x = jax.ShapeDtypeStruct((1, resolution, resolution, in_channels), jnp.float32)
    arch = jax.ShapeDtypeStruct((space.NUM_EDGES,), jnp.int32)
    shapes = jax.eval_shape(lambda x, a: net.init(jax.random.key(0), x, a), x, arch)["params"]
    params_fixed, macs_fixed = 0, 0
    params_op = [[0] * space.NUM_OPS for _ in range(space.NUM_EDGES)]
    macs_op = [[0] * space.NUM_OPS for _ in range(space.NUM_EDGES)]
    for path, leaf in jax.tree_util.tree_flatten_with_path(shapes)[0]:
        names = [p.key for p in path]
        size = math.prod(leaf.shape)
        macs = 0
        if names[-1] == "kernel":
            if len(leaf.shape) == 4:  # conv (kh, kw, cin, cout) at the output resolution
                stage = _stage_of(names[0])
                side = resolution // (2**stage)
                macs = side * side * size
            else:  # dense
                macs = size
        edge = next((n for n in names if n.startswith("edge_")), None)
        if edge is None:
            params_fixed += size
            macs_fixed += macs
        else:
            e = int(edge.split("_")[1])
            o = space.OPS.index(names[names.index(edge) + 1])
            params_op[e][o] += size
            macs_op[e][o] += macs
    return {
        "params_fixed": np.asarray(params_fixed, np.float32),
        "params_per_op": np.asarray(params_op, np.float32),
        "macs_fixed": np.asarray(macs_fixed, np.float32),
        "macs_per_op": np.asarray(macs_op, np.float32),
    }


def _stage_of(module_name: str) -> int:
    """Resolution stage of a top-level module: stem/stage-0 cells 0, reduce_s and cell_s_* s."""
    if module_name.startswith("cell_"):
        return int(module_name.split("_")[1])
    if module_name.startswith("reduce_"):
        return int(module_name.split("_")[1])
    if module_name in ("stem",):
        return 0
    raise ValueError(f"cannot place module {module_name!r} in a stage")


def arch_cost(fixed: Array, per_op: Float[Array, "6 5"], arch: Int[Array, "... 6"]) -> Array:
    """``fixed + sum_e per_op[e, arch[e]]``; jit- and batch-friendly."""
    return fixed + per_op[jnp.arange(per_op.shape[0]), jnp.asarray(arch)].sum(-1)
