"""Genetic-CNN genetic algorithm (Xie & Yuille, ICCV 2017), as Algorithm 5 of the survey (docs/references.md) gives it:

* initial population: N random genomes (Bernoulli(0.5) bits, or uniform values);
* selection: N parents by roulette wheel, P(i) = f_i / sum f (fitness shifted to be >= 0);
* crossover: each consecutive pair of parents, with probability p_C, swaps one segment of
  r_C consecutive genes at a uniform position (the survey's two-cut-point crossover of
  radius r_C);
* mutation: each child, with probability p_M, changes a segment of r_M consecutive genes
  (a bit flip for binary genomes; another value for categorical ones, e.g. NB201 ops);
* survival: children join the population and the best N survive (elitist).

Survey defaults (MNIST and CIFAR-10 designs): N = 7, T = 10 generations, r_C = 4, r_M = 2,
p_C = 0.7, p_M = 0.2. Jittable; N children per ask. Any space with ``choices`` (genes with
their own value counts: Genetic-CNN's bits, NB201's ops, GNAS's parents); ``p_c`` and ``p_m``
are the default :class:`GAParams`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jnas.spaces import genetic
from jnas.spaces.base import Space, require
from jnas.strategies.base import Strategy, resolve


def roulette(key, fitness: jnp.ndarray, n: int) -> jnp.ndarray:
    """n indices drawn with replacement with P(i) proportional to fitness - min(fitness)
    (+ a tiny floor so an all-equal population is uniform)."""
    w = fitness - jnp.min(fitness) + 1e-12
    return jax.random.choice(key, fitness.shape[0], (n,), p=w / jnp.sum(w))


def crossover(key, a: jnp.ndarray, b: jnp.ndarray, radius: int, prob: float) -> tuple[jnp.ndarray, jnp.ndarray]:
    """With probability ``prob`` swap genes [s, s + radius) of ``a`` and ``b`` (s uniform)."""
    k_do, k_pos = jax.random.split(key)
    L = a.shape[-1]
    s = jax.random.randint(k_pos, (), 0, L - radius + 1)
    idx = jnp.arange(L)
    seg = (idx >= s) & (idx < s + radius) & jax.random.bernoulli(k_do, prob)
    return jnp.where(seg, b, a), jnp.where(seg, a, b)


def mutation(key, g: jnp.ndarray, radius: int, prob: float, num_values=2) -> jnp.ndarray:
    """With probability ``prob`` change genes [s, s + radius) to a different value each
    (``num_values``: one count, or one per gene; a gene with one value stays)."""
    k_do, k_pos, k_val = jax.random.split(key, 3)
    L = g.shape[-1]
    s = jax.random.randint(k_pos, (), 0, L - radius + 1)
    idx = jnp.arange(L)
    seg = (idx >= s) & (idx < s + radius) & jax.random.bernoulli(k_do, prob)
    n = jnp.broadcast_to(jnp.asarray(num_values, jnp.int32), (L,))
    shift = jax.random.randint(k_val, (L,), 1, jnp.maximum(n, 2))  # never 0: the value changes
    return jnp.where(seg & (n > 1), (g + shift) % n, g)


class GAParams(NamedTuple):
    p_c: jnp.ndarray  # () crossover probability per pair
    p_m: jnp.ndarray  # () mutation probability per child


class GAState(NamedTuple):
    genomes: jnp.ndarray  # (N, L) int32 population
    fitness: jnp.ndarray  # (N,) float32
    count: jnp.ndarray  # () int32, generations told


def genetic_cnn(space: Space = genetic.GeneticSpace(), population: int = 7, r_c: int = 4, r_m: int = 2,
                p_c: float = 0.7, p_m: float = 0.2) -> Strategy:
    """GA over the genes of ``space`` (``choices``); the first population is ``space.sample``."""
    require(space, "choices", who="the Genetic-CNN GA")
    length = len(space.choices)
    num_values = jnp.asarray(space.choices, jnp.int32)
    if not (1 <= r_c <= length and 1 <= r_m <= length):
        raise ValueError(f"radii must be in 1..{length}, got r_c={r_c}, r_m={r_m}")
    if population % 2:
        pairs = population + 1  # an odd population pairs its last parent with a fresh draw
    else:
        pairs = population
    defaults = GAParams(jnp.asarray(p_c, jnp.float32), jnp.asarray(p_m, jnp.float32))

    def init(key, params=None):
        return GAState(jnp.zeros((population, length), jnp.int32), jnp.full((population,), -jnp.inf),
                       jnp.zeros((), jnp.int32))

    def ask(key, state, params=None):
        p = resolve(params, defaults)
        k_init, k_sel, k_x, k_m = jax.random.split(key, 4)
        fit = jnp.where(jnp.isfinite(state.fitness), state.fitness, 0.0)
        parents = state.genomes[roulette(k_sel, fit, pairs)].reshape(pairs // 2, 2, length)
        ca, cb = jax.vmap(lambda k, q: crossover(k, q[0], q[1], r_c, p.p_c))(jax.random.split(k_x, pairs // 2), parents)
        children = jnp.concatenate([ca, cb])[:population]
        children = jax.vmap(lambda k, g: mutation(k, g, r_m, p.p_m, num_values))(jax.random.split(k_m, population), children)
        first = space.sample(k_init, population).reshape(population, length).astype(jnp.int32)
        return jnp.where(state.count == 0, first, children), state

    def tell(key, genomes, fitness, state, params=None):
        G = jnp.concatenate([state.genomes, genomes])
        F = jnp.concatenate([state.fitness, fitness])
        keep = jnp.argsort(-F, stable=True)[:population]
        return GAState(G[keep], F[keep], state.count + 1), {"best": F[keep[0]]}

    return Strategy(init, ask, tell, population, params=defaults)
