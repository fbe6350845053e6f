"""Which network realises an architecture of each space, at a chosen size (C, N)."""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax.numpy as jnp

from jnas.nets import DartsNetwork, NB201Network
from jnas.nets.chain import ChainNetwork
from jnas.nets.genetic import GeneticNetwork
from jnas.spaces import cnn_chain, darts, genetic, nb201


def _nb201(arch: str, num_classes: int, C, N, select):
    return NB201Network(C=C or 16, N=N or 5, num_classes=num_classes, select=select), nb201.from_string(arch)


def _darts(arch: str, num_classes: int, C, N, select):  # N = total cells (layers); always static
    return DartsNetwork(C=C or 36, layers=N or 20, num_classes=num_classes), darts.from_string(arch)


def _genetic(arch: str, num_classes: int, C, N, select):  # stages come from the code string; always static
    space, genome = genetic.parse(arch)
    return GeneticNetwork(stages=space.stages, C=C or 8, num_classes=num_classes), genome


def _chain(arch: str, num_classes: int, C, N, select):  # the chain string fixes every layer; always static
    chain = cnn_chain.from_string(arch)
    return ChainNetwork(num_classes=num_classes), cnn_chain.encode(chain, len(chain))


# space name -> builder(arch string, num_classes, C, N, select) -> (network, architecture array)
SPACES: dict[str, Callable] = {"nb201": _nb201, "darts": _darts, "genetic": _genetic, "chain": _chain}


def realise(space: str, arch: str, num_classes: int, C: int | None = None, N: int | None = None,
            select: str = "static") -> tuple[nn.Module, jnp.ndarray]:
    """``(network, architecture array)`` for ``arch`` written in ``space``'s string format.

    ``C`` is the first stage's width and ``N`` the depth: cells per stage for NB201, total
    cells (``layers``) for DARTS, unused for Genetic-CNN and psoCNN chains (their strings fix the layers);
    None takes the benchmark size: NB201 (16, 5), DARTS (36, 20), Genetic-CNN C=8.

    ``select="static"`` compiles one training step per architecture (fastest steps: one
    long run); ``"mask"`` (NB201 only) compiles once for every architecture (many short
    runs, as in multi-fidelity search). See :mod:`jnas.nets.nb201`.

    Raises:
      ValueError: unknown space, or a malformed architecture string (from the space's codec).
    """
    if space not in SPACES:
        raise ValueError(f"unknown space {space!r}; trainable spaces are {sorted(SPACES)}")
    return SPACES[space](arch, num_classes, C, N, select)
