"""Regularized (aging) evolution, REA (Real et al., AAAI 2019; Algorithm 6 of the survey (docs/references.md)).

The first ``population`` evaluations are random. Afterwards each step samples ``sample_size``
members uniformly (with replacement, as NB201's reference code does), mutates the fittest of
them, evaluates the child, adds it and removes the *oldest* member (a ring buffer: the slot
written is always the oldest). NAS-Bench-201 defaults: population 10, sample size 3.
Jittable; one child per ask.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from jnas.spaces import nb201
from jnas.strategies.base import Strategy


def tournament(key, fitness: jnp.ndarray, sample_size: int) -> jnp.ndarray:
    """Index of the fittest of ``sample_size`` members drawn uniformly with replacement."""
    idx = jax.random.randint(key, (sample_size,), 0, fitness.shape[0])
    return idx[jnp.argmax(fitness[idx])]


def age_out(archs: jnp.ndarray, fitness: jnp.ndarray, count: jnp.ndarray, arch, f) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Write evaluation number ``count`` into slot ``count % P``: the oldest member once full."""
    slot = count % fitness.shape[0]
    return archs.at[slot].set(arch), fitness.at[slot].set(f)


class REAParams(NamedTuple):
    population: int = 10
    sample_size: int = 3


class REAState(NamedTuple):
    archs: jnp.ndarray  # (P, ...) int32, population (slot count % P is the oldest once full)
    fitness: jnp.ndarray  # (P,) float32, -inf in empty slots
    count: jnp.ndarray  # () int32, evaluations told


def regularized_evolution(
    population: int = 10, sample_size: int = 3, sample: Callable = nb201.sample, mutate: Callable = nb201.mutate,
    arch_shape: tuple[int, ...] = (nb201.NUM_EDGES,),
) -> Strategy:
    """REA over any space with ``sample(key, n)`` and ``mutate(key, arch)``.

    ``population`` and ``sample_size`` are static (they set array shapes)."""
    if population < 1 or not 1 <= sample_size <= population:
        raise ValueError(f"need population >= 1 and 1 <= sample_size <= population, got {population}, {sample_size}")

    def init(key, params=None):
        return REAState(jnp.zeros((population, *arch_shape), jnp.int32), jnp.full((population,), -jnp.inf),
                        jnp.zeros((), jnp.int32))

    def ask(key, state, params=None):
        k_rand, k_pick, k_mut = jax.random.split(key, 3)
        parent = state.archs[tournament(k_pick, state.fitness, sample_size)]
        child = jnp.where(state.count < population, sample(k_rand, 1)[0], mutate(k_mut, parent))
        return child[None], state

    def tell(key, archs, fitness, state, params=None):
        return REAState(*age_out(state.archs, state.fitness, state.count, archs[0], fitness[0]), state.count + 1), {}

    return Strategy(init, ask, tell, 1)
