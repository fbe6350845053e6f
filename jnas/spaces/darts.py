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

import re

import numpy as np
from jaxtyping import Array

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
    """Parse a ``Genotype(normal=[...], normal_concat=..., reduce=[...], reduce_concat=...)``.

    Raises:
      ValueError: naming the bad token and its character position, or the broken rule.
    """
    body = text.strip()
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


# DARTS-V2, the cell DARTS reports for CIFAR-10 (genotypes.py of the DARTS code).
DARTS_V2 = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], "
    "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), "
    "('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"
)
