"""Monte-Carlo tree search with UCT (Kocsis & Szepesvari 2006) over edge-by-edge decisions:
the root chooses edge 1's op, its children edge 2's, ..., depth 6 is a full NB201 cell.

Each query: *selection* from the root by UCB1, mean reward + c sqrt(ln N(parent) / N(child)),
while every child of the current node has been visited; *expansion* of one unvisited child
(chosen uniformly); *rollout*: the remaining edges uniformly at random; *evaluation* of the
cell; *backup* of the reward along the stored path (root .. expanded node). Rewards are
fitness times ``reward_scale`` (accuracy % x 0.01 keeps them in [0, 1], where c = sqrt(2) is
UCB1's constant). The tree is stored densely: all 1 + 5 + ... + 5^6 = 19,531 prefixes, so
the whole search is jittable. Any space with ``choices``: depth is the gene count and the
branching the largest gene's count; values beyond a gene's own count are never chosen. ``c``
and ``reward_scale`` are the default :class:`MCTSParams`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jnas.spaces import nb201
from jnas.spaces.base import Space, require
from jnas.strategies.base import Strategy, resolve


def _offsets(depth: int, branching: int) -> np.ndarray:
    return np.concatenate([[0], np.cumsum([branching**d for d in range(depth + 1)])])


class MCTSParams(NamedTuple):
    c: jnp.ndarray  # () UCB1 exploration constant
    reward_scale: jnp.ndarray  # () fitness -> reward factor


class MCTSState(NamedTuple):
    visits: jnp.ndarray  # (nodes,) int32 visit counts per prefix
    value: jnp.ndarray  # (nodes,) float32 summed rewards
    pending: jnp.ndarray  # () int32 depth of the node expanded by the last ask


def node_id(prefix: jnp.ndarray, d: jnp.ndarray, depth: int = nb201.NUM_EDGES, branching: int = nb201.NUM_OPS):
    """Dense id of the depth-``d`` prefix of ``prefix`` (the root is id 0)."""
    off = jnp.asarray(_offsets(depth, branching))
    digits = jnp.where(jnp.arange(depth) < d, prefix, 0)
    code = jnp.sum(digits * branching ** jnp.arange(depth - 1, -1, -1)) // branching ** (depth - d)
    return off[d] + code


def mcts(space: Space = nb201.SPACE, c: float = 2**0.5, reward_scale: float = 0.01) -> Strategy:
    """UCT over the genes of ``space`` in order (NB201: 6 choices of 5 ops)."""
    require(space, "choices", who="MCTS")
    depth, branching = len(space.choices), max(space.choices)
    counts = jnp.asarray(space.choices, jnp.int32)
    n_nodes = int(_offsets(depth, branching)[-1])
    if n_nodes > 2**26:
        raise ValueError(f"MCTS stores every prefix densely; {space.name} with choices {space.choices} "
                         f"has {n_nodes} prefixes (at most 2**26)")
    nid = lambda p, d: node_id(p, d, depth, branching)
    defaults = MCTSParams(jnp.asarray(c, jnp.float32), jnp.asarray(reward_scale, jnp.float32))

    def init(key, params=None):
        return MCTSState(jnp.zeros((n_nodes,), jnp.int32), jnp.zeros((n_nodes,)), jnp.zeros((), jnp.int32))

    def ucb_scores(state, prefix, d, c):
        kids = jax.vmap(lambda o: nid(prefix.at[d].set(o), d + 1))(jnp.arange(branching))
        n = state.visits[kids].astype(jnp.float32)
        parent = state.visits[nid(prefix, d)].astype(jnp.float32)
        mean = state.value[kids] / jnp.maximum(n, 1)
        ucb = jnp.where(n > 0, mean + c * jnp.sqrt(jnp.log(jnp.maximum(parent, 1)) / jnp.maximum(n, 1)), jnp.inf)
        return jnp.where(jnp.arange(branching) < counts[d], ucb, -jnp.inf), n

    def ask(key, state, params=None):
        p = resolve(params, defaults)
        k_exp, k_roll = jax.random.split(key)

        def select(carry, d):
            prefix, expanded_at = carry
            scores, n = ucb_scores(state, prefix, d, p.c)
            unvisited = (n == 0) & (jnp.arange(branching) < counts[d])
            # Expand: a uniformly chosen unvisited child; else follow the best UCB child.
            expand_pick = jax.random.categorical(jax.random.fold_in(k_exp, d), jnp.where(unvisited, 0.0, -jnp.inf))
            choose = jnp.where(jnp.any(unvisited), expand_pick, jnp.argmax(scores))
            rollout = jax.random.randint(jax.random.fold_in(k_roll, d), (), 0, counts[d])
            active = expanded_at < 0  # still in the tree
            op = jnp.where(active, choose, rollout)
            expanded_at = jnp.where(active & jnp.any(unvisited), d + 1, expanded_at)
            return (prefix.at[d].set(op), expanded_at), None

        (arch, expanded_at), _ = jax.lax.scan(select, (jnp.zeros((depth,), jnp.int32), jnp.asarray(-1)), jnp.arange(depth))
        stored = jnp.where(expanded_at < 0, depth, expanded_at)  # a fully expanded path stores the leaf
        return arch[None].astype(jnp.int32), state._replace(pending=stored.astype(jnp.int32))

    def tell(key, archs, fitness, state, params=None):
        r = fitness[0] * resolve(params, defaults).reward_scale
        ids = jax.vmap(lambda d: nid(archs[0], d))(jnp.arange(depth + 1))
        on_path = jnp.arange(depth + 1) <= state.pending
        visits = state.visits.at[ids].add(on_path.astype(jnp.int32))
        value = state.value.at[ids].add(jnp.where(on_path, r, 0.0))
        return MCTSState(visits, value, state.pending), {}

    return Strategy(init, ask, tell, 1, params=defaults)
