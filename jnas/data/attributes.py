"""Multi-attribute tasks derived from class labels, for multi-attribute NAS (GNAS).

Each attribute is a named function of the class label with its own number of classes:
MNIST gives the digit, its parity and whether it is at least 5; CIFAR-10 gives the class
and animal vs vehicle. The attributes are correlated by construction (parity and >= 5 are
functions of the digit), which is what a tree-structured network can exploit by sharing
its lower layers.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np


class Attribute(NamedTuple):
    name: str
    num_classes: int
    of_label: Callable[[np.ndarray], np.ndarray]  # class labels (n,) -> attribute labels (n,)


_CIFAR10_ANIMALS = np.array([0, 0, 1, 1, 1, 1, 1, 1, 0, 0])  # bird, cat, deer, dog, frog, horse

ATTRIBUTES: dict[str, tuple[Attribute, ...]] = {
    "mnist": (Attribute("digit", 10, lambda y: y), Attribute("odd", 2, lambda y: y % 2),
              Attribute("ge5", 2, lambda y: (y >= 5).astype(y.dtype))),
    "cifar10": (Attribute("class", 10, lambda y: y), Attribute("animal", 2, lambda y: _CIFAR10_ANIMALS[y])),
}


def attributes(dataset: str, labels) -> tuple[tuple[Attribute, ...], np.ndarray]:
    """The dataset's attributes and the ``(n, N)`` int32 attribute labels of ``labels``.

    Raises:
      ValueError: a dataset without attributes (lists the ones that have them).
    """
    if dataset not in ATTRIBUTES:
        raise ValueError(f"no multi-attribute task for {dataset!r}; datasets with one are {sorted(ATTRIBUTES)}")
    attrs = ATTRIBUTES[dataset]
    y = np.asarray(labels, np.int32)
    return attrs, np.stack([a.of_label(y) for a in attrs], 1).astype(np.int32)
