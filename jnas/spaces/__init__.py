"""Search spaces as pure pytrees: integer op-index arrays plus static space facts."""

from jnas.spaces import nb201

SPACES = {"nb201": nb201}

__all__ = ["nb201", "SPACES"]
