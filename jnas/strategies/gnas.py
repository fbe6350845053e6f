"""GNAS: greedy search of a tree-structured multi-attribute network with weight sharing
(Huang et al., ACM MM 2018; Algorithm 10 of the survey (docs/references.md)), on :mod:`jnas.spaces.tree` with the
supernet :class:`jnas.nets.tree.TreeSupernet`.

The reward of a tree is the mean over attributes of the validation accuracy,
``R = 1/N sum_n r_n``. Attribute n's prediction depends only on the blocks on its path, so
once the layers above l + 1 are fixed, the parent chosen for block j of layer l + 1 affects
exactly the attributes below j. GNAS's greedy assumption turns this into:

* **intra-layer optimisation**: each block of layer l + 1 takes the parent that is best for
  the attributes below it, which maximises R over the whole layer (B_l^B_{l+1} choices)
  with B_l evaluations (:func:`intra_layer_search`);
* **accelerated search**: one evaluation routes *every* block of layer l + 1 to the same
  candidate parent i and reads off r_n for all attributes at once;
* **layer-wise update**: layers are optimised one at a time, from the top (l = M-1) down,
  and the shared weights are trained on the current tree before each layer's search.

Not an ask/tell strategy: the search needs the supernet's weights, so it is a loop over
pure functions (:func:`gnas`); the tree is the result. Its cost is linear in the depth
(sum_l B_l evaluations per sweep) instead of the space size prod_l B_l^B_{l+1}.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import PRNGKeyArray

from jnas.spaces import tree
from jnas.spaces.tree import TreeSpace

# parents (L,) -> (N,) per-attribute validation reward (accuracy) under the current weights
RewardFn = Callable[[np.ndarray], np.ndarray]


def intra_layer_search(space: TreeSpace, arch, layer: int, rewards: RewardFn) -> tuple[np.ndarray, np.ndarray]:
    """Best parents for the blocks of layer ``layer + 1``, the rest of ``arch`` fixed.

    Returns:
      the new parent array, and the ``(B_layer, N)`` reward table: row i holds every
      attribute's reward with all blocks of layer ``layer + 1`` fed by block i.
    """
    arch = tree.check(space, arch)
    B_in, B_out = space.blocks[layer], space.blocks[layer + 1]
    table = np.stack([np.asarray(rewards(tree.with_layer(space, arch, layer, [i] * B_out))) for i in range(B_in)])
    below = tree.ancestors(space, arch)[layer + 1]  # block of layer + 1 on each attribute's path (set above)
    parents = tree.layer_parents(space, arch, layer).copy()
    for j in range(B_out):
        attrs = below == j
        if attrs.any():  # blocks that feed no attribute keep their parent
            parents[j] = int(np.argmax(table[:, attrs].mean(1)))
    return tree.with_layer(space, arch, layer, parents), table


def brute_force_layer(space: TreeSpace, arch, layer: int, rewards: RewardFn) -> tuple[np.ndarray, float]:
    """The best of all B_layer ** B_{layer+1} choices for one layer by mean reward (for tests)."""
    best, best_r = None, -np.inf
    for cand in tree.enumerate_layer(space, arch, layer):
        r = float(np.mean(rewards(cand)))
        if r > best_r + 1e-12:
            best, best_r = cand, r
    return best, best_r


class GNASStep(NamedTuple):
    sweep: int
    layer: int  # transition optimised: parents of layer + 1's blocks
    arch: np.ndarray  # (L,) tree after this step
    reward: float  # mean validation reward of that tree
    table: np.ndarray  # (B_layer, N) the accelerated search's rewards


def gnas(space: TreeSpace, arch0, train_steps: Callable[[np.ndarray, int], None], rewards: RewardFn,
         sweeps: int = 2, on_step: Callable[[GNASStep], None] | None = None) -> list[GNASStep]:
    """Algorithm 10: ``sweeps`` passes over the layers from the top down; at each layer,
    train the shared weights on the current tree (``train_steps(arch, layer)``, the
    layer-wise update), then run the intra-layer search. Layers with one candidate parent
    (B_l = 1, e.g. the input) are skipped.

    Returns:
      one :class:`GNASStep` per searched layer, in order; the last one's ``arch`` is the result.
    """
    arch = tree.check(space, arch0)
    history = []
    for s in range(sweeps):
        for layer in range(space.layers - 2, -1, -1):
            if space.blocks[layer] == 1:
                continue
            train_steps(arch, layer)
            arch, table = intra_layer_search(space, arch, layer, rewards)
            step = GNASStep(s, layer, arch, float(np.mean(rewards(arch))), table)
            history.append(step)
            if on_step is not None:
                on_step(step)
    return history


def multi_attribute_loss(logits: tuple, labels) -> jax.Array:
    """Sum over attributes of the mean cross-entropy (the multi-attribute training loss)."""
    return sum(optax.softmax_cross_entropy_with_integer_labels(lg, labels[:, n]).mean() for n, lg in enumerate(logits))


def make_trainer(net, tx: optax.GradientTransformation):
    """``step(params, opt_state, parents, x, y) -> (params, opt_state, loss)`` jitted once for every tree."""

    @jax.jit
    def step(params, opt_state, parents, x, y):
        loss, grads = jax.value_and_grad(lambda p: multi_attribute_loss(net.apply({"params": p}, x, parents), y))(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return step


def make_rewards(net):
    """``correct(params, parents, x, y) -> (N,)`` per-attribute correct counts, jitted once."""

    @jax.jit
    def correct(params, parents, x, y):
        logits = net.apply({"params": params}, x, parents, train=False)
        return jnp.stack([jnp.sum(lg.argmax(-1) == y[:, n]) for n, lg in enumerate(logits)])

    return correct


def train_layer(step, params, opt_state, space: TreeSpace, arch, layer: int, batches, key: PRNGKeyArray):
    """The layer-wise update: one optimiser step per ``(x, y)`` batch on ``arch`` with the
    parents of layer ``layer + 1``'s blocks drawn uniformly each step, so every candidate
    connection of the layer about to be searched is trained (untrained candidates could
    never win the search), and the rest of the tree is the current one.

    Returns:
      ``(params, opt_state, mean loss)``.
    """
    arch, losses = tree.check(space, arch), []
    for t, (x, y) in enumerate(batches):
        cand = jax.random.randint(jax.random.fold_in(key, t), (space.blocks[layer + 1],), 0, space.blocks[layer])
        params, opt_state, loss = step(params, opt_state, jnp.asarray(tree.with_layer(space, arch, layer, np.asarray(cand))),
                                       x, y)
        losses.append(float(loss))
    return params, opt_state, float(np.mean(losses)) if losses else float("nan")


def init_params(net, key: PRNGKeyArray, example_x, space: TreeSpace):
    """Supernet weights for every connection."""
    return net.init(key, example_x, jnp.zeros(space.length, jnp.int32))["params"]
