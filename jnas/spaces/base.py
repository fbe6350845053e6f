"""The Space protocol: what strategies, proxies and drivers may ask of a search space.

A space is a frozen, hashable dataclass (so it can be a static jit argument) whose methods
are pure functions of explicit keys and arrays, in the spirit of optax's
``GradientTransformation``: strategies take a space and call only these methods, so a new
space needs no change to any strategy. An architecture is an ``int32`` array of shape
``space.arch_shape``; a batch adds a leading axis.

Every space provides :class:`Space`. Some strategies need more, and say so:

* ``choices``: the space is a product of independent categorical genes (a flat genome whose
  gene ``g`` takes ``choices[g]`` values); REINFORCE, MCTS, RENAS and the GA need it.
* ``neighbours(arch)``: the 1-edit neighbourhood (local search).
* ``from_index``/``to_index``: a dense index of a small, enumerable space (GP-BO scores every
  unevaluated architecture).

:func:`require` checks these before any tracing and names what is missing. The network that
realises an architecture comes from :func:`jnas.nets.network` (``spaces`` stays below ``nets``).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray


@runtime_checkable
class Space(Protocol):
    """What every registered space provides (see the module docstring for optional parts)."""

    @property
    def name(self) -> str: ...  # registry name, e.g. "nb201"

    @property
    def arch_shape(self) -> tuple[int, ...]: ...  # shape of one architecture array

    @property
    def num_archs(self) -> int | None: ...  # number of architectures, None when unbounded

    @property
    def jittable(self) -> bool: ...  # sample / mutate / crossover / encode trace under jit and vmap

    def sample(self, key: PRNGKeyArray, n: int | None = None) -> Int[Array, "n ..."]: ...  # None: one architecture

    def mutate(self, key: PRNGKeyArray, arch: Int[Array, "..."]) -> Int[Array, "..."]: ...

    def crossover(self, key: PRNGKeyArray, a: Int[Array, "..."], b: Int[Array, "..."]) -> Int[Array, "..."]: ...

    def check(self, archs) -> np.ndarray: ...  # validate one architecture or a batch; ValueError naming the fault

    def to_string(self, arch) -> str: ...

    def from_string(self, text: str) -> np.ndarray: ...

    def encode(self, archs: Int[Array, "... A"]) -> Float[Array, "... F"]: ...  # features for surrogate models


def require(space, *capabilities: str, who: str) -> None:
    """Raise ValueError when ``space`` lacks any of ``capabilities`` (attribute names) that
    ``who`` (a strategy's name) needs; a capability set to ``None`` counts as missing."""
    missing = [c for c in capabilities if getattr(space, c, None) is None]
    if missing:
        raise ValueError(f"{who} needs a space with {missing}; {type(space).__name__} ({getattr(space, 'name', '?')}) "
                         f"does not provide {'it' if len(missing) == 1 else 'them'}")


# ----------------------------------------------------------------------------- categorical genomes
class Categorical:
    """Mix-in for spaces that are a product of independent categorical genes.

    The class defines ``choices`` (values per gene, a tuple of ints) and ``arch_shape ==
    (len(choices),)``; this mix-in supplies sampling, mutation, crossover, the neighbourhood,
    one-hot features and a dense mixed-radix index, all jittable.
    """

    choices: tuple[int, ...]

    @property
    def jittable(self) -> bool:
        return True

    @property
    def num_archs(self) -> int:
        return int(np.prod(np.asarray(self.choices, dtype=object)))

    def sample(self, key: PRNGKeyArray, n: int | None = None) -> Int[Array, "n G"]:
        """Each gene uniform over its values, independently; ``n=None`` gives one ``(G,)`` array."""
        shape = (len(self.choices),) if n is None else (n, len(self.choices))
        if len(set(self.choices)) == 1:
            return jax.random.randint(key, shape, 0, self.choices[0], dtype=jnp.int32)
        return jnp.floor(jax.random.uniform(key, shape) * jnp.asarray(self.choices)).astype(jnp.int32)

    def mutate(self, key: PRNGKeyArray, arch: Int[Array, "G"]) -> Int[Array, "G"]:
        """Change one uniformly chosen gene (among genes with two or more values) to a
        different, uniformly chosen value: the mutation of regularized evolution."""
        arch = jnp.asarray(arch)
        k_gene, k_shift = jax.random.split(key)
        highs = jnp.asarray(self.choices, jnp.int32)
        mutable = np.asarray(self.choices) > 1
        if mutable.all():
            gene = jax.random.randint(k_gene, (), 0, len(self.choices))
        else:
            gene = jax.random.categorical(k_gene, jnp.where(jnp.asarray(mutable), 0.0, -jnp.inf))
        shift = jax.random.randint(k_shift, (), 1, jnp.maximum(highs[gene], 2))  # never 0: the value changes
        return arch.at[gene].set((arch[gene] + shift) % highs[gene])

    def crossover(self, key: PRNGKeyArray, a: Int[Array, "G"], b: Int[Array, "G"]) -> Int[Array, "G"]:
        """Uniform crossover: each gene from ``a`` or ``b`` with probability 1/2."""
        return jnp.where(jax.random.bernoulli(key, 0.5, a.shape), a, b)

    def neighbours(self, arch: Int[Array, "G"]) -> Int[Array, "K G"]:
        """Every architecture one gene-change away, gene-major, value shift 1..choices[g]-1."""
        arch = jnp.asarray(arch)
        genes = np.concatenate([[g] * (c - 1) for g, c in enumerate(self.choices)]).astype(np.int32)
        shifts = np.concatenate([np.arange(1, c) for c in self.choices]).astype(np.int32)
        highs = jnp.asarray(np.asarray(self.choices, np.int32)[genes])
        base = jnp.broadcast_to(arch, (genes.shape[0], len(self.choices)))
        return base.at[jnp.arange(genes.shape[0]), genes].set((arch[genes] + shifts) % highs)

    def encode(self, archs: Int[Array, "... G"]) -> Float[Array, "... F"]:
        """One-hot of every gene, concatenated: ``sum(choices)`` features."""
        return jnp.concatenate([jax.nn.one_hot(archs[..., g], c) for g, c in enumerate(self.choices)], -1)

    def _radix(self) -> np.ndarray:
        # Gene 0 most significant (NB201's base-5 order).
        return np.array([int(np.prod(self.choices[g + 1:])) for g in range(len(self.choices))], np.int64)

    def to_index(self, archs: Int[Array, "... G"]) -> Int[Array, "..."]:
        """Dense mixed-radix index (gene 0 most significant); jittable."""
        return jnp.sum(jnp.asarray(archs, jnp.int32) * jnp.asarray(self._radix(), jnp.int32), axis=-1)

    def from_index(self, index: Int[Array, "..."]) -> Int[Array, "... G"]:
        """Inverse of :meth:`to_index`; jittable."""
        index = jnp.asarray(index, jnp.int32)
        return (index[..., None] // jnp.asarray(self._radix(), jnp.int32)) % jnp.asarray(self.choices, jnp.int32)

    def check_genes(self, archs) -> np.ndarray:
        """Validate one genome or a batch: shape, integer dtype, every gene within its values."""
        a = np.asarray(archs)
        g = len(self.choices)
        if a.ndim not in (1, 2) or a.shape[-1] != g:
            raise ValueError(f"{self.name} architectures have shape ({g},) or (n, {g}), got {a.shape}")
        if not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"{self.name} architectures are integer arrays, got dtype {a.dtype}")
        bad = np.argwhere((a < 0) | (a >= np.asarray(self.choices)))
        if bad.size:
            pos = tuple(int(i) for i in bad[0])
            about = self.describe_gene(pos[-1]) if hasattr(self, "describe_gene") else ""
            raise ValueError(f"{self.name} architecture value {int(a[pos])} at position {pos} is outside "
                             f"0..{self.choices[pos[-1]] - 1}{about}")
        return a.astype(np.int32)
