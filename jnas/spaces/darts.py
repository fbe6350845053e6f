"""DARTS cell space (Liu, Simonyan & Yang, ICLR 2019, arXiv:1806.09055).

A cell has two input nodes (the outputs of the two previous cells, nodes 0 and 1) and
``STEPS = 4`` intermediate nodes; node ``j`` (2..5) sums two ops applied to two distinct
earlier nodes, and the cell output concatenates nodes 2..5. A network has a *normal* and a
*reduction* cell type. Ops follow DARTS's ``PRIMITIVES`` order; ``none`` exists only in
the supernet, never in a derived cell.

An architecture (genotype) is an ``int32`` array of shape ``(2, 4, 2, 2)``:
``[cell (0 normal, 1 reduce), node - 2, slot, (input node, op index)]``. Its string form is
the ``Genotype(...)`` text of the DARTS code base::

    Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ...], normal_concat=[2, 3, 4, 5],
             reduce=[('max_pool_3x3', 0), ...], reduce_concat=[2, 3, 4, 5])

The supernet edge list ``EDGES`` (14 edges) is ``(i, j)`` for j = 2..5 and i < j, in the
order the DARTS supernet enumerates them; ``alpha`` arrays are ``(14, 8)``.
"""

from __future__ import annotations

import dataclasses
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

OPS = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
NUM_OPS = len(OPS)
STEPS = 4
EDGES = tuple((i, j) for j in range(2, 2 + STEPS) for i in range(j))
NUM_EDGES = len(EDGES)  # 14
CELLS = ("normal", "reduce")


def edge_index(i: int, j: int) -> int:
    """Position of supernet edge (i -> j) in :data:`EDGES`."""
    return EDGES.index((i, j))


def check(arch: np.ndarray | Array) -> np.ndarray:
    """Validate a genotype array; returns it as int32 numpy.

    Raises:
      ValueError: wrong shape, an input node that is not earlier than its node, a repeated
        input, or an op index out of range or ``none``.
    """
    a = np.asarray(arch)
    if a.shape != (2, STEPS, 2, 2):
        raise ValueError(f"DARTS genotype must have shape (2, {STEPS}, 2, 2), got {a.shape}")
    for c in range(2):
        for n in range(STEPS):
            (i0, o0), (i1, o1) = a[c, n]
            for slot, (i, o) in enumerate(((i0, o0), (i1, o1))):
                if not 0 <= i < n + 2:
                    raise ValueError(f"{CELLS[c]} node {n + 2} slot {slot}: input {i} must be in 0..{n + 1}")
                if not 1 <= o < NUM_OPS:
                    raise ValueError(f"{CELLS[c]} node {n + 2} slot {slot}: op index {o} must be in 1..{NUM_OPS - 1} ({OPS[1:]})")
            if i0 == i1:
                raise ValueError(f"{CELLS[c]} node {n + 2}: both inputs are node {i0}; they must differ")
    return a.astype(np.int32)


def to_string(arch: np.ndarray | Array) -> str:
    """The DARTS ``Genotype(...)`` text of a genotype array."""
    a = check(arch)
    parts = []
    for c, name in enumerate(CELLS):
        pairs = ", ".join(f"('{OPS[o]}', {i})" for n in range(STEPS) for i, o in a[c, n])
        parts.append(f"{name}=[{pairs}], {name}_concat=[2, 3, 4, 5]")
    return f"Genotype({', '.join(parts)})"


_PAIR = re.compile(r"\(\s*'([^']*)'\s*,\s*(-?\d+)\s*\)")
_CELL = re.compile(r"(\w+)\s*=\s*\[([^\]]*)\]")


def from_string(text: str) -> np.ndarray:
    """Parse a ``Genotype(normal=[...], normal_concat=..., reduce=[...], reduce_concat=...)``,
    or take a published genotype by name (:data:`GENOTYPES`, e.g. ``"PC_DARTS"``).

    Raises:
      ValueError: an unknown name, or naming the bad token and its character position, or the
        broken rule.
    """
    body = text.strip()
    if re.fullmatch(r"\w+", body):
        if body not in GENOTYPES:
            raise ValueError(f"unknown DARTS genotype {body!r}: give one of {sorted(GENOTYPES)} or a 'Genotype(...)' string")
        body = text = GENOTYPES[body]
    if not (body.startswith("Genotype(") and body.endswith(")")):
        raise ValueError(f"DARTS genotype string must look like 'Genotype(normal=[...], ...)', got {text[:40]!r}")
    offset = text.index("Genotype(") + len("Genotype(")
    fields = {m.group(1): (m.group(2), offset + m.start(2)) for m in _CELL.finditer(body[len("Genotype(") : -1])}
    arch = np.zeros((2, STEPS, 2, 2), np.int32)
    for c, name in enumerate(CELLS):
        if name not in fields:
            raise ValueError(f"DARTS genotype string has no '{name}=[...]' field (fields: {sorted(fields)})")
        content, pos = fields[name]
        pairs = list(_PAIR.finditer(content))
        leftover = _PAIR.sub("", content).replace(",", "").strip()
        if leftover:
            raise ValueError(f"unexpected token {leftover[:20]!r} in '{name}' at position {pos + content.index(leftover[0])}")
        if len(pairs) != 2 * STEPS:
            raise ValueError(f"'{name}' needs {2 * STEPS} (op, input) pairs, got {len(pairs)}")
        for k, m in enumerate(pairs):
            op, node = m.group(1), int(m.group(2))
            if op not in OPS[1:]:
                raise ValueError(f"unknown op {op!r} at position {pos + m.start(1)}; valid ops are {list(OPS[1:])}")
            arch[c, k // 2, k % 2] = (node, OPS.index(op))
        concat = fields.get(f"{name}_concat")
        if concat is not None and [int(t) for t in re.findall(r"-?\d+", concat[0])] != [2, 3, 4, 5]:
            raise ValueError(f"'{name}_concat' must be [2, 3, 4, 5] (all intermediate nodes), got [{concat[0]}]")
    return check(arch)


# Published CIFAR-10 cells, in the ``Genotype`` text of their authors' code (genotypes.py of
# the DARTS, PC-DARTS and P-DARTS repositories). DARTS_V1 is first-order DARTS, DARTS_V2
# second order.
DARTS_V1 = (
    "Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 0), ('sep_conv_3x3', 1), "
    "('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 2)], normal_concat=[2, 3, 4, 5], "
    "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0), "
    "('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('avg_pool_3x3', 0)], reduce_concat=[2, 3, 4, 5])"
)
DARTS_V2 = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], "
    "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), "
    "('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"
)
PC_DARTS = (
    "Genotype(normal=[('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 0), ('dil_conv_3x3', 1), "
    "('sep_conv_5x5', 0), ('sep_conv_3x3', 1), ('avg_pool_3x3', 0), ('dil_conv_3x3', 1)], normal_concat=[2, 3, 4, 5], "
    "reduce=[('sep_conv_5x5', 1), ('max_pool_3x3', 0), ('sep_conv_5x5', 1), ('sep_conv_5x5', 2), "
    "('sep_conv_3x3', 0), ('sep_conv_3x3', 3), ('sep_conv_3x3', 1), ('sep_conv_3x3', 2)], reduce_concat=[2, 3, 4, 5])"
)
PDARTS = (
    "Genotype(normal=[('skip_connect', 0), ('dil_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('sep_conv_3x3', 3), ('sep_conv_3x3', 0), ('dil_conv_5x5', 4)], normal_concat=[2, 3, 4, 5], "
    "reduce=[('avg_pool_3x3', 0), ('sep_conv_5x5', 1), ('sep_conv_3x3', 0), ('dil_conv_5x5', 2), "
    "('max_pool_3x3', 0), ('dil_conv_3x3', 1), ('dil_conv_3x3', 1), ('dil_conv_5x5', 3)], reduce_concat=[2, 3, 4, 5])"
)
GENOTYPES = {"DARTS_V1": DARTS_V1, "DARTS_V2": DARTS_V2, "PC_DARTS": PC_DARTS, "PDARTS": PDARTS}
# Parameter counts (millions) of their CIFAR-10 evaluation networks (C=36, 20 cells, without the
# auxiliary head, which the papers' counts leave out): DARTS paper Table 1 (3.3 M, first and
# second order), PC-DARTS paper Table 1 (3.6 M), P-DARTS paper Table 1 (3.4 M).
PUBLISHED_PARAMS_M = {"DARTS_V1": 3.3, "DARTS_V2": 3.3, "PC_DARTS": 3.6, "PDARTS": 3.4}



@dataclasses.dataclass(frozen=True)
class DartsSpace:
    """The DARTS genotype space as a :class:`jnas.spaces.base.Space` (jittable).

    Not a product of independent genes (a node's two inputs must differ), so it has no
    ``choices``; ``num_archs`` counts genotype arrays, in which swapping a node's two
    (input, op) slots gives a different array for the same cell.
    """

    name = "darts"
    arch_shape = (2, STEPS, 2, 2)
    jittable = True

    @property
    def num_archs(self) -> int:
        per_cell = math.prod((n + 2) * (n + 1) * (NUM_OPS - 1) ** 2 for n in range(STEPS))
        return per_cell**2

    def sample(self, key: PRNGKeyArray, n: int | None = None) -> Int[Array, "n 2 4 2 2"]:
        """Per node: two distinct earlier inputs (an ordered pair, uniform) and two ops other than ``none``."""
        shape = () if n is None else (n,)
        k_in0, k_in1, k_op = jax.random.split(key, 3)
        nodes = jnp.arange(STEPS) + 2  # inputs available to node n + 2: 0..n+1
        u0 = jax.random.uniform(k_in0, (*shape, 2, STEPS))
        u1 = jax.random.uniform(k_in1, (*shape, 2, STEPS))
        i0 = jnp.floor(u0 * nodes).astype(jnp.int32)
        i1 = (i0 + 1 + jnp.floor(u1 * (nodes - 1)).astype(jnp.int32)) % nodes  # any input but i0
        ops = jax.random.randint(k_op, (*shape, 2, STEPS, 2), 1, NUM_OPS, dtype=jnp.int32)
        return jnp.stack([jnp.stack([i0, i1], -1), ops], -1)

    def mutate(self, key: PRNGKeyArray, arch: Int[Array, "2 4 2 2"]) -> Int[Array, "2 4 2 2"]:
        """Change one uniformly chosen slot's op to another op, or (with probability 1/2, where
        another input is free) its input to another node not used by the node's other slot."""
        arch = jnp.asarray(arch)
        k_slot, k_kind, k_op, k_in = jax.random.split(key, 4)
        slot = jax.random.randint(k_slot, (), 0, 2 * STEPS * 2)
        c, nd, s = slot // (STEPS * 2), (slot // 2) % STEPS, slot % 2
        i_here, i_other = arch[c, nd, s, 0], arch[c, nd, 1 - s, 0]
        free = (jnp.arange(STEPS + 1) < nd + 2) & (jnp.arange(STEPS + 1) != i_here) & (jnp.arange(STEPS + 1) != i_other)
        change_input = jax.random.bernoulli(k_kind) & jnp.any(free)
        new_in = jax.random.categorical(k_in, jnp.where(free, 0.0, -jnp.inf)).astype(jnp.int32)
        new_op = 1 + (arch[c, nd, s, 1] - 1 + jax.random.randint(k_op, (), 1, NUM_OPS - 1)) % (NUM_OPS - 1)
        pair = jnp.where(change_input, jnp.stack([new_in, arch[c, nd, s, 1]]), jnp.stack([i_here, new_op]))
        return arch.at[c, nd, s].set(pair.astype(arch.dtype))

    def crossover(self, key: PRNGKeyArray, a: Int[Array, "2 4 2 2"], b: Int[Array, "2 4 2 2"]) -> Int[Array, "2 4 2 2"]:
        """Each node (both of its slots together, so its inputs stay distinct) from ``a`` or ``b``."""
        pick = jax.random.bernoulli(key, 0.5, (2, STEPS))[..., None, None]
        return jnp.where(pick, a, b)

    def check(self, archs) -> np.ndarray:
        a = np.asarray(archs)
        if a.shape == self.arch_shape:
            return check(a)
        if a.ndim != 5 or a.shape[1:] != self.arch_shape:
            raise ValueError(f"DARTS genotypes have shape {self.arch_shape} or (n, *{self.arch_shape}), got {a.shape}")
        return np.stack([check(x) for x in a])

    def to_string(self, arch) -> str:
        return to_string(arch)

    def from_string(self, text: str) -> np.ndarray:
        return from_string(text)

    def encode(self, archs: Int[Array, "... 2 4 2 2"]) -> Float[Array, "... F"]:
        """One-hot of every slot's input node (``STEPS + 1`` values) and op (``NUM_OPS``), concatenated."""
        inputs = jax.nn.one_hot(archs[..., 0], STEPS + 1)
        ops = jax.nn.one_hot(archs[..., 1], NUM_OPS)
        feats = jnp.concatenate([inputs, ops], -1)
        return feats.reshape(*archs.shape[:-4], -1)


SPACE = DartsSpace()
