"""Local search with best improvement and restarts (White, Nolen, Ravi & Savani, UAI 2021,
"Exploring the loss landscape in NAS"): evaluate a random start, then all of its 1-edit
neighbours one query at a time; move to the best neighbour if it beats the current cell,
else restart from a new random cell. Jittable, one query per ask (repeat visits are
queried again and count against the budget). Needs a space with ``neighbours``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp

from jnas.spaces import nb201
from jnas.spaces.base import Space, require
from jnas.strategies.base import Strategy


class LSState(NamedTuple):
    current: jnp.ndarray  # (...) int32 current architecture
    current_fit: jnp.ndarray  # () float32, -inf before the start is evaluated
    best_nb: jnp.ndarray  # (...) int32 best neighbour seen this round
    best_nb_fit: jnp.ndarray  # () float32
    i: jnp.ndarray  # () int32, -1: the next ask is a fresh start; else the neighbour index


def local_search(space: Space = nb201.SPACE) -> Strategy:
    """``space.neighbours(arch) -> (K, ...)`` lists the 1-edit neighbourhood (NB201: 24 cells)."""
    require(space, "neighbours", who="local search")
    neighbours, arch_shape = space.neighbours, space.arch_shape

    def init(key, params=None):
        z = jnp.zeros(arch_shape, jnp.int32)
        return LSState(z, -jnp.inf, z, -jnp.inf, jnp.asarray(-1, jnp.int32))

    def ask(key, state, params=None):
        nb = neighbours(state.current)
        arch = jnp.where(state.i < 0, space.sample(key, 1)[0], nb[jnp.clip(state.i, 0, nb.shape[0] - 1)])
        return arch[None], state
    def tell(key, archs, fitness, state, params=None):
        a, f = archs[0], fitness[0]
        k = neighbours(state.current).shape[0]
        started = state.i < 0
        better = (f > state.best_nb_fit) & ~started
        best_nb = jnp.where(better, a, state.best_nb)
        best_nb_fit = jnp.where(better, f, state.best_nb_fit)
        round_done = ~started & (state.i == k - 1)
        move = round_done & (best_nb_fit > state.current_fit)
        restart = round_done & ~move
        current = jnp.where(started, a, jnp.where(move, best_nb, state.current))
        current_fit = jnp.where(started, f, jnp.where(move, best_nb_fit, state.current_fit))
        i = jnp.where(started | move, 0, jnp.where(restart, -1, state.i + 1))
        reset = started | round_done
        return LSState(current, current_fit, jnp.where(reset, current, best_nb),
                       jnp.where(reset, -jnp.inf, best_nb_fit), i.astype(jnp.int32)), {}

    return Strategy(init, ask, tell, 1)
