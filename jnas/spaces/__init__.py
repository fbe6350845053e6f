"""Search spaces as pure pytrees: integer op-index arrays plus static space facts."""

from jnas.spaces import darts, nb201

SPACES = {"nb201": nb201, "darts": darts}

__all__ = ["darts", "nb201", "SPACES"]
