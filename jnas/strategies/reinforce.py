"""REINFORCE (Williams 1992) with a categorical policy per gene, as NAS-Bench-201 runs it:
logits theta (genes, values), a = one value per gene, reward = fitness, moving-average
baseline b <- m b + (1 - m) r (m = 0.9), loss -(r - b) log pi(a), Adam (NB201: lr 0.001).
Jittable. Needs a space with ``choices`` (independent categorical genes); values beyond a
gene's own count are masked out of its softmax.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jnas.spaces import nb201
from jnas.spaces.base import Space, require
from jnas.strategies.base import Strategy, resolve


class ReinforceParams(NamedTuple):
    lr: jnp.ndarray  # () Adam step size
    momentum: jnp.ndarray  # () baseline decay m


class ReinforceState(NamedTuple):
    logits: jnp.ndarray  # (genes, max choices) float32 policy parameters
    opt_state: optax.OptState
    baseline: jnp.ndarray  # () float32 moving average of rewards
    count: jnp.ndarray  # () int32


def reinforce(space: Space = nb201.SPACE, lr: float = 1e-3, momentum: float = 0.9) -> Strategy:
    """REINFORCE over ``space.choices``; ``lr`` and ``momentum`` are the default params."""
    require(space, "choices", who="REINFORCE")
    choices = np.asarray(space.choices)
    valid = jnp.asarray(np.arange(choices.max())[None, :] < choices[:, None])  # (genes, max choices)
    adam = optax.scale_by_adam()  # the step size is applied from params, so it can be vmapped
    defaults = ReinforceParams(jnp.asarray(lr, jnp.float32), jnp.asarray(momentum, jnp.float32))

    def policy(logits):
        return jnp.where(valid, logits, -jnp.inf)

    def init(key, params=None):
        logits = jnp.zeros(valid.shape)
        return ReinforceState(logits, adam.init(logits), jnp.zeros(()), jnp.zeros((), jnp.int32))

    def ask(key, state, params=None):
        return jax.random.categorical(key, policy(state.logits))[None].astype(jnp.int32), state

    def tell(key, archs, fitness, state, params=None):
        p = resolve(params, defaults)
        r = fitness[0]
        # The first reward initialises the baseline (as NB201's exponential moving average does).
        baseline = jnp.where(state.count == 0, r, p.momentum * state.baseline + (1 - p.momentum) * r)

        def loss(logits):
            logp = jnp.take_along_axis(jax.nn.log_softmax(policy(logits)), archs[0][:, None], axis=1).sum()
            return -(r - baseline) * logp

        g = jax.grad(loss)(state.logits)
        upd, opt_state = adam.update(g, state.opt_state, state.logits)
        logits = state.logits - p.lr * upd
        return ReinforceState(logits, opt_state, baseline, state.count + 1), {"baseline": baseline}

    return Strategy(init, ask, tell, 1, params=defaults)
