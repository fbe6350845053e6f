"""RENAS, reinforced evolutionary NAS (Chen et al., CVPR 2019; Algorithms 8.1 and 8.2 of the survey (docs/references.md), aging evolution with a
learned mutation): aging evolution whose mutation is chosen by a controller.

The controller is a linear policy on the parent's one-hot encoding: it picks the edge to
mutate, pi(e | parent) = softmax(W_e x + b_e), then the new op, pi(o | parent, e) =
softmax(W_o[e] x + b_o[e]) with the current op masked out (the child always differs). The
reward is the child's fitness minus its parent's (the mutation's improvement), with a
moving-average baseline and REINFORCE updates by Adam. Population and tournament as REA
(P 10, S 3). Jittable. Any space with ``choices`` (genes are the "edges", values the "ops";
genes with one value are never picked, values beyond a gene's count never drawn); ``lr`` and
``momentum`` are the default :class:`RENASParams`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jnas.spaces import nb201
from jnas.spaces.base import Space, require
from jnas.strategies.base import Strategy, resolve
from jnas.strategies.regularized_evolution import age_out, tournament


class RENASParams(NamedTuple):
    lr: jnp.ndarray  # () Adam step size of the controller
    momentum: jnp.ndarray  # () baseline decay


class RENASState(NamedTuple):
    archs: jnp.ndarray  # (P, G) population ring buffer
    fitness: jnp.ndarray  # (P,)
    policy: dict  # {"We": (G, G*O), "be": (G,), "Wo": (G, O, G*O), "bo": (G, O)}, O = max choices
    opt_state: optax.OptState
    baseline: jnp.ndarray  # () moving average of rewards
    parent: jnp.ndarray  # (G,) parent of the pending child
    parent_fit: jnp.ndarray  # ()
    count: jnp.ndarray  # () int32


def _logits(policy, x, choices: tuple[int, ...], edge=None):
    c = np.asarray(choices)
    le = jnp.where(jnp.asarray(c > 1), policy["We"] @ x + policy["be"], -jnp.inf)  # genes a mutation can change
    if edge is None:
        return le
    value_ok = jnp.asarray(np.arange(c.max())[None, :] < c[:, None])[edge]
    return le, jnp.where(value_ok, policy["Wo"][edge] @ x + policy["bo"][edge], -jnp.inf)


def log_prob(policy, parent, edge, op, choices: tuple[int, ...] = nb201.SPACE.choices):
    """log pi(edge, op | parent), with the parent's current value on ``edge`` masked out."""
    O = max(choices)
    le, lo = _logits(policy, jax.nn.one_hot(parent, O).ravel(), choices, edge)
    lo = jnp.where(jnp.arange(O) == parent[edge], -jnp.inf, lo)
    return jax.nn.log_softmax(le)[edge] + jax.nn.log_softmax(lo)[op]


def renas(space: Space = nb201.SPACE, population: int = 10, sample_size: int = 3, lr: float = 0.01,
          momentum: float = 0.9) -> Strategy:
    require(space, "choices", who="RENAS")
    choices = np.asarray(space.choices)
    E, O = len(choices), int(choices.max())
    adam = optax.scale_by_adam()  # step size from params (vmappable)
    defaults = RENASParams(jnp.asarray(lr, jnp.float32), jnp.asarray(momentum, jnp.float32))

    def init(key, params=None):
        policy = {"We": jnp.zeros((E, E * O)), "be": jnp.zeros((E,)), "Wo": jnp.zeros((E, O, E * O)), "bo": jnp.zeros((E, O))}
        z = jnp.zeros((E,), jnp.int32)
        return RENASState(jnp.zeros((population, E), jnp.int32), jnp.full((population,), -jnp.inf), policy,
                          adam.init(policy), jnp.zeros(()), z, jnp.zeros(()), jnp.zeros((), jnp.int32))

    def ask(key, state, params=None):
        k_rand, k_pick, k_e, k_o = jax.random.split(key, 4)
        best = tournament(k_pick, state.fitness, sample_size)
        parent = state.archs[best]
        x = jax.nn.one_hot(parent, O).ravel()
        edge = jax.random.categorical(k_e, _logits(state.policy, x, space.choices))
        _, lo = _logits(state.policy, x, space.choices, edge)
        op = jax.random.categorical(k_o, jnp.where(jnp.arange(O) == parent[edge], -jnp.inf, lo))
        child = parent.at[edge].set(op)
        warm = state.count < population
        pick = jnp.where(warm, space.sample(k_rand, 1)[0], child)
        return pick[None], state._replace(parent=parent, parent_fit=state.fitness[best])

    def tell(key, archs, fitness, state, params=None):
        p = resolve(params, defaults)
        child, f = archs[0], fitness[0]
        learn = state.count >= population
        diff = child != state.parent
        edge = jnp.argmax(diff)
        r = f - state.parent_fit
        baseline = jnp.where(state.count == population, r, p.momentum * state.baseline + (1 - p.momentum) * r)
        grads = jax.grad(lambda q: -(r - baseline) * log_prob(q, state.parent, edge, child[edge], space.choices))(state.policy)
        grads = jax.tree.map(lambda g: jnp.where(learn, g, 0.0), grads)
        upd, opt_state = adam.update(grads, state.opt_state, state.policy)
        policy = jax.tree.map(lambda w, u: w - p.lr * u, state.policy, upd)
        pop, fit = age_out(state.archs, state.fitness, state.count, child, f)
        return state._replace(
            archs=pop, fitness=fit, policy=policy,
            opt_state=opt_state, baseline=jnp.where(learn, baseline, state.baseline), count=state.count + 1,
        ), {"reward": r}

    return Strategy(init, ask, tell, 1, params=defaults)
