"""Guided evolutionary algorithm, GEA (Lopes, Santos & Alexandre, 2023;
Algorithm 7 of the survey (docs/references.md)): aging evolution whose children are pre-screened by a zero-cost proxy.

1. Score ``candidates`` random cells with the proxy; the best ``population`` of them are
   evaluated (queried one per ask) and form the population.
2. Each step: sample ``sample_size`` members, take the fittest as parent, make
   ``children`` one-edit mutations, score them with the proxy, evaluate only the best one,
   append it and remove the oldest member.

The proxy is any ``score(archs (n, 6)) -> (n,)`` -- the survey pairs GEA with the per-class
Jacobian score (``jnas.proxies`` name ``jacob_perclass``). The survey gives no values for
C, N, S, P; the defaults here (100, 10, 5, 10) are jnas's. Jittable when ``score`` is (e.g.
a table column); with ``jnas.proxies`` it runs through the Python driver (``jittable=False``).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from jnas.spaces import nb201
from jnas.spaces.base import Space
from jnas.strategies.base import Strategy
from jnas.strategies.regularized_evolution import age_out, tournament


class GEAState(NamedTuple):
    archs: jnp.ndarray  # (N, ...) population (ring buffer, slot count % N is the oldest once full)
    fitness: jnp.ndarray  # (N,)
    initial: jnp.ndarray  # (N, ...) proxy-selected initial cells, queried first
    count: jnp.ndarray  # () int32 evaluations told


def gea(score: Callable, space: Space = nb201.SPACE, candidates: int = 100, population: int = 10, sample_size: int = 5, children: int = 10,
        jittable: bool = True) -> Strategy:
    """GEA over ``space`` (``sample`` and ``mutate``) with proxy ``score(archs (B, ...)) -> (B,)``;
    one evaluation per ask."""
    if not 1 <= sample_size <= population <= candidates:
        raise ValueError(f"need 1 <= sample_size <= population <= candidates, got {sample_size}, {population}, {candidates}")

    def init(key, params=None):
        cand = space.sample(key, candidates)
        top = jnp.argsort(-jnp.asarray(score(cand)), stable=True)[:population]
        return GEAState(jnp.zeros((population, *space.arch_shape), jnp.int32), jnp.full((population,), -jnp.inf),
                        cand[top], jnp.zeros((), jnp.int32))

    def ask(key, state, params=None):
        k_pick, k_mut = jax.random.split(key)
        parent = state.archs[tournament(k_pick, state.fitness, sample_size)]
        kids = jax.vmap(space.mutate, in_axes=(0, None))(jax.random.split(k_mut, children), parent)
        best_kid = kids[jnp.argmax(jnp.asarray(score(kids)))]
        pick = jnp.where(state.count < population, state.initial[jnp.minimum(state.count, population - 1)], best_kid)
        return pick[None], state

    def tell(key, archs, fitness, state, params=None):
        pop, fit = age_out(state.archs, state.fitness, state.count, archs[0], fitness[0])
        return state._replace(archs=pop, fitness=fit, count=state.count + 1), {}

    return Strategy(init, ask, tell, 1, jittable and space.jittable)
