"""BANANAS (White, Neiswanger & Savani, AAAI 2021): Bayesian optimisation with an ensemble of
neural predictors on the path encoding.

Each ask: train an ensemble of ``ensemble`` MLPs (different initialisations) on every
observed (path encoding, fitness) pair with Adam; make candidates by one-edit mutations of the
``top`` best observed cells; score each candidate by independent Thompson sampling
(mean + sd * z with the ensemble's mean and sd and an independent z ~ N(0, 1) per candidate);
query the best unevaluated candidate. The first ``n_init`` queries are random. Jittable
(observations in a masked buffer of ``budget`` slots). Any jittable space: candidates come
from ``space.mutate`` and features from ``encode`` (default ``space.encode``; the ``"bananas"``
registry entry passes the path encoding on NB201, as the paper does).

Paper defaults: 5 networks, path encoding, ITS, mutation-based acquisition search. The MLP
here is smaller than the paper's (2 hidden layers of 32 instead of 10 of 20) for CPU speed.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jnas.spaces import nb201
from jnas.spaces.base import Space
from jnas.strategies.base import Strategy, resolve
from jnas.strategies.bayesopt import empty_observations, observe, standardised


def _mlp_init(key, sizes):
    keys = jax.random.split(key, len(sizes) - 1)
    return [(jax.random.normal(k, (a, b)) * jnp.sqrt(2.0 / a), jnp.zeros((b,))) for k, a, b in zip(keys, sizes[:-1], sizes[1:])]


def _mlp(params, x):
    for w, b in params[:-1]:
        x = jax.nn.relu(x @ w + b)
    w, b = params[-1]
    return (x @ w + b)[..., 0]


class BananasParams(NamedTuple):
    lr: jnp.ndarray  # () Adam step size of the predictors


def bananas(space: Space = nb201.SPACE, budget: int = 150, n_init: int = 10, ensemble: int = 5, hidden: int = 32,
            steps: int = 200, lr: float = 0.01, top: int = 10, mutations_per_top: int = 10,
            encode: Callable | None = None) -> Strategy:
    if not space.jittable:
        raise ValueError(f"BANANAS runs its acquisition under jit; the {space.name} space is host-side")
    enc = space.encode if encode is None else encode
    adam = optax.scale_by_adam()  # step size from params (vmappable)
    dim = enc(space.sample(jax.random.key(0), 1)).shape[-1]
    defaults = BananasParams(jnp.asarray(lr, jnp.float32))

    def fit_one(key, X, y, mask, lr):
        params = _mlp_init(key, (dim, hidden, hidden, 1))

        def loss(p):
            return jnp.sum(mask * (_mlp(p, X) - y) ** 2) / jnp.maximum(mask.sum(), 1)

        def step(carry, _):
            p, s = carry
            g = jax.grad(loss)(p)
            u, s = adam.update(g, s, p)
            return (jax.tree.map(lambda w, d: w - lr * d, p, u), s), None

        (params, _), _ = jax.lax.scan(step, (params, adam.init(params)), None, length=steps)
        return params

    def init(key, params=None):
        return empty_observations(budget, space.arch_shape)

    def ask(key, state, params=None):
        p = resolve(params, defaults)
        k_rand, k_fit, k_mut, k_ts = jax.random.split(key, 4)
        mask, ys = standardised(state)
        mask = mask.astype(jnp.float32)
        X = enc(state.archs).astype(jnp.float32)
        nets = jax.vmap(fit_one, in_axes=(0, None, None, None, None))(jax.random.split(k_fit, ensemble), X, ys, mask, p.lr)
        best = jnp.argsort(-jnp.where(mask > 0, state.y, -jnp.inf))[:top]
        parents = jnp.repeat(state.archs[best], mutations_per_top, axis=0)
        cand = jax.vmap(space.mutate)(jax.random.split(k_mut, parents.shape[0]), parents)
        preds = jax.vmap(lambda q: _mlp(q, enc(cand).astype(jnp.float32)))(nets)  # (ensemble, n_cand)
        its = preds.mean(0) + preds.std(0) * jax.random.normal(k_ts, (cand.shape[0],))
        flat_c, flat_s = cand.reshape(cand.shape[0], -1), state.archs.reshape(budget, -1)
        seen = jnp.any(jnp.all(flat_c[:, None] == flat_s[None], -1) & (mask[None, :] > 0), 1)
        pick = cand[jnp.argmax(jnp.where(seen, -jnp.inf, its))]
        pick = jnp.where((state.count < n_init) | (state.count >= budget), space.sample(k_rand, 1)[0], pick)
        return pick[None], state

    def tell(key, archs, fitness, state, params=None):
        return observe(state, archs[0], fitness[0]), {}

    return Strategy(init, ask, tell, 1, params=defaults)
