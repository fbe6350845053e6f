"""Which network realises an architecture of each space, at a chosen size (C, N)."""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax.numpy as jnp

from jnas.nets import NB201Network
from jnas.spaces import nb201

# space name -> (parse an architecture string, network factory (C, N, num_classes), default C, N)
SPACES: dict[str, tuple[Callable, Callable[..., nn.Module], int, int]] = {
    "nb201": (nb201.from_string, lambda C, N, num_classes: NB201Network(C=C, N=N, num_classes=num_classes, select="static"), 16, 5),
}


def realise(space: str, arch: str, num_classes: int, C: int | None = None, N: int | None = None) -> tuple[nn.Module, jnp.ndarray]:
    """``(network, architecture array)`` for ``arch`` written in ``space``'s string format.

    Raises:
      ValueError: unknown space, or a malformed architecture string (from the space's codec).
    """
    if space not in SPACES:
        raise ValueError(f"unknown space {space!r}; trainable spaces are {sorted(SPACES)}")
    parse, factory, c0, n0 = SPACES[space]
    return factory(C or c0, N or n0, num_classes), parse(arch)
