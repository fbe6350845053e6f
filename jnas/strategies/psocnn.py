"""psoCNN: particle swarm optimisation of variable-length CNN chains (Fernandes Junior & Yen,
Swarm and Evolutionary Computation 2019; the psoCNN section of the survey (docs/references.md)), on :mod:`jnas.spaces.cnn_chain`.

A particle is a chain of layers. Its velocity is a list of per-position actions built from two
*differences*, ``gBest - P`` and ``pBest - P``:

* :func:`difference` aligns two chains block by block (feature block from its first layer,
  fc block from its first layer, so the two blocks never mix). At a position where both have
  a layer: :data:`KEEP` if the types match (conv vs conv, pooling vs pooling, fc vs fc),
  else the first chain's layer. Where only the first has one: that layer (to be added).
  Where only the second has one: :data:`REMOVE`.
* :func:`velocity` takes, per position, the entry of ``gBest - P`` when a uniform draw is
  ``<= c_g`` and the entry of ``pBest - P`` otherwise; where the chosen difference is shorter
  (the paper's special case) the position gets nothing (:data:`NOTHING`).
* :func:`update` applies a velocity to a chain position by position: KEEP keeps the layer, a
  layer replaces (or appends) it, REMOVE and NOTHING leave no layer. Then pooling layers
  beyond the input's limit are removed from the end (:func:`jnas.spaces.cnn_chain.limit_pools`).

Because both bests start with a conv layer, an updated chain does too, and since blocks are
aligned separately no conv/pool layer can follow an fc layer. Block lengths never exceed the
longest of P, pBest and gBest, so they stay within ``max_layers - 1``.

The search: a swarm of random chains is evaluated, then every iteration moves each particle
by its velocity (gBest and pBest from the previous iteration, synchronously), evaluates
the swarm, and updates each pBest and the gBest. psoCNN's defaults: swarm 20, 10 iterations,
``c_g = 0.5``, fitness = validation cross-entropy after one training epoch (here larger
fitness is better: pass minus the loss). Not jittable: chains have variable length and
the operators run on the host, with randomness from the keys passed in.
"""

from __future__ import annotations

from typing import NamedTuple, Union

import jax
import numpy as np

from jnas.spaces import cnn_chain as space
from jnas.spaces.cnn_chain import Chain, ChainSpace, Layer
from jnas.strategies.base import Strategy

KEEP, REMOVE, NOTHING = "keep", "remove", "nothing"
Entry = Union[Layer, str]  # a layer to put at this position, or KEEP / REMOVE / NOTHING
Diff = tuple[tuple[Entry, ...], tuple[Entry, ...]]  # (feature block, fc block)


def _group(layer: Layer) -> str:
    return "pool" if layer.kind in space.POOLS else layer.kind


def _block_difference(a: Chain, b: Chain) -> tuple[Entry, ...]:
    out: list[Entry] = []
    for i in range(max(len(a), len(b))):
        if i < len(a) and i < len(b):
            out.append(KEEP if _group(a[i]) == _group(b[i]) else a[i])
        elif i < len(a):
            out.append(a[i])
        else:
            out.append(REMOVE)
    return tuple(out)


def difference(a: Chain, b: Chain) -> Diff:
    """``a - b``: what turns ``b`` towards ``a``, per block (see the module docstring)."""
    (fa, ca), (fb, cb) = space.blocks(a), space.blocks(b)
    return _block_difference(fa, fb), _block_difference(ca, cb)


def velocity(key, to_gbest: Diff, to_pbest: Diff, c_g: float) -> Diff:
    """Per position, the gBest entry if ``U(0, 1) <= c_g`` else the pBest entry (NOTHING where the
    chosen difference is shorter)."""
    out = []
    for blk, k in zip(range(2), jax.random.split(key, 2)):
        g, p = to_gbest[blk], to_pbest[blk]
        n = max(len(g), len(p))
        r = np.asarray(jax.random.uniform(k, (n,)))
        src = [g if r[i] <= c_g else p for i in range(n)]
        out.append(tuple(s[i] if i < len(s) else NOTHING for i, s in enumerate(src)))
    return out[0], out[1]


def _block_update(x: Chain, v: tuple[Entry, ...]) -> list[Layer]:
    out: list[Layer] = []
    for i in range(max(len(x), len(v))):
        e = v[i] if i < len(v) else KEEP
        if e == KEEP:
            if i < len(x):
                out.append(x[i])
        elif isinstance(e, Layer):
            out.append(e)
    return out


def update(sp: ChainSpace, x: Chain, v: Diff) -> Chain:
    """``x + v``, then the pooling limit (surplus pooling layers removed from the end)."""
    fx, cx = space.blocks(x)
    return space.limit_pools(sp, tuple(_block_update(fx, v[0]) + _block_update(cx, v[1])))


def move(key, sp: ChainSpace, x: Chain, pbest: Chain, gbest: Chain, c_g: float) -> Chain:
    """One psoCNN step of a particle: velocity from ``gbest - x`` and ``pbest - x``, then update."""
    return update(sp, x, velocity(key, difference(gbest, x), difference(pbest, x), c_g))


class PSOState(NamedTuple):
    positions: np.ndarray  # (N, W, 3) int32 current chains (array form)
    pbest: np.ndarray  # (N, W, 3) int32 each particle's best chain
    pbest_fit: np.ndarray  # (N,) float32, -inf before the first evaluation
    gbest: np.ndarray  # (W, 3) int32 best chain of the swarm
    gbest_fit: np.ndarray  # () float32
    iteration: int  # swarms told so far


def psocnn(sp: ChainSpace = ChainSpace(), swarm: int = 20, c_g: float = 0.5) -> Strategy:
    """psoCNN over ``sp``; each ask returns the whole swarm ``(swarm, sp.width, 3)``.

    Example::

        strategy = psocnn(ChainSpace(input_size=28), swarm=8)
        trace = strategies.run(strategy, None, objective, budget=8 * 5, key=key)
    """
    if not isinstance(sp, ChainSpace):
        raise ValueError(f"psoCNN moves layers of chains: it needs a chain space (jnas.spaces.cnn_chain.ChainSpace), "
                         f"got {type(sp).__name__}")
    if swarm < 1 or not 0.0 <= c_g <= 1.0:
        raise ValueError(f"need swarm >= 1 and 0 <= c_g <= 1, got swarm={swarm}, c_g={c_g}")
    W = sp.width

    def init(key, params=None) -> PSOState:
        first = np.stack([space.encode(space.sample(sp, k), W) for k in jax.random.split(key, swarm)])
        return PSOState(first, first.copy(), np.full((swarm,), -np.inf, np.float32), first[0].copy(),
                        np.float32(-np.inf), 0)

    def ask(key, state: PSOState, params=None):
        if state.iteration == 0:
            return state.positions, state
        g = space.decode(state.gbest)
        new = np.stack([
            space.encode(move(k, sp, space.decode(x), space.decode(p), g, c_g), W)
            for k, x, p in zip(jax.random.split(key, swarm), state.positions, state.pbest)
        ])
        return new, state._replace(positions=new)

    def tell(key, archs, fitness, state: PSOState, params=None):
        archs, fitness = np.asarray(archs, np.int32), np.asarray(fitness, np.float32)
        better = fitness > state.pbest_fit
        pbest = np.where(better[:, None, None], archs, state.pbest)
        pbest_fit = np.where(better, fitness, state.pbest_fit)
        i = int(np.argmax(pbest_fit))
        gbest, gbest_fit = (pbest[i], pbest_fit[i]) if pbest_fit[i] > state.gbest_fit else (state.gbest, state.gbest_fit)
        state = PSOState(archs, pbest, pbest_fit, gbest.copy(), np.float32(gbest_fit), state.iteration + 1)
        return state, {"gbest": float(gbest_fit)}

    return Strategy(init, ask, tell, swarm, jittable=False, vmappable=False)
