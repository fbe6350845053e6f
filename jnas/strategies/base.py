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
    """Everything a search evaluated, in order; ``(steps, B)`` leading axes (``metrics``:
    what each ``tell`` returned, ``(steps, ...)``; ``budgets`` and ``cost``: multi-fidelity
    runs only)."""

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
    """``steps`` ask/evaluate/tell rounds as one ``lax.scan`` (jit and vmap it over keys)."""
    params = resolve(params, strategy.params)
    k_init, k_run = jax.random.split(key)
    state = strategy.init(k_init, params)

    def body(state, k):
        k_ask, k_tell = jax.random.split(k)
        archs, state = strategy.ask(k_ask, state, params)
        fit, rep = objective(archs)
        state, metrics = strategy.tell(k_tell, archs, fit, state, params)
        return state, Trace(archs, fit, rep, metrics)

    _, trace = jax.lax.scan(body, state, jax.random.split(k_run, steps))
    return trace


def best_so_far(trace: Trace) -> tuple[Array, Array]:
    """Per evaluation: the best fitness so far and the report of that incumbent.

    Flattens ``(steps, B)`` to evaluation order; ties keep the earlier incumbent.
    """
    fit = trace.fitness.reshape(*trace.fitness.shape[:-2], -1)
    rep = trace.report.reshape(fit.shape)

    def step(carry, fr):
        bf, br = carry
        f, r = fr
        better = f > bf
        new = (jnp.where(better, f, bf), jnp.where(better, r, br))
        return new, new

    init = (jnp.full(fit.shape[:-1], -jnp.inf, fit.dtype), jnp.full(fit.shape[:-1], jnp.nan, rep.dtype))
    _, (bf, br) = jax.lax.scan(step, init, (jnp.moveaxis(fit, -1, 0), jnp.moveaxis(rep, -1, 0)))
    return jnp.moveaxis(bf, 0, -1), jnp.moveaxis(br, 0, -1)
