"""Random search (Bergstra & Bengio 2012; Li & Talwalkar 2019 as a NAS baseline): ``batch``
uniform samples from the space per ask. Jittable when the space is; any :class:`jnas.spaces.Space`."""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp

from jnas.spaces import nb201
from jnas.spaces.base import Space
from jnas.strategies.base import Strategy


class RSState(NamedTuple):
    count: jnp.ndarray  # () int32, evaluations told


def random_search(space: Space = nb201.SPACE, batch: int = 1) -> Strategy:
    """``batch`` architectures per ask from ``space.sample``; needs only the base protocol."""
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")

    def init(key, params=None):
        return RSState(jnp.zeros((), jnp.int32))

    def ask(key, state, params=None):
        return jnp.asarray(space.sample(key, batch)), state

    def tell(key, archs, fitness, state, params=None):
        return RSState(state.count + archs.shape[0]), {}

    return Strategy(init, ask, tell, batch, jittable=space.jittable)
