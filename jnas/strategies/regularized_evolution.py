"""Regularized (aging) evolution, REA (Real et al., AAAI 2019; Algorithm 6 of the survey (docs/references.md)).

The first ``population`` evaluations are random. Afterwards each step samples ``sample_size``
members uniformly (with replacement, as NB201's reference code does), mutates the fittest of
them, evaluates the child, adds it and removes the *oldest* member (a ring buffer: the slot
written is always the oldest). NAS-Bench-201 defaults: population 10, sample size 3.
Jittable; one child per ask; any space (``sample`` and ``mutate``).

``population`` and ``sample_size`` are hyperparameters in :class:`REAParams`, not shapes: the
buffers are sized by ``max_population``/``max_sample_size``, so ``jax.vmap`` over
``REAParams`` runs several population and tournament sizes in one call.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jnas.spaces import nb201
from jnas.spaces.base import Space
from jnas.strategies.base import Strategy, resolve


def tournament(key, fitness: jnp.ndarray, sample_size, population=None, max_sample_size: int | None = None) -> jnp.ndarray:
    """Index of the fittest of ``sample_size`` members drawn uniformly with replacement from the
    first ``population`` slots (default: all). ``sample_size`` may be traced when
    ``max_sample_size`` (static) bounds it."""
    size = fitness.shape[0] if population is None else population
    draws = sample_size if max_sample_size is None else max_sample_size
    idx = jax.random.randint(key, (draws,), 0, size)
    f = fitness[idx] if max_sample_size is None else jnp.where(jnp.arange(draws) < sample_size, fitness[idx], -jnp.inf)
    return idx[jnp.argmax(f)]


def age_out(archs: jnp.ndarray, fitness: jnp.ndarray, count: jnp.ndarray, arch, f, population=None) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Write evaluation number ``count`` into slot ``count % population``: the oldest member once full."""
    slot = count % (fitness.shape[0] if population is None else population)
    return archs.at[slot].set(arch), fitness.at[slot].set(f)


class REAParams(NamedTuple):
    population: jnp.ndarray  # () int32, 1..max_population
    sample_size: jnp.ndarray  # () int32, 1..min(population, max_sample_size)


class REAState(NamedTuple):
    archs: jnp.ndarray  # (max_population, ...) int32 (slot count % population is the oldest once full)
    fitness: jnp.ndarray  # (max_population,) float32, -inf in empty slots
    count: jnp.ndarray  # () int32, evaluations told


def regularized_evolution(
    space: Space = nb201.SPACE, population: int = 10, sample_size: int = 3,
    max_population: int | None = None, max_sample_size: int | None = None,
) -> Strategy:
    """REA over ``space``; ``population``/``sample_size`` are the default :class:`REAParams`.

    ``max_population``/``max_sample_size`` (static, default the given sizes) bound the
    values a params pytree may take."""
    max_population = population if max_population is None else max_population
    max_sample_size = sample_size if max_sample_size is None else max_sample_size
    if not 1 <= population <= max_population or not 1 <= sample_size <= min(population, max_sample_size):
        raise ValueError(f"need 1 <= population <= max_population and 1 <= sample_size <= min(population, "
                         f"max_sample_size), got population={population}, sample_size={sample_size}, "
                         f"max_population={max_population}, max_sample_size={max_sample_size}")
    defaults = REAParams(jnp.asarray(population, jnp.int32), jnp.asarray(sample_size, jnp.int32))

    def init(key, params=None):
        return REAState(jnp.zeros((max_population, *space.arch_shape), jnp.int32), jnp.full((max_population,), -jnp.inf),
                        jnp.zeros((), jnp.int32))

    def ask(key, state, params=None):
        p = resolve(params, defaults)
        k_rand, k_pick, k_mut = jax.random.split(key, 3)
        parent = state.archs[tournament(k_pick, state.fitness, p.sample_size, p.population, max_sample_size)]
        if not space.jittable:  # host-side space: draw only the branch taken
            warm = int(state.count) < int(p.population)
            child = space.sample(k_rand, 1)[0] if warm else space.mutate(k_mut, parent)
            return jnp.asarray(child)[None], state
        child = jnp.where(state.count < p.population, space.sample(k_rand, 1)[0], space.mutate(k_mut, parent))
        return child[None], state

    def tell(key, archs, fitness, state, params=None):
        p = resolve(params, defaults)
        pop, fit = age_out(state.archs, state.fitness, state.count, archs[0], fitness[0], p.population)
        return REAState(pop, fit, state.count + 1), {}

    return Strategy(init, ask, tell, 1, jittable=space.jittable, params=defaults)
