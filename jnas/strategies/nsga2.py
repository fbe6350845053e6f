"""NSGA-II (Deb, Pratap, Agarwal & Meyarivan, IEEE TEC 2002; Algorithm 9 of the survey (docs/references.md)):
fast non-dominated sorting, crowding distance, binary tournament on (rank, crowding),
the space's crossover (uniform for categorical genomes) and mutation, elitist (mu + lambda) survival. All objectives are
maximised (negate a column to minimise it). Jittable; ``population`` offspring per ask.

:func:`hypervolume` measures a front against a reference point (exact, by slicing).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jnas.spaces import nb201
from jnas.spaces.base import Space
from jnas.strategies.base import Strategy


def dominates(F: jnp.ndarray) -> jnp.ndarray:
    """``D[i, j]``: row i dominates row j (>= in every objective, > in at least one)."""
    ge = jnp.all(F[:, None, :] >= F[None, :, :], axis=-1)
    gt = jnp.any(F[:, None, :] > F[None, :, :], axis=-1)
    return ge & gt


def nondominated_rank(F: jnp.ndarray) -> jnp.ndarray:
    """Front index of each row (0 = non-dominated), by peeling fronts; ``(n,)`` int32."""
    n = F.shape[0]
    D = dominates(F)

    def body(k, carry):
        rank, remaining = carry
        dominated = jnp.any(D & remaining[:, None], axis=0)
        front = remaining & ~dominated
        return jnp.where(front, k, rank), remaining & ~front

    rank, _ = jax.lax.fori_loop(0, n, body, (jnp.full((n,), n, jnp.int32), jnp.ones((n,), bool)))
    return rank


def crowding_distance(F: jnp.ndarray, rank: jnp.ndarray) -> jnp.ndarray:
    """Crowding distance within each front: per objective, the gap between a point's two
    neighbours in that front over the front's range; front extremes get infinity."""
    n, m = F.shape
    dist = jnp.zeros((n,))
    same = rank[:, None] == rank[None, :]
    for k in range(m):
        f = F[:, k]
        order = jnp.lexsort((f, rank))  # by front, then by objective value
        fs, rs = f[order], rank[order]
        prev_ok = jnp.concatenate([jnp.array([False]), rs[1:] == rs[:-1]])
        next_ok = jnp.concatenate([rs[:-1] == rs[1:], jnp.array([False])])
        fmax = jnp.max(jnp.where(same, f[None, :], -jnp.inf), axis=1)[order]
        fmin = jnp.min(jnp.where(same, f[None, :], jnp.inf), axis=1)[order]
        span = jnp.where(fmax > fmin, fmax - fmin, 1.0)
        gap = (jnp.roll(fs, -1) - jnp.roll(fs, 1)) / span
        d_sorted = jnp.where(prev_ok & next_ok, gap, jnp.inf)
        dist = dist.at[order].add(d_sorted)
    return dist


def survivors(F: jnp.ndarray, k: int) -> jnp.ndarray:
    """Indices of the k rows NSGA-II keeps: by front, then by larger crowding distance."""
    rank = nondominated_rank(F)
    crowd = crowding_distance(F, rank)
    return jnp.lexsort((-crowd, rank))[:k]


class NSGA2State(NamedTuple):
    archs: jnp.ndarray  # (N, ...) int32 parent population
    fitness: jnp.ndarray  # (N, M) float32
    count: jnp.ndarray  # () int32, generations told


def nsga2(space: Space = nb201.SPACE, population: int = 20, num_objectives: int = 2,
          crossover_rate: float = 0.9) -> Strategy:
    """NSGA-II over ``space`` (``sample``, ``mutate``, ``crossover``, jittable); fitness passed
    to ``tell`` is ``(N, M)``."""
    if not space.jittable:
        raise ValueError(f"NSGA-II runs under jit; the {space.name} space is host-side")
    arch_shape = space.arch_shape

    def init(key, params=None):
        return NSGA2State(jnp.zeros((population, *arch_shape), jnp.int32),
                          jnp.full((population, num_objectives), -jnp.inf), jnp.zeros((), jnp.int32))

    def ask(key, state, params=None):
        k_rand, k_t, k_x, k_m, k_c = jax.random.split(key, 5)
        rank = nondominated_rank(state.fitness)
        crowd = crowding_distance(state.fitness, rank)
        pairs = jax.random.randint(k_t, (2 * population, 2), 0, population)
        a, b = pairs[:, 0], pairs[:, 1]
        a_wins = (rank[a] < rank[b]) | ((rank[a] == rank[b]) & (crowd[a] >= crowd[b]))
        parents = state.archs[jnp.where(a_wins, a, b)].reshape(population, 2, *arch_shape)
        crossed = jax.vmap(space.crossover)(jax.random.split(k_x, population), parents[:, 0], parents[:, 1])
        do_cross = jax.random.bernoulli(k_c, crossover_rate, (population,) + (1,) * len(arch_shape))
        child = jnp.where(do_cross, crossed, parents[:, 0])
        child = jax.vmap(space.mutate)(jax.random.split(k_m, population), child)
        first = space.sample(k_rand, population).reshape(population, *arch_shape)
        return jnp.where(state.count == 0, first, child), state

    def tell(key, archs, fitness, state, params=None):
        A = jnp.concatenate([state.archs, archs])
        F = jnp.concatenate([state.fitness, fitness.reshape(population, num_objectives)])
        keep = survivors(F, population)
        return NSGA2State(A[keep], F[keep], state.count + 1), {}

    return Strategy(init, ask, tell, population)


def pareto_front(F: np.ndarray) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``F`` (maximisation), host-side.

    Sweeps the rows by decreasing sum (a dominated row never comes before all its
    dominators) and keeps a row unless a kept row dominates it (equal rows both stay, as
    neither dominates the other): O(n x front size), so it handles a whole benchmark table."""
    F = np.asarray(F, np.float64)
    keep = np.zeros(len(F), bool)
    front: list[np.ndarray] = []
    for i in np.argsort(-F.sum(1), kind="stable"):
        if not any(np.all(f >= F[i]) and np.any(f > F[i]) for f in front):
            keep[i] = True
            front.append(F[i])
    return keep


def hypervolume(F: np.ndarray, ref: np.ndarray) -> float:
    """Volume dominated by the rows of ``F`` and bounded below by ``ref`` (maximisation).

    Exact, by slicing along the last objective (fine for the fronts of NAS searches).
    Rows not strictly better than ``ref`` in every objective contribute nothing.
    """
    F, ref = np.asarray(F, np.float64), np.asarray(ref, np.float64)
    F = F[np.all(F > ref, axis=1)]
    if len(F) == 0:
        return 0.0
    if F.shape[1] == 1:
        return float(F[:, 0].max() - ref[0])
    F = F[np.argsort(-F[:, -1])]
    vol, levels = 0.0, F[:, -1]
    for i in range(len(F)):
        lower = levels[i + 1] if i + 1 < len(F) else ref[-1]
        if levels[i] > lower:
            vol += (levels[i] - lower) * hypervolume(F[: i + 1, :-1], ref[:-1])
    return float(vol)
