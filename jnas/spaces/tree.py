"""Tree-structured multi-attribute networks: GNAS's search space (Huang et al., "GNAS: A Greedy
Neural Architecture Search Method for Multi-Attribute Learning", ACM MM 2018;
Algorithm 10 of the survey (docs/references.md)).

A network has M layers; layer l holds B_l blocks of feature maps. B_1 = 1 (the input
image) and B_M = N (one block per attribute: its prediction). Every block of layer l + 1
has exactly one parent in layer l (the survey's constraint sum_i A[i, j] = 1), so the
network is a tree rooted at the input: low layers can be shared by related attributes and
high layers specialise.

As data, an architecture is an int32 array of every block's parent, layer after layer:
``parents[offset(l) + j]`` is the parent (in layer l) of block j of layer l + 1, for
l = 1 .. M-1, so its length is B_2 + ... + B_M. The string form writes each layer's parents
joined by ``-`` and layers joined by ``_``: for blocks (1, 3, 3), ``"0-0-0_0-0-2"`` sends
all three second-layer blocks to the input and attributes 1 and 2 through block 0, attribute
3 through block 2.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Iterator

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Int, PRNGKeyArray

from jnas.spaces.base import Categorical


@dataclasses.dataclass(frozen=True)
class TreeSpace(Categorical):
    """Blocks per layer, input first and attributes last, e.g. ``(1, 3, 3, 3)``.
    Implements :class:`jnas.spaces.base.Space` (a categorical genome: one parent per block)."""

    name = "tree"

    blocks: tuple[int, ...] = (1, 3, 3, 3)

    def __post_init__(self):
        if len(self.blocks) < 2 or self.blocks[0] != 1 or min(self.blocks) < 1:
            raise ValueError(f"blocks must start with 1 (the input) and have >= 2 layers of >= 1 block, got {self.blocks}")

    @property
    def num_attributes(self) -> int:
        return self.blocks[-1]

    @property
    def layers(self) -> int:
        return len(self.blocks)

    @property
    def length(self) -> int:
        return sum(self.blocks[1:])

    def offset(self, layer: int) -> int:
        """Index in the parent array of the first block of layer ``layer + 1`` (layers count from 0)."""
        return sum(self.blocks[1:layer + 1])

    @property
    def arch_shape(self) -> tuple[int, ...]:
        return (self.length,)

    @property
    def choices(self) -> tuple[int, ...]:
        """Parents a block may have: the block count of the layer below it."""
        return tuple(self.blocks[l] for l in range(self.layers - 1) for _ in range(self.blocks[l + 1]))

    def check(self, archs) -> np.ndarray:
        a = np.asarray(archs)
        return np.stack([check(self, x) for x in a]) if a.ndim == 2 else check(self, a)

    def to_string(self, arch) -> str:
        return to_string(self, arch)

    def from_string(self, text: str) -> np.ndarray:
        return np.asarray(from_string(self, text))

    def size(self) -> int:
        """Number of architectures: prod over l of B_l ** B_{l+1}."""
        return int(np.prod([self.blocks[l] ** self.blocks[l + 1] for l in range(self.layers - 1)]))


def check(space: TreeSpace, arch) -> np.ndarray:
    """Validate a parent array. Raises ValueError naming the block and its allowed parents."""
    a = np.asarray(arch)
    if a.shape != (space.length,):
        raise ValueError(f"a parent array for blocks {space.blocks} has shape ({space.length},), got {a.shape}")
    for l in range(space.layers - 1):
        for j in range(space.blocks[l + 1]):
            p = a[space.offset(l) + j]
            if not 0 <= p < space.blocks[l]:
                raise ValueError(f"block {j} of layer {l + 1} has parent {p}; layer {l} has blocks 0..{space.blocks[l] - 1}")
    return a.astype(np.int32)


def layer_parents(space: TreeSpace, arch, layer: int) -> np.ndarray:
    """Parents (in layer ``layer``) of the blocks of layer ``layer + 1``."""
    a = np.asarray(arch)
    return a[space.offset(layer): space.offset(layer) + space.blocks[layer + 1]]


def with_layer(space: TreeSpace, arch, layer: int, parents) -> np.ndarray:
    """``arch`` with the parents of layer ``layer + 1``'s blocks replaced."""
    a = np.array(arch, np.int32)
    a[space.offset(layer): space.offset(layer) + space.blocks[layer + 1]] = parents
    return a


def ancestors(space: TreeSpace, arch) -> np.ndarray:
    """``(M, N)``: the block of each layer on attribute n's path from the input."""
    a = check(space, arch)
    path = np.zeros((space.layers, space.num_attributes), np.int32)
    path[-1] = np.arange(space.num_attributes)
    for l in range(space.layers - 2, -1, -1):
        path[l] = layer_parents(space, a, l)[path[l + 1]]
    return path


def adjacency(space: TreeSpace, arch) -> list[np.ndarray]:
    """The survey's binary matrices: ``A[l][i, j] = 1`` iff block i of layer l feeds block j of layer l + 1."""
    a = check(space, arch)
    out = []
    for l in range(space.layers - 1):
        m = np.zeros((space.blocks[l], space.blocks[l + 1]), np.int32)
        m[layer_parents(space, a, l), np.arange(space.blocks[l + 1])] = 1
        out.append(m)
    return out


def sample(space: TreeSpace, key: PRNGKeyArray) -> Int[Array, "L"]:
    """A uniformly random tree (:meth:`TreeSpace.sample`)."""
    return space.sample(key)


def enumerate_layer(space: TreeSpace, arch, layer: int) -> Iterator[np.ndarray]:
    """Every architecture that differs from ``arch`` only in layer ``layer``'s connections."""
    for parents in itertools.product(range(space.blocks[layer]), repeat=space.blocks[layer + 1]):
        yield with_layer(space, arch, layer, parents)


def to_string(space: TreeSpace, arch) -> str:
    a = check(space, arch)
    return "_".join("-".join(str(int(p)) for p in layer_parents(space, a, l)) for l in range(space.layers - 1))


def from_string(space: TreeSpace, text: str) -> Int[Array, "L"]:
    """Parse :func:`to_string`'s form. Raises ValueError naming the bad layer or token."""
    layers = text.strip().split("_")
    if len(layers) != space.layers - 1:
        raise ValueError(f"{text!r} has {len(layers)} layers of parents; blocks {space.blocks} need {space.layers - 1}")
    parents = []
    for l, part in enumerate(layers):
        tokens = part.split("-")
        if len(tokens) != space.blocks[l + 1]:
            raise ValueError(f"layer {l + 1} {part!r} lists {len(tokens)} parents; it has {space.blocks[l + 1]} blocks")
        for j, t in enumerate(tokens):
            if not t.isdigit():
                raise ValueError(f"layer {l + 1}, block {j}: {t!r} is not a block index")
            parents.append(int(t))
    return jnp.asarray(check(space, np.array(parents)))
