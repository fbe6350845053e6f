"""Hypernetworks that generate the NB201 network's convolution weights from its cell.

SMASH (Brock et al., ICLR 2018) and the graph hypernetwork GHN (Zhang et al., ICLR 2019)
train one network that maps an architecture to the weights of that architecture, then rank
architectures by their accuracy with the generated weights. Here both generate every
convolution kernel inside the cells of :func:`jnas.oneshot.nb201.supernet` (the 1x1 and 3x3
convs of every edge); the stem, the reduction blocks, the cells' batch-norm affine
parameters and the classifier are ordinary weights shared by all cells, as in SMASH. How
the code of a cell is computed is what separates the two:

* ``"smash"``: a two-layer MLP of the flattened one-hot cell gives one code for the whole
  cell; every kernel has its own linear read-out of it (SMASH's per-weight-slice mapping),
  so each weight depends on the whole architecture.
* ``"ghn"``: a graph network over the cell's computation graph (one node per edge-op, an
  arc from op ``(i, j)`` to every op leaving node ``j``) embeds each node from its op type,
  then ``rounds`` of gated (GRU) message passing, forward in topological order and back
  again, as GHN propagates; a ``none`` op sends no messages. One decoder per cell position
  and op type, shared by the edges, maps each node's embedding to its kernel, so a kernel
  depends on the op's place in the graph, not on which edge slot it occupies.

Each read-out is ``kernel = b + W h`` with ``h`` in [-1, 1] (tanh): ``b`` starts at the
supernet's initial kernel and ``W`` at a scale that adds an architecture-dependent part of
at most ``gain`` times the initial kernels' spread. Simplifications, said plainly: one graph
per cell type, not a graph of the whole network (every NB201 cell has the same genotype);
the kernels' shapes come from the supernet, so no tiling of a fixed-size output as in GHN.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import traverse_util
from jaxtyping import Array, Int

from jnas.spaces import nb201 as space

PyTree = Any
KINDS = ("smash", "ghn")
SLOT_OPS = ("nor_conv_1x1", "nor_conv_3x3")
NONE = space.OPS.index("none")
# Op-level graph of a cell: op (i, j) feeds every op leaving node j.
PREDECESSORS = tuple(tuple(p for p, (_, dst) in enumerate(space.EDGES) if dst == src) for src, _ in space.EDGES)


class SmashEncoder(nn.Module):
    """The whole cell's code, one row per edge (all rows equal)."""

    hidden: int

    @nn.compact
    def __call__(self, cell: Int[Array, "6"]) -> Array:
        x = jax.nn.one_hot(cell, space.NUM_OPS).reshape(-1)
        h = jnp.tanh(nn.Dense(self.hidden)(nn.relu(nn.Dense(self.hidden)(x))))
        return jnp.broadcast_to(h, (space.NUM_EDGES, self.hidden))


class GraphEncoder(nn.Module):
    """One embedding per edge-op node after forward and backward GRU message passing."""

    hidden: int
    rounds: int = 2

    @nn.compact
    def __call__(self, cell: Int[Array, "6"]) -> Array:
        live = (cell != NONE).astype(jnp.float32)
        h = list(nn.Embed(space.NUM_OPS, self.hidden, name="op_embedding")(cell))
        message = {d: nn.Dense(self.hidden, name=f"message_{d}") for d in ("forward", "backward")}
        update = {d: nn.GRUCell(self.hidden, name=f"gru_{d}") for d in ("forward", "backward")}
        successors = tuple(tuple(s for s in range(space.NUM_EDGES) if e in PREDECESSORS[s]) for e in range(space.NUM_EDGES))
        for _ in range(self.rounds):
            for d, order, sources in (("forward", range(space.NUM_EDGES), PREDECESSORS),
                                      ("backward", reversed(range(space.NUM_EDGES)), successors)):
                for e in order:  # space.EDGES is in topological order
                    m = sum((live[s] * nn.relu(message[d](h[s])) for s in sources[e]), jnp.zeros(self.hidden))
                    h[e], _ = update[d](h[e], m)
        return jnp.tanh(jnp.stack(h))


@dataclasses.dataclass(frozen=True)
class HyperNet:
    """A hypernetwork for the supernet whose parameters were given to :meth:`init`.

    ``params(trainable, cell)`` returns the supernet's full parameter tree with every cell
    convolution kernel generated for ``cell``; ``trainable`` holds the shared weights
    (``"net"``, the supernet tree without those kernels), the encoder and the read-outs.
    """

    kind: str = "smash"
    hidden: int = 32
    rounds: int = 2
    gain: float = 1.0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown hypernetwork {self.kind!r}; valid kinds are {list(KINDS)}")
        if self.hidden < 1 or self.rounds < 1:
            raise ValueError(f"hidden and rounds must be >= 1; got {self.hidden}, {self.rounds}")

    def encoder(self) -> nn.Module:
        return SmashEncoder(self.hidden) if self.kind == "smash" else GraphEncoder(self.hidden, self.rounds)

    def group(self, path: tuple[str, ...]) -> str:
        """Read-out a kernel uses: its own (SMASH) or its cell's and op's (GHN)."""
        cell, _, op = path[:3]
        return "/".join(path) if self.kind == "smash" else f"{cell}/{op}"

    def init(self, key: jax.Array, net_params: PyTree) -> PyTree:
        flat = traverse_util.flatten_dict(net_params)
        slots = _slots(flat)
        if not slots:
            raise ValueError("the parameters hold no NB201 cell convolution kernels (cell_*/edge_*/nor_conv_*/conv/kernel)")
        k_enc, k_out = jax.random.split(key)
        readout: dict[str, dict[str, Array]] = {}
        for i, path in enumerate(slots):
            g = self.group(path)
            if g not in readout:
                kernel = flat[path]
                std = self.gain * jnp.std(kernel) / math.sqrt(self.hidden)  # |h| <= 1: at most gain x the init scale
                w = std * jax.random.normal(jax.random.fold_in(k_out, i), (self.hidden, *kernel.shape), kernel.dtype)
                readout[g] = {"W": w, "b": kernel}
        shared = traverse_util.unflatten_dict({k: v for k, v in flat.items() if k not in set(slots)})
        encoder = self.encoder().init(k_enc, jnp.zeros(space.NUM_EDGES, jnp.int32))["params"]
        return {"net": shared, "encoder": encoder, "readout": readout}

    def params(self, trainable: PyTree, cell: Int[Array, "6"]) -> PyTree:
        codes = self.encoder().apply({"params": trainable["encoder"]}, jnp.asarray(cell))
        flat = traverse_util.flatten_dict(trainable["net"])
        for g, r in trainable["readout"].items():
            if self.kind == "smash":
                paths = [tuple(g.split("/"))]
            else:
                cell_name, op = g.split("/")
                paths = [(cell_name, f"edge_{e}", op, "conv", "kernel") for e in range(space.NUM_EDGES)]
            for path in paths:
                e = int(path[1].split("_")[1])
                flat[path] = r["b"] + jnp.tensordot(codes[e], r["W"], 1)
        return traverse_util.unflatten_dict(flat)


def _slots(flat: dict) -> list[tuple[str, ...]]:
    return [k for k in flat if len(k) >= 5 and k[0].startswith("cell_") and k[1].startswith("edge_") and k[2] in SLOT_OPS
            and k[-2:] == ("conv", "kernel")]
