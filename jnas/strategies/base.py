"""The strategy API shared by every black-box search method, and the jitted search loop.

A strategy is a NamedTuple of pure functions (after evosax and optax):

* ``init(key, params) -> state``
* ``ask(key, state, params) -> (archs, state)`` -- a batch ``(B, ...)`` of architectures to evaluate
* ``tell(key, archs, fitness, state, params) -> (state, metrics)``

States and hyperparameters are pytrees; randomness comes only from the keys passed in.
Hyperparameters that do not set array shapes live in the ``params`` pytree (its defaults in
``Strategy.params``), so ``jax.vmap`` runs several settings side by side as it runs seeds.
Every factory takes the :class:`jnas.spaces.Space` to search as its first argument
(NAS-Bench-201 by default) and says which optional parts of the protocol it needs.
When ``ask`` and ``tell`` are jittable and the objective is too (a tabular benchmark),
:func:`search` runs a whole search as one ``lax.scan``, and ``jax.vmap(search)`` over keys
runs many seeds side by side. Larger fitness is better.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray

PyTree = Any
# archs (B, ...) -> (fitness (B,), report (B,)): what the strategy optimises and what is reported.
Objective = Callable[[Array], tuple[Array, Array]]


class Strategy(NamedTuple):
    init: Callable[[PRNGKeyArray, PyTree], PyTree]
    ask: Callable[[PRNGKeyArray, PyTree, PyTree], tuple[Array, PyTree]]
    tell: Callable[[PRNGKeyArray, Array, Array, PyTree, PyTree], tuple[PyTree, dict]]
    batch: int = 1  # architectures per ask (static)
    jittable: bool = True  # whether ask/tell trace under jit (search() needs it)
    vmappable: bool = True  # False: run seeds with lax.map (vmap of its linear algebra is slow on CPU)
    params: PyTree = None  # default hyperparameters (pass None to init/ask/tell or search to use them)


class Query(NamedTuple):
    """What a multi-fidelity strategy asks for: architectures and the budget (e.g. epochs) to
    evaluate each at (:mod:`jnas.estimation.multifidelity`)."""

    archs: Array  # (B, ...)
    budgets: Array  # (B,)


class Trace(NamedTuple):
    """Everything a search evaluated, in order; ``(steps, B)`` leading axes, or
    ``(evaluations, 1)`` when the asks differ in size (whole rungs) (``metrics``: what each
    ``tell`` returned, ``(steps, ...)``; ``budgets`` and ``cost``: multi-fidelity runs only)."""

    archs: Array
    fitness: Array
    report: Array
    metrics: PyTree = None
    budgets: Array | None = None
    cost: Array | None = None


def resolve(params: PyTree, defaults: PyTree) -> PyTree:
    """``params`` if given, else the strategy's defaults (how init/ask/tell read ``None``)."""
    return defaults if params is None else params


def search(strategy: Strategy, params: PyTree, objective: Objective, steps: int, key: PRNGKeyArray) -> Trace:
    """``steps`` ask/evaluate/tell rounds as one ``lax.scan`` (jit and vmap it over keys).

    A NaN or infinite fitness cannot stop a jitted scan, so it is never told as it is: the
    strategy is told the worst finite fitness seen so far in this search (0 before any), as
    the driver's ``nonfinite="worst"`` does, and the trace keeps the original value. Call
    :func:`check_finite` on the trace (``run_seeds`` does) to refuse such a search, as the
    driver does by default.
    """
    params = resolve(params, strategy.params)
    k_init, k_run = jax.random.split(key)
    state = strategy.init(k_init, params)

    def body(carry, k):
        state, worst = carry
        k_ask, k_tell = jax.random.split(k)
        archs, state = strategy.ask(k_ask, state, params)
        fit, rep = objective(archs)
        finite = jnp.isfinite(fit)
        worst = jnp.minimum(worst, jnp.where(finite, fit, jnp.inf).min())
        told = jnp.where(finite, fit, jnp.where(jnp.isfinite(worst), worst, 0.0).astype(fit.dtype))
        state, metrics = strategy.tell(k_tell, archs, told, state, params)
        return (state, worst), Trace(archs, fit, rep, metrics)

    _, trace = jax.lax.scan(body, (state, jnp.array(jnp.inf, jnp.float32)), jax.random.split(k_run, steps))
    return trace


NONFINITE = ("raise", "worst")  # what a NaN or infinite fitness does (search drivers' ``nonfinite``)
FIX_NONFINITE = "fix the objective, or pass nonfinite='worst' to tell the worst finite fitness seen so far instead"


def check_nonfinite_option(nonfinite: str) -> None:
    """Refuse a ``nonfinite`` choice other than :data:`NONFINITE`."""
    if nonfinite not in NONFINITE:
        raise ValueError(f"unknown nonfinite handling {nonfinite!r}; valid choices are {list(NONFINITE)}")


def check_finite(trace: Trace, first_seed: int = 0) -> None:
    """Refuse a (concrete) trace of :func:`search` whose objective returned NaN or infinity,
    naming the first such seed (leading axes beyond ``(steps, batch)`` are seeds), step and
    architecture.

    Raises:
      ValueError: the trace holds a non-finite fitness.
    """
    fit = np.asarray(trace.fitness)
    bad = np.argwhere(~np.isfinite(fit))
    if len(bad):
        where = tuple(int(i) for i in bad[0])
        seed = f"seed {first_seed + where[0]}, " if fit.ndim > 2 else ""
        arch = np.asarray(trace.archs)[where].tolist()
        raise ValueError(f"the objective returned non-finite fitness {fit[where]} ({len(bad)} of {fit.size} "
                         f"evaluations) at {seed}step {where[-2]} for {arch}; {FIX_NONFINITE}")


def best_so_far(trace: Trace) -> tuple[Array, Array]:
    """Per evaluation: the best fitness so far and the report of that incumbent.

    Flattens ``(steps, B)`` to evaluation order; ties keep the earlier incumbent, and a NaN or
    infinite fitness never becomes the incumbent.
    """
    fit = trace.fitness.reshape(*trace.fitness.shape[:-2], -1)
    rep = trace.report.reshape(fit.shape)

    def step(carry, fr):
        bf, br = carry
        f, r = fr
        better = jnp.isfinite(f) & (f > bf)
        new = (jnp.where(better, f, bf), jnp.where(better, r, br))
        return new, new

    init = (jnp.full(fit.shape[:-1], -jnp.inf, fit.dtype), jnp.full(fit.shape[:-1], jnp.nan, rep.dtype))
    _, (bf, br) = jax.lax.scan(step, init, (jnp.moveaxis(fit, -1, 0), jnp.moveaxis(rep, -1, 0)))
    return jnp.moveaxis(bf, 0, -1), jnp.moveaxis(br, 0, -1)
