"""One fixed training recipe for every segmentation network (found, random or baseline):
Adam with cosine decay, Dice + binary cross-entropy, random flips, a fixed number of epochs;
Dice and IoU measured on the held-out split at one evaluation resolution.

A network whose input resolution differs from the evaluation resolution (the hybrid space's
elastic resolution) is trained on images and masks at its own resolution; its logits are
resized (bilinear) to the evaluation resolution before thresholding, so every network is
scored on the same masks.
"""

from __future__ import annotations

import dataclasses
import time
from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import PRNGKeyArray
from tqdm.auto import tqdm

from jnas.seg.data import SegData
from jnas.seg.losses import bce, dice_iou, dice_loss, entropy
from jnas.train.optim import adam_cosine


@dataclasses.dataclass(frozen=True)
class SegTrainConfig:
    """The recipe (defaults: a few minutes per small network on a 2-core CPU at 64x64)."""

    epochs: int = 12
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 0.0
    entropy: float = 0.0  # weight of the entropy regulariser (jnas.seg.losses.entropy)
    flip: bool = True
    eval_batch_size: int = 50

    def __post_init__(self):
        for name in ("epochs", "batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"SegTrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"SegTrainConfig.lr must be > 0, got {self.lr}")


def _flip(key, x, y):
    kh, kv = jax.random.split(key)
    fh = jax.random.bernoulli(kh, 0.5, (x.shape[0], 1, 1))
    fv = jax.random.bernoulli(kv, 0.5, (x.shape[0], 1, 1))
    x = jnp.where(fh[..., None], x[:, :, ::-1], x)
    y = jnp.where(fh, y[:, :, ::-1], y)
    x = jnp.where(fv[..., None], x[:, ::-1], x)
    y = jnp.where(fv, y[:, ::-1], y)
    return x, y


def loss_terms(logits, y, entropy_weight: float = 0.0):
    d, b = dice_loss(logits, y), bce(logits, y)
    total = d + b + (entropy_weight * entropy(logits) if entropy_weight else 0.0)
    return total, {"dice_loss": d, "bce": b}


def predict(net: nn.Module, params, x: np.ndarray, arch=None, batch_size: int = 50, resolution: int | None = None) -> np.ndarray:
    """Foreground probabilities ``(n, r, r)`` at ``resolution`` (default: the input's)."""
    out = []
    for i in range(0, len(x), batch_size):
        logits = _forward(net, params, jnp.asarray(x[i:i + batch_size]), arch)
        if resolution is not None and resolution != logits.shape[1]:
            logits = jax.image.resize(logits, (logits.shape[0], resolution, resolution, logits.shape[-1]), "linear")
        out.append(np.asarray(jax.nn.sigmoid(logits[..., 0])))
    return np.concatenate(out)


@partial(jax.jit, static_argnums=0)
def _forward(net, params, x, arch):
    return net.apply({"params": params}, x, arch)



def fit(net: nn.Module, train: SegData, test: SegData, test_masks: np.ndarray, config: SegTrainConfig,
        key: PRNGKeyArray, arch=None, progress: bool = True, desc: str = "train") -> dict:
    """Train ``net`` (``net.apply({"params": p}, x, arch)``) from its own initialisation.

    Args:
      train, test: splits at the network's input resolution.
      test_masks: ``(n_test, R, R)`` masks at the evaluation resolution ``R``.
      arch: passed to the network (the supernet's architecture array; None for stand-alone
        and baseline networks).
    Returns:
      ``{"dice", "iou", "dice_per_image", "train_loss", "steps", "compile_s", "train_s", "params"}``.
    """
    if len(train.x) < config.batch_size:
        raise ValueError(f"the training split holds {len(train.x)} images, fewer than one batch of {config.batch_size}")
    k_init, k_run = jax.random.split(key)
    params = net.init(k_init, jnp.asarray(train.x[:1]), arch)["params"]
    steps_per_epoch = len(train.x) // config.batch_size
    tx = adam_cosine(config.lr, config.epochs * steps_per_epoch, weight_decay=config.weight_decay)
    opt = tx.init(params)

    @jax.jit
    def step(params, opt, x, y, k):
        if config.flip:
            x, y = _flip(k, x, y)

        def loss(p):
            return loss_terms(net.apply({"params": p}, x, arch), y, config.entropy)[0]

        value, grads = jax.value_and_grad(loss)(params)
        updates, opt = tx.update(grads, opt, params)
        return optax.apply_updates(params, updates), opt, value

    xs, ys = jnp.asarray(train.x), jnp.asarray(train.y)
    t0 = time.perf_counter()
    compiled = step.lower(params, opt, xs[:config.batch_size], ys[:config.batch_size], k_run).compile()
    compile_s = time.perf_counter() - t0
    losses = []
    t0 = time.perf_counter()
    with tqdm(total=config.epochs * steps_per_epoch, desc=desc, disable=not progress, leave=False) as bar:
        for epoch in range(config.epochs):
            k_epoch = jax.random.fold_in(k_run, epoch)
            order = jax.random.permutation(k_epoch, len(train.x))
            for s in range(steps_per_epoch):
                idx = order[s * config.batch_size:(s + 1) * config.batch_size]
                params, opt, value = compiled(params, opt, xs[idx], ys[idx], jax.random.fold_in(k_epoch, s + 1))
                bar.update()
            losses.append(float(value))
    train_s = time.perf_counter() - t0
    if not np.isfinite(losses[-1]):
        raise FloatingPointError(f"training diverged: loss {losses[-1]} after {config.epochs} epochs")
    prob = predict(net, params, test.x, arch, config.eval_batch_size, test_masks.shape[1])
    dice, iou = dice_iou(prob >= 0.5, test_masks)
    return {"dice": float(dice.mean()), "iou": float(iou.mean()), "dice_per_image": dice.tolist(),
            "train_loss": losses[-1], "steps": config.epochs * steps_per_epoch, "compile_s": compile_s,
            "train_s": train_s, "params_tree": params}
