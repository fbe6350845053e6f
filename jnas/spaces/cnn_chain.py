"""Variable-length chains of conv / pool / fully connected layers: psoCNN's search space
(Fernandes Junior & Yen, Swarm and Evolutionary Computation 2019; the psoCNN section of the survey (docs/references.md)).

A chain is a feature block of conv and pooling layers (it always starts with a conv), then a
block of hidden fully connected layers; once a fully connected layer appears, every later
layer is one. The output layer (``num_classes`` units) is implicit: it is not part of the
chain and never moves. Layers:

* ``conv``: ``size`` output channels, ``kernel`` x ``kernel`` filter, stride 1, "same"
  padding, then batch norm and ReLU (as in psoCNN);
* ``maxpool`` / ``avgpool``: 2x2 window, stride 2, "valid" padding, so every pooling layer
  halves the feature map (rounding down);
* ``fc``: ``size`` units and ReLU.

Because pooling halves the map, an input of side ``s`` allows at most ``floor(log2(s))``
pooling layers (28 -> 14 -> 7 -> 3 -> 1: four for MNIST); :func:`limit_pools` enforces it.

As data, a chain is an int32 array of shape ``(W, 3)``, one row ``(kind, size, kernel)`` per
layer with kinds numbered from 1 as in :data:`KINDS` and rows of zeros as padding, so a
population is a ``(B, W, 3)`` array that strategies and logs handle like any other space.
The string form joins layers with ``-``: ``C32k5`` (conv), ``Pmax``/``Pavg`` (pooling),
``F128`` (fully connected); the empty chain is not valid (the first layer is a conv).
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import NamedTuple

import jax
import numpy as np
from jaxtyping import Int, PRNGKeyArray

KINDS = ("conv", "maxpool", "avgpool", "fc")
POOLS = ("maxpool", "avgpool")


class Layer(NamedTuple):
    kind: str  # one of KINDS
    size: int = 0  # conv output channels or fc units; 0 for pooling
    kernel: int = 0  # conv kernel side; 0 otherwise


Chain = tuple[Layer, ...]


@dataclasses.dataclass(frozen=True)
class ChainSpace:
    """Static facts of the space; defaults are psoCNN's (Table 2 of the paper, MNIST-sized input).

    ``min_layers``/``max_layers`` count the implicit output layer, as the paper's depth does.
    ``p_conv``/``p_pool``/``p_fc`` are the layer-type probabilities of the random initialisation.
    """

    input_size: int = 28
    min_layers: int = 3
    max_layers: int = 20
    max_channels: int = 256
    max_kernel: int = 7
    max_units: int = 300
    p_conv: float = 0.6
    p_pool: float = 0.3
    p_fc: float = 0.1

    def __post_init__(self):
        if not 2 <= self.min_layers <= self.max_layers:
            raise ValueError(f"need 2 <= min_layers <= max_layers, got {self.min_layers}, {self.max_layers}")
        if self.input_size < 1 or self.max_channels < 1 or self.max_kernel < 1 or self.max_units < 1:
            raise ValueError("input_size, max_channels, max_kernel and max_units must be >= 1")
        if not math.isclose(self.p_conv + self.p_pool + self.p_fc, 1.0):
            raise ValueError(f"layer-type probabilities must sum to 1, got {self.p_conv + self.p_pool + self.p_fc}")

    @property
    def max_pools(self) -> int:
        """Pooling layers an input of side ``input_size`` allows: each halves it (floor), >= 1 left."""
        return int(math.floor(math.log2(self.input_size)))

    @property
    def width(self) -> int:
        """Rows of the array form: each block holds at most ``max_layers - 1`` layers."""
        return 2 * (self.max_layers - 1)

    # --- jnas.spaces.base.Space: host-side (chains change length), on the (width, 3) array form
    name = "chain"
    jittable = False
    num_archs = None  # unbounded for practical purposes (every channel count and unit count)

    @property
    def arch_shape(self) -> tuple[int, ...]:
        return (self.width, 3)

    def sample(self, key: PRNGKeyArray, n: int | None = None) -> np.ndarray:
        """psoCNN's random particles (:func:`sample`) in array form."""
        if n is None:
            return encode(sample(self, key), self.width)
        return np.stack([encode(sample(self, k), self.width) for k in jax.random.split(key, n)])

    def mutate(self, key: PRNGKeyArray, arch) -> np.ndarray:
        """Redraw one uniformly chosen layer within its kind: a conv gets new channels and
        kernel, a pooling layer switches max/avg, an fc layer gets new units (depth and the
        pooling count are kept, so the chain stays valid)."""
        chain = list(decode(arch))
        k_pos, k1, k2 = jax.random.split(key, 3)
        i = _randint(k_pos, 0, len(chain) - 1)
        layer = chain[i]
        if layer.kind == "conv":
            chain[i] = Layer("conv", _randint(k1, min(3, self.max_channels), self.max_channels),
                             _randint(k2, min(3, self.max_kernel), self.max_kernel))
        elif layer.kind == "fc":
            chain[i] = Layer("fc", _randint(k1, 1, self.max_units))
        else:
            chain[i] = Layer("avgpool" if layer.kind == "maxpool" else "maxpool")
        return encode(tuple(chain), self.width)

    def crossover(self, key: PRNGKeyArray, a, b) -> np.ndarray:
        """One parent's feature block (chosen uniformly) with the other's fully connected block,
        the fc block cut so the depth stays within ``max_layers``; where the two blocks together
        are shorter than ``min_layers``, the child is the first parent."""
        first, second = (a, b) if float(jax.random.uniform(key)) < 0.5 else (b, a)
        feats, _ = blocks(decode(first))
        _, fcs = blocks(decode(second))
        child = feats + fcs[: max(0, self.max_layers - 1 - len(feats))]
        return encode(child, self.width) if len(child) >= self.min_layers - 1 else np.asarray(first, np.int32)

    def check(self, archs) -> np.ndarray:
        a = np.asarray(archs)
        if a.ndim == 3:
            return np.stack([self.check(x) for x in a])
        if a.shape != self.arch_shape:
            raise ValueError(f"chain arrays of this space have shape {self.arch_shape} or (n, {self.width}, 3), got {a.shape}")
        chain = check(decode(a), self)
        if not self.min_layers - 1 <= len(chain) <= self.max_layers - 1:
            raise ValueError(f"a chain of {len(chain)} hidden layers; the space allows "
                             f"{self.min_layers - 1}..{self.max_layers - 1}")
        return a.astype(np.int32)

    def to_string(self, arch) -> str:
        return to_string(decode(arch))

    def from_string(self, text: str) -> np.ndarray:
        return encode(from_string(text, self), self.width)

    def encode(self, archs) -> np.ndarray:
        """Per row: one-hot kind (padding included) and sizes scaled to [0, 1]."""
        a = np.asarray(archs)
        kind = np.eye(len(KINDS) + 1, dtype=np.float32)[a[..., 0]]
        scale = np.array([max(self.max_channels, self.max_units), self.max_kernel], np.float32)
        feats = np.concatenate([kind, a[..., 1:] / scale], -1)
        return feats.reshape(*a.shape[:-2], -1)


def blocks(chain: Chain) -> tuple[Chain, Chain]:
    """``(feature block, fc block)``: the conv/pool layers, then the hidden fully connected ones."""
    n = next((i for i, layer in enumerate(chain) if layer.kind == "fc"), len(chain))
    return tuple(chain[:n]), tuple(chain[n:])


def check(chain: Chain, space: ChainSpace | None = None) -> Chain:
    """Validate a chain: the structural rules always, sizes and the pooling limit of ``space``
    when given. Raises ValueError naming the layer, its position and the rule broken."""
    chain = tuple(Layer(*layer) for layer in chain)
    if not chain or chain[0].kind != "conv":
        raise ValueError(f"a chain starts with a conv layer, got {to_string(chain) or 'an empty chain'!r}")
    seen_fc = False
    for i, layer in enumerate(chain):
        if layer.kind not in KINDS:
            raise ValueError(f"layer {i}: unknown kind {layer.kind!r}; valid kinds are {list(KINDS)}")
        if seen_fc and layer.kind != "fc":
            raise ValueError(f"layer {i}: {layer.kind} after a fully connected layer; only fc layers may follow one")
        seen_fc |= layer.kind == "fc"
        if (layer.kind == "conv" and min(layer.size, layer.kernel) < 1) or (layer.kind == "fc" and layer.size < 1):
            raise ValueError(f"layer {i}: {to_string((layer,))} needs sizes >= 1")
        if space is None:
            continue
        if layer.kind == "conv" and not (layer.size <= space.max_channels and layer.kernel <= space.max_kernel):
            raise ValueError(f"layer {i}: conv with {layer.size} channels and kernel {layer.kernel}; the space allows "
                             f"1..{space.max_channels} channels and kernels 1..{space.max_kernel}")
        if layer.kind == "fc" and layer.size > space.max_units:
            raise ValueError(f"layer {i}: fc with {layer.size} units; the space allows 1..{space.max_units}")
    pools = sum(layer.kind in POOLS for layer in chain)
    if space is not None and pools > space.max_pools:
        raise ValueError(f"{pools} pooling layers; an input of side {space.input_size} allows {space.max_pools}")
    return chain


def limit_pools(space: ChainSpace, chain: Chain) -> Chain:
    """Drop pooling layers from the end until at most ``space.max_pools`` remain (psoCNN's rule)."""
    chain = list(chain)
    excess = sum(layer.kind in POOLS for layer in chain) - space.max_pools
    for i in range(len(chain) - 1, -1, -1):
        if excess <= 0:
            break
        if chain[i].kind in POOLS:
            del chain[i]
            excess -= 1
    return tuple(chain)


def _uniform(key: PRNGKeyArray, n: int) -> np.ndarray:
    return np.asarray(jax.random.uniform(key, (n,)))


def _randint(key: PRNGKeyArray, low: int, high: int) -> int:
    """One integer in [low, high] (inclusive)."""
    return int(jax.random.randint(key, (), low, high + 1))


def sample(space: ChainSpace, key: PRNGKeyArray) -> Chain:
    """psoCNN's random particle: depth uniform in [min_layers, max_layers] (output included), a
    conv first, then conv / pool / fc with probabilities ``p_conv/p_pool/p_fc`` until the first
    fc, fc after it; pooling beyond the input's limit is drawn again as a conv. Conv layers draw
    3..max_channels channels and 3..max_kernel kernels, fc layers 1..max_units units, as in
    psoCNN's reference code."""
    k_depth, k_type, k_layers = jax.random.split(key, 3)
    depth = _randint(k_depth, space.min_layers, space.max_layers) - 1  # hidden layers
    u = _uniform(k_type, depth)
    keys = jax.random.split(k_layers, depth)
    chain: list[Layer] = []
    pools = 0
    for i in range(depth):
        k1, k2, k3 = jax.random.split(keys[i], 3)
        if i == 0 or (not chain[-1].kind == "fc" and u[i] < space.p_conv):
            kind = "conv"
        elif chain[-1].kind == "fc" or u[i] >= space.p_conv + space.p_pool:
            kind = "fc"
        else:
            kind = "maxpool" if _uniform(k1, 1)[0] < 0.5 else "avgpool"
            if pools == space.max_pools:
                kind = "conv"
        if kind == "conv":
            chain.append(Layer("conv", _randint(k2, min(3, space.max_channels), space.max_channels),
                               _randint(k3, min(3, space.max_kernel), space.max_kernel)))
        elif kind == "fc":
            chain.append(Layer("fc", _randint(k2, 1, space.max_units)))
        else:
            pools += 1
            chain.append(Layer(kind))
    return tuple(chain)


def encode(chain: Chain, width: int) -> Int[np.ndarray, "W 3"]:
    """The ``(width, 3)`` int32 array form, zero-padded (``ChainSpace.width`` fits any chain of a space)."""
    chain = check(chain)
    if len(chain) > width:
        raise ValueError(f"a chain of {len(chain)} layers does not fit {width} rows")
    out = np.zeros((width, 3), np.int32)
    for i, layer in enumerate(chain):
        out[i] = (KINDS.index(layer.kind) + 1, layer.size, layer.kernel)
    return out


def decode(array) -> Chain:
    """Inverse of :func:`encode`: rows up to the first all-zero row. Raises ValueError on a bad kind."""
    a = np.asarray(array)
    if a.ndim != 2 or a.shape[1] != 3:
        raise ValueError(f"a chain array has shape (W, 3), got {a.shape}")
    chain = []
    for i, (k, size, kernel) in enumerate(a.tolist()):
        if k == 0:
            break
        if not 1 <= k <= len(KINDS):
            raise ValueError(f"row {i}: kind code {k}; valid codes are 1..{len(KINDS)} for {list(KINDS)}")
        chain.append(Layer(KINDS[k - 1], size, kernel))
    return tuple(chain)


def to_string(chain: Chain) -> str:
    """``"C32k5-Pmax-C64k3-F128"``."""
    parts = []
    for layer in chain:
        if layer.kind == "conv":
            parts.append(f"C{layer.size}k{layer.kernel}")
        elif layer.kind == "fc":
            parts.append(f"F{layer.size}")
        else:
            parts.append("Pmax" if layer.kind == "maxpool" else "Pavg")
    return "-".join(parts)


_TOKEN = re.compile(r"C(\d+)k(\d+)|F(\d+)|P(max|avg)")


def from_string(text: str, space: ChainSpace | None = None) -> Chain:
    """Parse :func:`to_string`'s form and validate it (against ``space`` if given).
    Raises ValueError naming the bad token and its position."""
    chain = []
    for i, token in enumerate(text.strip().split("-")):
        m = _TOKEN.fullmatch(token)
        if m is None:
            raise ValueError(f"token {i} {token!r} of {text!r} is not a layer; write C<channels>k<kernel>, "
                             "F<units>, Pmax or Pavg")
        if m.group(1):
            chain.append(Layer("conv", int(m.group(1)), int(m.group(2))))
        elif m.group(3):
            chain.append(Layer("fc", int(m.group(3))))
        else:
            chain.append(Layer(m.group(4) + "pool"))
    return check(tuple(chain), space)
