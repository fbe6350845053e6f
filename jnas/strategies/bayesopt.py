"""Bayesian optimisation with a Gaussian process on architecture encodings (the BO section of the survey (docs/references.md)
section; encodings as in White et al., BANANAS, AAAI 2021).

* Encodings: the space's own (``space.encode``; one-hot for categorical spaces), or any
  function passed as ``encode``; for NB201 ``jnas.spaces.nb201.path_encoding`` (one bit per
  input-to-output path whose ops are all non-``none``: 100 possible paths) is the default of
  the ``"bo"`` registry entry.
* GP: squared-exponential kernel on the encoding, k(a, b) = s^2 exp(-|a - b|^2 / (2 l^2)),
  noise variance n^2, targets standardised; posterior by Cholesky.
* Acquisition: expected improvement or UCB, maximised *exactly* over every architecture of
  the space not yet evaluated (NB201: 15,625 cells, one matrix product). Needs a space with
  ``from_index``/``to_index`` and at most ``max_archs`` architectures.

Jittable: observations live in a fixed buffer of ``budget`` slots with a mask.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import jax.scipy as jsp

from typing import Callable

from jnas.spaces import nb201
from jnas.spaces.base import Space, require
from jnas.strategies.base import Strategy, resolve

def sq_dists(a: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
    return jnp.maximum(jnp.sum(a * a, -1)[:, None] + jnp.sum(b * b, -1)[None, :] - 2 * a @ b.T, 0.0)


def posterior(X: jnp.ndarray, y: jnp.ndarray, mask: jnp.ndarray, Xs: jnp.ndarray, lengthscale: float,
              signal: float = 1.0, noise: float = 1e-2) -> tuple[jnp.ndarray, jnp.ndarray]:
    """GP posterior mean and variance at ``Xs`` given the observations of ``X`` where ``mask``.

    Masked-out slots are made independent unit-variance points with zero target and zero
    cross-covariance, so they leave the posterior unchanged (fixed shapes under jit).
    """
    m = mask.astype(X.dtype)
    K = signal**2 * jnp.exp(-sq_dists(X, X) / (2 * lengthscale**2)) * m[:, None] * m[None, :]
    K = K + jnp.diag(m * noise**2 + (1 - m))
    Ks = signal**2 * jnp.exp(-sq_dists(Xs, X) / (2 * lengthscale**2)) * m[None, :]
    L = jnp.linalg.cholesky(K)
    alpha = jsp.linalg.cho_solve((L, True), y * m)
    mean = Ks @ alpha
    v = jsp.linalg.solve_triangular(L, Ks.T, lower=True)
    var = jnp.maximum(signal**2 - jnp.sum(v * v, 0), 1e-12)
    return mean, var


def expected_improvement(mean, var, best):
    """EI for maximisation: (mu - best) Phi(z) + sigma phi(z), z = (mu - best) / sigma."""
    sd = jnp.sqrt(var)
    z = (mean - best) / sd
    return (mean - best) * jsp.stats.norm.cdf(z) + sd * jsp.stats.norm.pdf(z)


def ucb(mean, var, beta: float = 2.0):
    return mean + beta * jnp.sqrt(var)


class Observations(NamedTuple):
    """Observed cells in a fixed buffer (model-based strategies); slots >= count are empty."""

    archs: jnp.ndarray  # (budget, ...) int32 observed architectures
    y: jnp.ndarray  # (budget,) float32 observed fitness
    count: jnp.ndarray  # () int32


def empty_observations(budget: int, arch_shape: tuple[int, ...] = nb201.SPACE.arch_shape) -> Observations:
    return Observations(jnp.zeros((budget, *arch_shape), jnp.int32), jnp.zeros((budget,)), jnp.zeros((), jnp.int32))


def observe(obs: Observations, arch, f) -> Observations:
    """Append one evaluation (past the buffer's end, the last slot is overwritten)."""
    slot = jnp.minimum(obs.count, obs.y.shape[0] - 1)
    return Observations(obs.archs.at[slot].set(arch), obs.y.at[slot].set(f), obs.count + 1)


def standardised(obs: Observations) -> tuple[jnp.ndarray, jnp.ndarray]:
    """``(mask of filled slots, targets standardised by the filled slots' mean and sd)``."""
    mask = jnp.arange(obs.y.shape[0]) < obs.count
    n = jnp.maximum(mask.sum(), 1)
    mu = jnp.sum(obs.y * mask) / n
    sd = jnp.sqrt(jnp.sum(((obs.y - mu) * mask) ** 2) / n) + 1e-6
    return mask, (obs.y - mu) / sd


class GPParams(NamedTuple):
    lengthscale: jnp.ndarray  # () kernel lengthscale on the encoding
    noise: jnp.ndarray  # () observation noise sd (standardised targets)


def gp_bo(space: Space = nb201.SPACE, budget: int = 150, n_init: int = 10, encode: Callable | None = None,
          acquisition: str = "ei", lengthscale: float | None = None, noise: float = 1e-2,
          max_archs: int = 200_000) -> Strategy:
    """GP-BO over every architecture of ``space``. ``budget`` sizes the observation buffer
    (queries beyond it are random); ``encode`` defaults to ``space.encode``.

    ``lengthscale`` defaults to sqrt(mean pairwise squared distance of the encoding over
    architectures spread through the space)/2, a scale at which neighbouring architectures
    correlate strongly and distant ones weakly. ``lengthscale`` and ``noise`` are the default
    :class:`GPParams`.
    """
    require(space, "from_index", "to_index", who="GP-BO")
    if space.num_archs is None or space.num_archs > max_archs:
        raise ValueError(f"GP-BO scores every architecture; {space.name} has {space.num_archs} (max_archs={max_archs})")
    if acquisition not in ("ei", "ucb"):
        raise ValueError(f"unknown acquisition {acquisition!r}; valid ones are ['ei', 'ucb']")
    enc = space.encode if encode is None else encode
    all_archs = space.from_index(jnp.arange(space.num_archs))
    all_enc = enc(all_archs).astype(jnp.float32)
    if lengthscale is None:
        spread = all_enc[:: max(1, space.num_archs // 256)]
        lengthscale = float(jnp.sqrt(jnp.mean(sq_dists(spread, spread)))) / 2
    defaults = GPParams(jnp.asarray(lengthscale, jnp.float32), jnp.asarray(noise, jnp.float32))

    def init(key, params=None):
        return empty_observations(budget, space.arch_shape)

    def ask(key, state, params=None):
        p = resolve(params, defaults)
        mask, ys = standardised(state)
        mean, var = posterior(enc(state.archs).astype(jnp.float32), ys, mask, all_enc, p.lengthscale, 1.0, p.noise)
        if acquisition == "ei":
            score = expected_improvement(mean, var, jnp.max(jnp.where(mask, ys, -jnp.inf)))
        else:
            score = ucb(mean, var)
        seen = jnp.zeros(all_archs.shape[0], bool).at[space.to_index(state.archs)].max(mask)
        best = jnp.argmax(jnp.where(seen, -jnp.inf, score))
        pick = jnp.where((state.count < n_init) | (state.count >= budget), space.sample(key, 1)[0], all_archs[best])
        return pick[None], state

    def tell(key, archs, fitness, state, params=None):
        return observe(state, archs[0], fitness[0]), {}

    # vmap over seeds batches the Cholesky solves, which XLA:CPU ran far slower than a loop
    # (one seed: 0.03 s per ask; 10 vmapped seeds did not finish 150 asks in 7 minutes).
    return Strategy(init, ask, tell, 1, vmappable=False, params=defaults)
