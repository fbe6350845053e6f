"""Bayesian optimisation with a Gaussian process on architecture encodings (the BO section of the survey (docs/references.md)
section; encodings as in White et al., BANANAS, AAAI 2021).

* Encodings of NB201 cells: ``onehot`` (6 edges x 5 ops = 30 bits) and ``path`` (one bit per
  input-to-output path whose ops are all non-``none``: 4 + 2 x 16 + 64 = 100 possible paths).
* GP: squared-exponential kernel on the encoding, k(a, b) = s^2 exp(-|a - b|^2 / (2 l^2)),
  noise variance n^2, targets standardised; posterior by Cholesky.
* Acquisition: expected improvement or UCB, maximised *exactly* over every cell of the
  space not yet evaluated (15,625 cells: one matrix product).

Jittable: observations live in a fixed buffer of ``budget`` slots with a mask.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.scipy as jsp

from jnas.spaces import nb201
from jnas.strategies.base import Strategy

# Input-to-output paths of the NB201 cell as edge-index sequences (edge order of the official string).
PATHS = ((3,), (0, 4), (1, 5), (0, 2, 5))


def onehot(archs: jnp.ndarray) -> jnp.ndarray:
    """``(..., 6)`` op indices -> ``(..., 30)`` one-hot."""
    return jax.nn.one_hot(archs, nb201.NUM_OPS).reshape(*archs.shape[:-1], -1)


def path_encoding(archs: jnp.ndarray) -> jnp.ndarray:
    """``(..., 6)`` -> ``(..., 100)``: a bit per path type and non-none op sequence that is live."""
    parts = []
    k = nb201.NUM_OPS - 1  # ops without "none" (index 0)
    for p in PATHS:
        ops = jnp.stack([archs[..., e] for e in p], -1)
        live = jnp.all(ops > 0, -1)
        code = jnp.sum((jnp.clip(ops, 1) - 1) * k ** jnp.arange(len(p) - 1, -1, -1), -1)
        parts.append(jax.nn.one_hot(code, k ** len(p)) * live[..., None])
    return jnp.concatenate(parts, -1)


ENCODINGS = {"onehot": onehot, "path": path_encoding}


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

    archs: jnp.ndarray  # (budget, 6) int32 observed cells
    y: jnp.ndarray  # (budget,) float32 observed fitness
    count: jnp.ndarray  # () int32


def empty_observations(budget: int) -> Observations:
    return Observations(jnp.zeros((budget, nb201.NUM_EDGES), jnp.int32), jnp.zeros((budget,)), jnp.zeros((), jnp.int32))


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


def gp_bo(budget: int = 150, n_init: int = 10, encoding: str = "path", acquisition: str = "ei",
          lengthscale: float | None = None, noise: float = 1e-2) -> Strategy:
    """GP-BO over NB201. ``budget`` sizes the observation buffer (queries beyond it are random).

    ``lengthscale`` defaults to sqrt(mean pairwise squared distance of the encoding over random
    cells)/2, a scale at which neighbouring cells correlate strongly and distant ones weakly.
    """
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown encoding {encoding!r}; valid encodings are {sorted(ENCODINGS)}")
    if acquisition not in ("ei", "ucb"):
        raise ValueError(f"unknown acquisition {acquisition!r}; valid ones are ['ei', 'ucb']")
    enc = ENCODINGS[encoding]
    all_cells = nb201.enumerate_all()
    all_enc = enc(all_cells).astype(jnp.float32)
    if lengthscale is None:
        sample = all_enc[:: 61]
        lengthscale = float(jnp.sqrt(jnp.mean(sq_dists(sample, sample)))) / 2

    def init(key, params=None):
        return empty_observations(budget)

    def ask(key, state, params=None):
        mask, ys = standardised(state)
        mean, var = posterior(enc(state.archs).astype(jnp.float32), ys, mask, all_enc, lengthscale, 1.0, noise)
        if acquisition == "ei":
            score = expected_improvement(mean, var, jnp.max(jnp.where(mask, ys, -jnp.inf)))
        else:
            score = ucb(mean, var)
        seen = jnp.zeros(all_cells.shape[0], bool).at[nb201.to_index(state.archs)].max(mask)
        best = jnp.argmax(jnp.where(seen, -jnp.inf, score))
        pick = jnp.where((state.count < n_init) | (state.count >= budget), nb201.sample(key, 1)[0], all_cells[best])
        return pick[None], state

    def tell(key, archs, fitness, state, params=None):
        return observe(state, archs[0], fitness[0]), {}

    # vmap over seeds batches the Cholesky solves, which XLA:CPU ran far slower than a loop
    # (one seed: 0.03 s per ask; 10 vmapped seeds did not finish 150 asks in 7 minutes).
    return Strategy(init, ask, tell, 1, vmappable=False)
