"""One-shot bilevel search loop shared by DARTS, PC-DARTS and P-DARTS.

The DARTS-as-TTSA form of the survey (docs/references.md; Algorithm 11 with the Algorithm 10 update order)::

    w_{k+1} = w_k - B_k grad_w L_train(w_k, a_k)              (optax SGD, momentum, cosine)
    a_{k+1} = a_k - A_k hypergrad L_val(w_{k+1}, a_k)          (optax Adam)

``hypergrad`` is any :mod:`jnas.bilevel` estimator, chosen by name: ``first_order``
(DARTS 1st order), ``finite_difference`` (DARTS 2nd order), ``second_order`` (the same
gradient exact by jvp), ``implicit_cg``, ``unrolled``, ... Estimators that take an inner
step size get the current weight learning rate as xi, as in DARTS.

Defaults are DARTS's CIFAR-10 search settings: weights SGD lr 0.025 -> 0.001 cosine,
momentum 0.9, weight decay 3e-4, gradient clipping 5; alpha Adam lr 3e-4, betas (0.5,
0.999), weight decay 1e-3 (PyTorch-style L2 added to the gradient). BatchNorm runs in
training mode; its running statistics follow the weight step's batch.

Not jitted end to end over epochs (data comes from the host); each step is one jitted call.
"""

from __future__ import annotations

import dataclasses
from functools import partial
import inspect
from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jnas import bilevel
from jnas.bilevel.curvature import dominant_eigenvalue
from jnas.nets.kernels import compiler_options
from jnas.oneshot.mixing import gumbel_hard, perturb
from jnas.train.optim import cosine_schedule, sgd_cosine

PyTree = Any


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    total_steps: int
    estimator: str = "first_order"
    estimator_kwargs: tuple[tuple[str, Any], ...] = ()
    w_lr: float = 0.025
    w_lr_min: float = 0.001
    momentum: float = 0.9
    w_weight_decay: float = 3e-4
    grad_clip: float = 5.0
    a_lr: float = 3e-4
    a_b1: float = 0.5
    a_b2: float = 0.999
    a_weight_decay: float = 1e-3
    warmup_steps: int = 0  # weight-only steps before alpha moves (P-DARTS uses 10 of 25 epochs)
    # CPU convolution library of the step (jnas.nets.kernels.compiler_options): Eigen ran the
    # NB201 supernet step 1.2x faster than YNNPACK (docs/performance.md); ignored off CPU.
    conv_library: str = "eigen"
    # SDARTS-RS (Chen & Hsieh 2020): the weight step sees the mixing weights plus U(-eps, eps),
    # clamped and renormalised per edge (jnas.oneshot.mixing.perturb), eps ramped linearly over
    # the search from alpha_noise_start to alpha_noise (the SDARTS code: 0.03 -> 0.3); 0: off.
    alpha_noise: float = 0.0
    alpha_noise_start: float = 0.03
    # GDAS (Dong & Yang 2019): every loss, weight and alpha step alike, sees one op per edge
    # drawn by a hard Gumbel-softmax (jnas.oneshot.mixing.gumbel_hard), temperature decayed
    # linearly over the search from gumbel_tau to gumbel_tau_min (GDAS: 10 -> 0.1); 0: off.
    gumbel_tau: float = 0.0
    gumbel_tau_min: float = 0.1


class SearchState(NamedTuple):
    params: PyTree  # supernet weights w
    batch_stats: PyTree  # BN running statistics
    alpha: PyTree  # architecture parameters a
    w_opt: optax.OptState
    a_opt: optax.OptState
    step: jax.Array  # () int32


def weight_schedule(config: SearchConfig) -> optax.Schedule:
    return cosine_schedule(config.w_lr, max(config.total_steps, 1), config.w_lr_min)


def weight_optimizer(config: SearchConfig) -> optax.GradientTransformation:
    return sgd_cosine(
        config.w_lr, max(config.total_steps, 1), momentum=config.momentum, nesterov=False,
        weight_decay=config.w_weight_decay, lr_min=config.w_lr_min, grad_clip=config.grad_clip,
    )


def alpha_optimizer(config: SearchConfig) -> optax.GradientTransformation:
    return optax.chain(optax.add_decayed_weights(config.a_weight_decay), optax.adam(config.a_lr, b1=config.a_b1, b2=config.a_b2))


def make_estimator(config: SearchConfig, lr: jax.Array) -> bilevel.Estimator:
    """The configured estimator; ``lr`` (xi) is filled in when the estimator takes one."""
    if config.estimator not in bilevel.ESTIMATORS:
        raise ValueError(f"unknown hypergradient estimator {config.estimator!r}; valid names are {sorted(bilevel.ESTIMATORS)}")
    kwargs = dict(config.estimator_kwargs)
    if "lr" in inspect.signature(bilevel.ESTIMATORS[config.estimator]).parameters and "lr" not in kwargs:
        kwargs["lr"] = lr
    return bilevel.get(config.estimator, **kwargs)


def init_state(key: jax.Array, net: nn.Module, alpha: PyTree, mix: Callable, x: jax.Array, config: SearchConfig) -> SearchState:
    """Supernet variables from ``net.init`` on a sample batch ``x``, fresh optimiser states."""
    make_estimator(config, jnp.float32(config.w_lr))  # validate the name before tracing
    compiler_options(config.conv_library)  # validates the library name
    variables = net.init({"params": key, "dropout": key}, x, mix(alpha))
    params, stats = variables["params"], variables.get("batch_stats", {})
    return SearchState(
        params, stats, alpha, weight_optimizer(config).init(params), alpha_optimizer(config).init(alpha), jnp.zeros((), jnp.int32)
    )


def search_loss(net: nn.Module, mix: Callable[[PyTree, PyTree], PyTree]) -> Callable:
    """``loss(params, stats, alpha, (x, y), key, drop_rate, op_mask, noise=None) ->
    (cross-entropy, (new BN statistics, accuracy))``: the supernet in training mode, as every
    search step sees it. ``noise=(fn, key, scale)`` replaces each array of mixing weights
    ``w`` by ``fn(w, key, scale)``: SDARTS-RS's :func:`jnas.oneshot.mixing.perturb` or GDAS's
    :func:`jnas.oneshot.mixing.gumbel_hard`."""

    def loss(params, stats, alpha, batch, key, drop_rate, op_mask, noise=None):
        x, y = batch
        weights = mix(alpha, op_mask)
        if noise is not None:
            fn, k, scale = noise
            leaves, tree = jax.tree.flatten(weights)
            weights = jax.tree.unflatten(tree, [fn(w, kk, scale) for w, kk in zip(leaves, jax.random.split(k, len(leaves)))])
        logits, upd = net.apply(
            {"params": params, "batch_stats": stats}, x, weights, True, drop_rate,
            mutable=["batch_stats"], rngs={"dropout": key},
        )
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        return ce, (upd["batch_stats"], (jnp.argmax(logits, -1) == y).mean())

    return loss


def make_alpha_curvature(net: nn.Module, mix: Callable[[PyTree, PyTree], PyTree], iters: int = 50,
                         tol: float = 1e-4) -> Callable:
    """A jitted ``curvature(state, batch, key, op_mask) -> bilevel.curvature.Eigen``: the
    dominant eigenvalue of the Hessian of the loss on ``batch`` (the validation batch in
    RobustDARTS) with respect to alpha, at the state's weights, by power iteration on exact
    Hessian-vector products (:func:`jnas.bilevel.curvature.dominant_eigenvalue`). ``key``
    seeds the start vector (and dropout, fixed across the products)."""
    loss = search_loss(net, mix)

    @jax.jit
    def curvature(state: SearchState, batch, key, op_mask):
        k_loss, k_start = jax.random.split(key)
        f = lambda a: loss(state.params, state.batch_stats, a, batch, k_loss, 0.0, op_mask)[0]
        return dominant_eigenvalue(f, state.alpha, k_start, iters, tol)

    return curvature


def make_step(net: nn.Module, mix: Callable[[PyTree, PyTree], PyTree], config: SearchConfig) -> Callable:
    """A jitted ``step(state, train_batch, val_batch, key, drop_rate, op_mask) -> (state, metrics)``.

    ``mix(alpha, op_mask)`` maps alpha to the supernet's mixing weights; batches are
    ``(images, labels)``; ``drop_rate`` feeds P-DARTS skip dropout (0 otherwise).
    """
    w_tx, a_tx, sched = weight_optimizer(config), alpha_optimizer(config), weight_schedule(config)
    loss = search_loss(net, mix)

    @partial(jax.jit, static_argnames="update_alpha", compiler_options=compiler_options(config.conv_library))
    def jitted(state: SearchState, train_batch, val_batch, key, drop_rate, op_mask, update_alpha: bool):
        k_train, k_val, k_est, k_noise = jax.random.split(key, 4)
        ramp = jnp.minimum(state.step / config.total_steps, 1.0)
        # Noise on the mixing weights of the training-batch and validation-batch losses.
        train_noise = val_noise = None
        if config.alpha_noise > 0:  # SDARTS-RS: weights trained around alpha, a smoother landscape in alpha
            train_noise = (perturb, k_noise, config.alpha_noise_start + (config.alpha_noise - config.alpha_noise_start) * ramp)
        if config.gumbel_tau > 0:  # GDAS: a fresh hard sample for every loss, the alpha step's included
            tau = config.gumbel_tau + (config.gumbel_tau_min - config.gumbel_tau) * ramp
            k_g, k_gv = jax.random.split(k_noise)
            train_noise, val_noise = (gumbel_hard, k_g, tau), (gumbel_hard, k_gv, tau)
        inner_noise = train_noise if config.gumbel_tau > 0 else None  # SDARTS smooths the weight step only
        (l_train, (stats, acc_train)), g = jax.value_and_grad(loss, has_aux=True)(
            state.params, state.batch_stats, state.alpha, train_batch, k_train, drop_rate, op_mask, train_noise
        )
        upd, w_opt = w_tx.update(g, state.w_opt, state.params)
        params = optax.apply_updates(state.params, upd)
        alpha, a_opt = state.alpha, state.a_opt
        if update_alpha:
            problem = bilevel.Problem(
                outer=lambda a, w: loss(w, stats, a, val_batch, k_val, drop_rate, op_mask, val_noise)[0],
                inner=lambda a, w: loss(w, stats, a, train_batch, k_train, drop_rate, op_mask, inner_noise)[0],
            )
            ga = make_estimator(config, sched(state.step))(problem, state.alpha, params, k_est)
            a_upd, a_opt = a_tx.update(ga, state.a_opt, state.alpha)
            alpha = optax.apply_updates(state.alpha, a_upd)
        l_val, (_, acc_val) = loss(params, stats, state.alpha, val_batch, k_val, drop_rate, op_mask, val_noise)
        metrics = {"train_loss": l_train, "train_acc": acc_train, "val_loss": l_val, "val_acc": acc_val, "w_lr": sched(state.step)}
        return SearchState(params, stats, alpha, w_opt, a_opt, state.step + 1), metrics

    def step(state: SearchState, train_batch, val_batch, key, drop_rate, op_mask):
        # Two compiled programs, with and without the alpha step, picked on the host: XLA:CPU
        # runs the convolutions inside a lax.cond branch 5-10x slower (docs/performance.md).
        update_alpha = config.warmup_steps == 0 or int(state.step) >= config.warmup_steps
        return jitted(state, train_batch, val_batch, key, drop_rate, op_mask, update_alpha=update_alpha)

    step.jitted = jitted  # the compiled program, for lowering and inspection

    return step
