"""Search spaces as pure pytrees: integer op-index arrays plus a frozen space object with the
methods of :class:`jnas.spaces.base.Space`."""

from jnas.spaces import cnn_chain, darts, genetic, hybrid, nb201, tree
from jnas.spaces.base import Categorical, Space, require

# name -> a default instance; every entry is checked by tests/spaces/test_protocol.py.
SPACES: dict[str, Space] = {
    "nb201": nb201.SPACE,
    "darts": darts.SPACE,
    "genetic": genetic.GeneticSpace(),
    "tree": tree.TreeSpace(),
    "chain": cnn_chain.ChainSpace(),
    "hybrid": hybrid.SPACE,
}


def get(name: str) -> Space:
    """A registered space by name. Raises ValueError listing the valid names."""
    if name not in SPACES:
        raise ValueError(f"unknown space {name!r}; valid spaces are {sorted(SPACES)}")
    return SPACES[name]


__all__ = ["Categorical", "SPACES", "Space", "cnn_chain", "darts", "genetic", "get", "hybrid", "nb201", "require", "tree"]
