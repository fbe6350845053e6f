"""Random search (Bergstra & Bengio 2012; Li & Talwalkar 2019 as a NAS baseline): uniform
samples from the space. Jittable."""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax.numpy as jnp

from jnas.spaces import nb201
from jnas.strategies.base import Strategy


class RSState(NamedTuple):
    count: jnp.ndarray  # () int32, evaluations told


def random_search(sample: Callable = nb201.sample, batch: int = 1) -> Strategy:
    """``sample(key, n) -> (n, ...)`` draws architectures (default: NB201 cells)."""

    def init(key, params=None):
        return RSState(jnp.zeros((), jnp.int32))

    def ask(key, state, params=None):
        return sample(key, batch), state

    def tell(key, archs, fitness, state, params=None):
        return RSState(state.count + archs.shape[0]), {}

    return Strategy(init, ask, tell, batch)
