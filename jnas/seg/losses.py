"""Segmentation losses and metrics for binary masks, from logits ``(b, h, w, 1)`` and masks
``(b, h, w)``.

The application note (docs/segmentation.md, "Losses") asks for four terms; jnas reads them as:

* **Dice** (soft Dice loss, Milletari et al. 2016): ``1 - (2 sum(p y) + 1) / (sum p + sum y + 1)``
  per image, averaged; with **binary cross-entropy** it is the training loss.
* **Entropy**: the mean per-pixel binary entropy of the predicted probabilities, a
  confidence regulariser (weight ``entropy`` in :class:`jnas.seg.train.SegTrainConfig`, 0 by default).
* **Complexity**: ``max(0, log(flops / budget))``, a hinge on FLOPs above a device budget:
  a search-time term (:mod:`jnas.seg.search`), never trained through.
* **Transformer term**: in zero-shot search no Transformer is trained, so the note's
  Transformer loss becomes the Transformer-aware proxy (TF-TAS's DSS, :mod:`jnas.seg.proxies`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float


def _prob(logits):
    return jax.nn.sigmoid(logits[..., 0])


def dice_loss(logits: Float[Array, "b h w 1"], y: Float[Array, "b h w"], smooth: float = 1.0) -> Array:
    p = _prob(logits)
    inter = (p * y).sum((1, 2))
    return jnp.mean(1.0 - (2.0 * inter + smooth) / (p.sum((1, 2)) + y.sum((1, 2)) + smooth))


def bce(logits: Float[Array, "b h w 1"], y: Float[Array, "b h w"]) -> Array:
    return optax.sigmoid_binary_cross_entropy(logits[..., 0], y).mean()


def entropy(logits: Float[Array, "b h w 1"]) -> Array:
    """Mean binary entropy (nats) of the per-pixel predictions."""
    z = logits[..., 0]
    p = jax.nn.sigmoid(z)
    return jnp.mean(optax.sigmoid_binary_cross_entropy(z, p))


def complexity(flops: float, budget: float) -> float:
    """``max(0, log(flops / budget))``: zero within the budget."""
    if budget <= 0:
        raise ValueError(f"FLOPs budget must be > 0, got {budget}")
    return float(max(0.0, np.log(flops / budget)))


def dice_iou(pred: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-image Dice and IoU of binary masks ``(n, h, w)`` (an image where both masks are
    empty scores 1: nothing to find, nothing found)."""
    pred, y = np.asarray(pred, bool), np.asarray(y, bool)
    inter = (pred & y).sum((1, 2)).astype(np.float64)
    sp, sy = pred.sum((1, 2)), y.sum((1, 2))
    union = (pred | y).sum((1, 2))
    empty = (sp + sy) == 0
    dice = np.where(empty, 1.0, 2 * inter / np.maximum(sp + sy, 1))
    iou = np.where(empty, 1.0, inter / np.maximum(union, 1))
    return dice, iou
