"""Which network realises an architecture of each space, at a chosen size (C, N)."""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax.numpy as jnp

from jnas.nets import DartsNetwork, NB201Network
from jnas.spaces import darts, nb201

# space name -> (parse an architecture string, network factory (C, N, num_classes, select), default C, N)
SPACES: dict[str, tuple[Callable, Callable[..., nn.Module], int, int]] = {
    "nb201": (nb201.from_string, lambda C, N, num_classes, select: NB201Network(C=C, N=N, num_classes=num_classes,
                                                                                 select=select), 16, 5),
    # DARTS: N is the total number of cells (layers); the genotype is always static.
    "darts": (darts.from_string, lambda C, N, num_classes, select: DartsNetwork(C=C, layers=N, num_classes=num_classes),
              36, 20),
}


def realise(space: str, arch: str, num_classes: int, C: int | None = None, N: int | None = None,
            select: str = "static") -> tuple[nn.Module, jnp.ndarray]:
    """``(network, architecture array)`` for ``arch`` written in ``space``'s string format.

    ``C`` is the first stage's width and ``N`` the depth: cells per stage for NB201, total
    cells (``layers``) for DARTS; None takes the benchmark size (16, 5) / (36, 20).

    ``select="static"`` compiles one training step per architecture (fastest steps: one
    long run); ``"mask"`` compiles once for every architecture (many short runs, as in
    multi-fidelity search). See :mod:`jnas.nets.nb201`.

    Raises:
      ValueError: unknown space, or a malformed architecture string (from the space's codec).
    """
    if space not in SPACES:
        raise ValueError(f"unknown space {space!r}; trainable spaces are {sorted(SPACES)}")
    parse, factory, c0, n0 = SPACES[space]
    return factory(C or c0, N or n0, num_classes, select), parse(arch)
