"""P-DARTS's search-space approximation and regularisation (Chen, Xie, Wu & Tian, ICCV
2019, arXiv:1904.12760), for any supernet whose alpha has op logits per edge.

* Progressive stages: each stage trains a deeper supernet from scratch; between stages
  :func:`prune_ops` keeps the ``keep`` strongest ops per edge (by the stage's alpha).
* Skip-connect dropout with a rate decaying inside each stage, ``p0 exp(-0.2 e)`` over
  epochs e after the warm-up, as in the P-DARTS code (:func:`drop_rate`).
* At most ``M`` skip-connects in the final cell (:func:`limit_skips`): while the derived
  cell has more, keep the M skip edges with the largest skip weight, forbid skip on the
  others, and derive again.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from jnas.oneshot.mixing import op_weights


def prune_ops(logits: Float[Array, "e o"], op_mask: Bool[Array, "e o"], keep: int) -> Bool[Array, "e o"]:
    """Keep the ``keep`` largest allowed logits per edge (ties: lower op index first)."""
    if not 1 <= keep <= logits.shape[-1]:
        raise ValueError(f"keep must be in 1..{logits.shape[-1]}, got {keep}")
    masked = np.where(np.asarray(op_mask), np.asarray(logits, np.float64), -np.inf)
    order = np.argsort(-masked, axis=-1, kind="stable")[:, :keep]
    new = np.zeros(masked.shape, bool)
    np.put_along_axis(new, order, True, axis=-1)
    return jnp.asarray(new & np.asarray(op_mask))


def drop_rate(initial: float, epoch: int, warmup_epochs: int = 0, decay: float = 0.2) -> float:
    """Skip-connect dropout rate at ``epoch``: ``initial * exp(-decay (epoch - warmup))``."""
    return float(initial * math.exp(-decay * max(epoch - warmup_epochs, 0)))


def limit_skips(logits: Float[Array, "e o"], op_mask: Bool[Array, "e o"], max_skips: int, skip: int) -> Int[Array, "e"]:
    """Argmax op per edge with at most ``max_skips`` edges choosing op ``skip``."""
    mask = np.array(op_mask, bool)
    lg = np.asarray(logits, np.float64)
    while True:
        arch = np.argmax(np.where(mask, lg, -np.inf), axis=-1)
        skips = np.flatnonzero(arch == skip)
        if len(skips) <= max_skips:
            return jnp.asarray(arch, jnp.int32)
        w = np.asarray(op_weights(jnp.asarray(lg), jnp.asarray(mask)))
        keep = skips[np.argsort(-w[skips, skip], kind="stable")[:max_skips]]
        for e in set(skips.tolist()) - set(keep.tolist()):
            mask[e, skip] = False
            if not mask[e].any():
                raise ValueError(f"edge {e} has no op left once skip-connect is forbidden")
