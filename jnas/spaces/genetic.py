"""Genetic-CNN binary stage space (Xie & Yuille, ICCV 2017; Algorithm 5 of the survey (docs/references.md)).

A network has S stages; stage s has K_s ordered nodes (each a conv-BN-ReLU), and one bit
per node pair (i, j), i < j, says whether node i feeds node j: K_s (K_s - 1) / 2 bits, in the
paper's order b(1,2), b(1,3), b(2,3), b(1,4), ... The genome is the stages' bits
concatenated, an int32 array of 0/1. In the paper's string form each stage is written as
groups for nodes 2..K separated by "-" (node j's group lists its inputs 1..j-1), and stages
by "_": ``"1-01-001"`` is a 4-node chain-free stage where node 2 <- 1, node 3 <- 2,
node 4 <- 3.

Realised network (:mod:`jnas.nets.genetic`): a default input node feeds every node without
inputs, every node without outputs feeds a default output node, and nodes with neither
are dropped (the paper's rules).
"""

from __future__ import annotations

import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Int, PRNGKeyArray

from jnas.spaces.base import Categorical


@dataclasses.dataclass(frozen=True)
class GeneticSpace(Categorical):
    """Static facts: nodes per stage (the survey's MNIST design: one stage of 7 nodes).
    Implements :class:`jnas.spaces.base.Space` (a categorical genome of bits)."""

    name = "genetic"

    stages: tuple[int, ...] = (7,)

    def __post_init__(self):
        if not self.stages or any(k < 2 for k in self.stages):
            raise ValueError(f"every stage needs at least 2 nodes, got {self.stages}")

    @property
    def stage_bits(self) -> tuple[int, ...]:
        return tuple(k * (k - 1) // 2 for k in self.stages)

    @property
    def length(self) -> int:
        return sum(self.stage_bits)

    @property
    def arch_shape(self) -> tuple[int, ...]:
        return (self.length,)

    @property
    def choices(self) -> tuple[int, ...]:
        return (2,) * self.length

    def sample(self, key: PRNGKeyArray, n: int | None = None) -> Int[Array, "... L"]:
        """Bernoulli(0.5) genomes (the paper's initialisation)."""
        shape = (self.length,) if n is None else (n, self.length)
        return jax.random.bernoulli(key, 0.5, shape).astype(jnp.int32)

    def check(self, archs) -> np.ndarray:
        return self.check_genes(archs)

    def to_string(self, arch) -> str:
        return to_string(self, arch)

    def from_string(self, text: str) -> np.ndarray:
        return np.asarray(from_string(self, text))


def sample(space: GeneticSpace, key: PRNGKeyArray, n: int | None = None) -> Int[Array, "... L"]:
    """Bernoulli(0.5) genomes (the paper's initialisation); :meth:`GeneticSpace.sample`."""
    return space.sample(key, n)


def adjacency(space: GeneticSpace, genome) -> list[np.ndarray]:
    """Per stage, the ``(K, K)`` 0/1 matrix A[i, j] = node i feeds node j (i < j)."""
    g = check(space, genome)
    out, pos = [], 0
    for k in space.stages:
        a = np.zeros((k, k), np.int32)
        for j in range(1, k):
            for i in range(j):
                a[i, j] = g[pos]
                pos += 1
        out.append(a)
    return out


def check(space: GeneticSpace, genome) -> np.ndarray:
    """Validate a genome: shape ``(L,)`` and only 0/1 values. Raises ValueError naming the problem."""
    g = np.asarray(genome)
    if g.shape != (space.length,):
        raise ValueError(f"genome must have shape ({space.length},) for stages {space.stages}, got {g.shape}")
    bad = np.flatnonzero((g != 0) & (g != 1))
    if bad.size:
        raise ValueError(f"genome bit {bad[0]} is {g[bad[0]]}; bits must be 0 or 1")
    return g.astype(np.int32)


def to_string(space: GeneticSpace, genome) -> str:
    """The paper's code, e.g. ``"1-01-001"`` per stage, stages joined by ``"_"``."""
    g = check(space, genome)
    parts, pos = [], 0
    for k in space.stages:
        groups = []
        for j in range(1, k):
            groups.append("".join(str(int(b)) for b in g[pos:pos + j]))
            pos += j
        parts.append("-".join(groups))
    return "_".join(parts)


def parse(text: str) -> tuple[GeneticSpace, Int[Array, "L"]]:
    """The space implied by a code string (nodes per stage = node groups + 1) and its genome."""
    space = GeneticSpace(tuple(len(part.split("-")) + 1 for part in text.strip().split("_")))
    return space, from_string(space, text)


def from_string(space: GeneticSpace, text: str) -> Int[Array, "L"]:
    """Parse :func:`to_string`'s form. Raises ValueError naming the bad stage/group and position."""
    stages = text.strip().split("_")
    if len(stages) != len(space.stages):
        raise ValueError(f"{text!r} has {len(stages)} stages; the space has {len(space.stages)}")
    bits = []
    for s, (part, k) in enumerate(zip(stages, space.stages)):
        groups = part.split("-")
        if len(groups) != k - 1:
            raise ValueError(f"stage {s} {part!r} has {len(groups)} node groups; a {k}-node stage needs {k - 1}")
        for j, grp in enumerate(groups, start=1):
            if len(grp) != j or not re.fullmatch(r"[01]+", grp):
                raise ValueError(f"stage {s}, node {j + 1}: group {grp!r} must be {j} bits of 0/1")
            bits.extend(int(c) for c in grp)
    return jnp.asarray(bits, jnp.int32)
