"""REINFORCE (Williams 1992) with a categorical policy per edge, as NAS-Bench-201 runs it:
logits theta (edges, ops), a = one op per edge, reward = fitness, moving-average baseline
b <- m b + (1 - m) r (m = 0.9), loss -(r - b) log pi(a), Adam (NB201: lr 0.001). Jittable.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jnas.spaces import nb201
from jnas.strategies.base import Strategy


class ReinforceState(NamedTuple):
    logits: jnp.ndarray  # (edges, ops) float32 policy parameters
    opt_state: optax.OptState
    baseline: jnp.ndarray  # () float32 moving average of rewards
    count: jnp.ndarray  # () int32


def reinforce(lr: float = 1e-3, momentum: float = 0.9, num_edges: int = nb201.NUM_EDGES,
              num_ops: int = nb201.NUM_OPS) -> Strategy:
    """REINFORCE over ``num_edges`` independent categorical choices of ``num_ops`` ops."""
    tx = optax.adam(lr)

    def init(key, params=None):
        logits = jnp.zeros((num_edges, num_ops))
        return ReinforceState(logits, tx.init(logits), jnp.zeros(()), jnp.zeros((), jnp.int32))

    def ask(key, state, params=None):
        return jax.random.categorical(key, state.logits)[None].astype(jnp.int32), state

    def tell(key, archs, fitness, state, params=None):
        r = fitness[0]
        # The first reward initialises the baseline (as NB201's exponential moving average does).
        baseline = jnp.where(state.count == 0, r, momentum * state.baseline + (1 - momentum) * r)

        def loss(logits):
            logp = jnp.take_along_axis(jax.nn.log_softmax(logits), archs[0][:, None], axis=1).sum()
            return -(r - baseline) * logp

        g = jax.grad(loss)(state.logits)
        upd, opt_state = tx.update(g, state.opt_state, state.logits)
        logits = optax.apply_updates(state.logits, upd)
        return ReinforceState(logits, opt_state, baseline, state.count + 1), {"baseline": baseline}

    return Strategy(init, ask, tell, 1)
