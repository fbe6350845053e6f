"""The one weight optimiser jnas trains networks with: optax SGD with (Nesterov) momentum,
coupled weight decay and a per-step cosine learning rate, optionally after gradient clipping.

NAS-Bench-201 trains every cell with lr 0.1 -> 0 (cosine), Nesterov momentum 0.9 and weight
decay 5e-4 on all parameters; DARTS searches with lr 0.025 -> 0.001, momentum 0.9, weight
decay 3e-4 and clipping at 5. Decay is added to the gradient before momentum, as
``torch.optim.SGD(weight_decay=...)`` does.
"""

from __future__ import annotations

import optax


def cosine_schedule(lr: float, total_steps: int, lr_min: float = 0.0) -> optax.Schedule:
    """lr -> lr_min over ``total_steps`` steps (cosine); the schedule every jnas optimiser uses."""
    if lr <= 0 or total_steps < 1:
        raise ValueError(f"need lr > 0 and total_steps >= 1, got lr={lr}, total_steps={total_steps}")
    return optax.cosine_decay_schedule(lr, total_steps, alpha=lr_min / lr)


def sgd_cosine(
    lr: float, total_steps: int, *, momentum: float = 0.9, nesterov: bool = True, weight_decay: float = 5e-4,
    lr_min: float = 0.0, grad_clip: float | None = None,
) -> optax.GradientTransformation:
    """SGD with momentum and cosine decay from ``lr`` to ``lr_min`` over ``total_steps`` steps."""
    schedule = cosine_schedule(lr, total_steps, lr_min)
    parts = [optax.clip_by_global_norm(grad_clip)] if grad_clip else []
    parts += [optax.add_decayed_weights(weight_decay), optax.sgd(schedule, momentum=momentum, nesterov=nesterov)]
    return optax.chain(*parts)


def cosine_lr(lr: float, total_steps: int, step: int, lr_min: float = 0.0) -> float:
    """The learning rate :func:`sgd_cosine` uses at ``step`` (for logging)."""
    return float(cosine_schedule(lr, total_steps, lr_min)(step))


def adam_cosine(lr: float, total_steps: int, *, weight_decay: float = 0.0, lr_min: float = 0.0) -> optax.GradientTransformation:
    """Adam with cosine decay (the Genetic-CNN MNIST runs of the survey (docs/references.md) use Adam at lr 0.01)."""
    return optax.chain(optax.add_decayed_weights(weight_decay), optax.adam(cosine_schedule(lr, total_steps, lr_min)))
