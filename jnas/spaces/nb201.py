"""NAS-Bench-201 cell space (Dong & Yang, ICLR 2020, arXiv:2001.00326).

A cell is a DAG on 4 nodes; each of its 6 edges carries one of 5 operations. An
architecture is an ``int32`` array of shape ``(6,)`` holding one op index per edge, in
the order of the official string ``|o~0|+|o~0|o~1|+|o~0|o~1|o~2|``::

    edge:  0      1      2      3      4      5
           1<-0   2<-0   2<-1   3<-0   3<-1   3<-2

A batch of architectures is ``(n, 6)``. Op indices follow the official op order
``none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3``.

The *base-5 index* of an architecture reads its 6 op indices as base-5 digits with edge 0
most significant (``0..15624``). It is jnas's own dense index, used to look things up in
device arrays; it is not the official NAS-Bench-201 ``arch_index`` (the benchmark table
keeps that as a column).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from jnas.spaces.base import Categorical


@dataclasses.dataclass(frozen=True)
class NB201Space(Categorical):
    """Static facts of the space; hashable, so it can be a static jit argument. Implements
    :class:`jnas.spaces.base.Space` (a categorical genome: one op per edge)."""

    name = "nb201"
    ops: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
    edges: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
    num_nodes: int = 4

    @property
    def num_edges(self) -> int:
        return len(self.edges)

    @property
    def num_ops(self) -> int:
        return len(self.ops)

    @property
    def size(self) -> int:
        return self.num_ops**self.num_edges

    @property
    def arch_shape(self) -> tuple[int, ...]:
        return (self.num_edges,)

    @property
    def choices(self) -> tuple[int, ...]:
        return (self.num_ops,) * self.num_edges

    def check(self, archs) -> np.ndarray:
        a = np.asarray(archs)
        return _check_arch(a).astype(np.int32) if a.ndim == 1 else np.asarray(check_batch(a))

    def to_string(self, arch) -> str:
        return to_string(arch)

    def from_string(self, text: str) -> np.ndarray:
        return np.asarray(parse_ops(text), np.int32)


SPACE = NB201Space()
OPS = SPACE.ops
EDGES = SPACE.edges
NUM_EDGES = SPACE.num_edges
NUM_OPS = SPACE.num_ops
SIZE = SPACE.size
POWERS = np.array([NUM_OPS ** (NUM_EDGES - 1 - e) for e in range(NUM_EDGES)], dtype=np.int32)


# ----------------------------------------------------------------------------- codecs
def from_string(arch_str: str) -> Int[Array, "6"]:
    """Parse an official cell string into an op-index array.

    Args:
      arch_str: e.g. ``"|nor_conv_3x3~0|+|none~0|skip_connect~1|+|...|"``.
    Returns:
      ``int32`` array of shape ``(6,)``.
    Raises:
      ValueError: naming the bad token and its character position, with the valid choices.

    Example:
      >>> from_string("|skip_connect~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|").tolist()
      [1, 0, 0, 0, 0, 1]
    """
    return jnp.asarray(parse_ops(arch_str), dtype=jnp.int32)


def parse_ops(arch_str: str) -> list[int]:
    """Host-side parse of an official cell string into a list of op indices (see
    :func:`from_string`, which wraps it; bulk readers call this to skip device transfers)."""
    if not isinstance(arch_str, str):
        raise ValueError(f"NB201 architecture string must be a str, got {type(arch_str).__name__}")
    nodes = arch_str.split("+")
    if len(nodes) != SPACE.num_nodes - 1:
        raise ValueError(
            f"NB201 string {arch_str!r} has {len(nodes)} node groups separated by '+', expected "
            f"{SPACE.num_nodes - 1} (format |op~0|+|op~0|op~1|+|op~0|op~1|op~2|)"
        )
    ops: list[int] = []
    pos = 0
    for node, group in enumerate(nodes, start=1):
        if len(group) < 2 or group[0] != "|" or group[-1] != "|":
            raise ValueError(
                f"NB201 string {arch_str!r}: node group {group!r} at position {pos} must start and end with '|'"
            )
        tokens = group[1:-1].split("|")
        if len(tokens) != node:
            raise ValueError(
                f"NB201 string {arch_str!r}: node {node} group {group!r} at position {pos} has "
                f"{len(tokens)} edges, expected {node}"
            )
        tok_pos = pos + 1
        for src, token in enumerate(tokens):
            name, sep, inp = token.partition("~")
            if name not in OPS:
                raise ValueError(
                    f"NB201 string {arch_str!r}: unknown op {name!r} in token {token!r} at position "
                    f"{tok_pos}; valid ops are {list(OPS)}"
                )
            if sep != "~" or inp != str(src):
                raise ValueError(
                    f"NB201 string {arch_str!r}: token {token!r} at position {tok_pos} must read "
                    f"'{name}~{src}' (edge {src}->{node})"
                )
            ops.append(OPS.index(name))
            tok_pos += len(token) + 1
        pos += len(group) + 1
    return ops


def to_string(arch: Int[Array, "6"]) -> str:
    """Official cell string of one architecture (host-side)."""
    a = _check_arch(arch)
    groups, e = [], 0
    for node in range(1, SPACE.num_nodes):
        groups.append("|" + "|".join(f"{OPS[a[e + s]]}~{s}" for s in range(node)) + "|")
        e += node
    return "+".join(groups)


def _concrete(x) -> np.ndarray | None:
    """``x`` as numpy when it is a concrete value; None for a traced array (checked by its caller)."""
    if isinstance(x, jax.core.Tracer):
        return None
    return np.asarray(x)


def to_index(arch: Int[Array, "... 6"]) -> Int[Array, "..."]:
    """Base-5 index (edge 0 most significant); works on batches and under jit.

    Raises:
      ValueError: a concrete (non-traced) input that is not integer op indices in 0..4 with a
        last axis of 6; traced inputs are the caller's to check (they cannot be inspected).
    """
    a = _concrete(arch)
    if a is not None:
        if a.ndim == 0 or a.shape[-1] != NUM_EDGES:
            raise ValueError(f"NB201 architectures have a last axis of {NUM_EDGES} op indices, got shape {a.shape}")
        if not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"NB201 architectures are integer op indices, got dtype {a.dtype} (no silent truncation)")
        bad = np.argwhere((a < 0) | (a >= NUM_OPS))
        if bad.size:
            pos = tuple(int(i) for i in bad[0])
            raise ValueError(f"NB201 op index {int(a[pos])} at position {pos} is outside 0..{NUM_OPS - 1} ({list(OPS)})")
    return jnp.sum(jnp.asarray(arch, jnp.int32) * POWERS, axis=-1)


def from_index(index: Int[Array, "..."]) -> Int[Array, "... 6"]:
    """Inverse of :func:`to_index`; works on batches and under jit.

    Raises:
      ValueError: a concrete index outside 0..15624 or not an integer (traced: unchecked).
    """
    i = _concrete(index)
    if i is not None:
        if not np.issubdtype(i.dtype, np.integer):
            raise ValueError(f"NB201 indices are integers, got dtype {i.dtype}")
        bad = np.flatnonzero((i < 0) | (i >= SIZE))
        if bad.size:
            raise ValueError(f"NB201 index {int(i.ravel()[bad[0]])} is outside 0..{SIZE - 1}")
    index = jnp.asarray(index, jnp.int32)
    return (index[..., None] // POWERS) % NUM_OPS


def enumerate_all() -> Int[Array, "15625 6"]:
    """All 15,625 architectures, row ``i`` having base-5 index ``i``."""
    return from_index(jnp.arange(SIZE, dtype=jnp.int32))


def _check_arch(arch) -> np.ndarray:
    a = np.asarray(arch)
    if a.shape != (NUM_EDGES,):
        raise ValueError(f"NB201 architecture must have shape ({NUM_EDGES},), got {a.shape}")
    if not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"NB201 architecture must be integer op indices, got dtype {a.dtype}")
    bad = np.flatnonzero((a < 0) | (a >= NUM_OPS))
    if bad.size:
        raise ValueError(
            f"NB201 architecture {a.tolist()}: op index {int(a[bad[0]])} at edge {int(bad[0])} "
            f"is outside 0..{NUM_OPS - 1} ({list(OPS)})"
        )
    return a


def check_batch(archs) -> Int[Array, "n 6"]:
    """Validate a batch (or one architecture) at the Python boundary; returns ``(n, 6)`` int32."""
    a = np.asarray(archs)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2:
        raise ValueError(f"NB201 architectures must have shape (6,) or (n, 6), got {a.shape}")
    for row in a:
        _check_arch(row)
    return jnp.asarray(a, jnp.int32)


# ----------------------------------------------------------------------------- sampling
def sample(key: PRNGKeyArray, n: int | None = None) -> Int[Array, "... 6"]:
    """Uniform random architecture(s); ``n=None`` gives one ``(6,)`` array."""
    return SPACE.sample(key, n)


def mutate(key: PRNGKeyArray, arch: Int[Array, "6"]) -> Int[Array, "6"]:
    """Change the op of one uniformly chosen edge to a different, uniformly chosen op.

    This is the mutation of regularized evolution on NAS-Bench-201 (Real et al. 2019;
    Dong & Yang 2020). Pure; usable under jit and vmap.
    """
    return SPACE.mutate(key, arch)


def neighbours(arch: Int[Array, "6"]) -> Int[Array, "24 6"]:
    """All 24 architectures one edit away (edge-major, op shift 1..4)."""
    return SPACE.neighbours(arch)


# ----------------------------------------------------------------------------- encodings
# Input-to-output paths of the cell as edge-index sequences (edge order of the official string).
PATHS = ((3,), (0, 4), (1, 5), (0, 2, 5))


def onehot(archs: Int[Array, "... 6"]) -> Float[Array, "... 30"]:
    """``(..., 6)`` op indices -> ``(..., 30)`` one-hot (:meth:`NB201Space.encode`)."""
    return SPACE.encode(archs)


def path_encoding(archs: Int[Array, "... 6"]) -> Float[Array, "... 100"]:
    """``(..., 6)`` -> ``(..., 100)``: a bit per input-to-output path type and non-none op
    sequence that is live (White et al., BANANAS, AAAI 2021): 4 + 2 x 16 + 64 = 100 paths."""
    parts = []
    k = NUM_OPS - 1  # ops without "none" (index 0)
    for p in PATHS:
        ops = jnp.stack([archs[..., e] for e in p], -1)
        live = jnp.all(ops > 0, -1)
        code = jnp.sum((jnp.clip(ops, 1) - 1) * k ** jnp.arange(len(p) - 1, -1, -1), -1)
        parts.append(jax.nn.one_hot(code, k ** len(p)) * live[..., None])
    return jnp.concatenate(parts, -1)


ENCODINGS = {"onehot": onehot, "path": path_encoding}


# ----------------------------------------------------------------------------- structure
def _node_inputs(node: int) -> list[tuple[int, int]]:
    """(edge position, source node) pairs feeding ``node``."""
    return [(e, i) for e, (i, j) in enumerate(EDGES) if j == node]


def is_connected(arch: Int[Array, "6"]) -> bool:
    """True when some path of non-``none`` edges joins the input node to the output node."""
    a = _check_arch(arch)
    alive = {0: True}
    for node in range(1, SPACE.num_nodes):
        alive[node] = any(a[e] != 0 and alive[i] for e, i in _node_inputs(node))
    return alive[SPACE.num_nodes - 1]


def _key_nb201(a) -> str:
    # The rule of NAS-Bench-201's ``CellStructure.to_unique_str(consider_zero=True)``: a
    # ``none`` edge (or an edge out of a zero node) becomes '#', a skip passes its input's
    # expression through, other ops wrap it; a node is the sorted '+'-join of its terms.
    # '#' terms stay in the join, so ``x + 0`` and ``x`` differ under this rule.
    expr = {0: "0"}
    for node in range(1, SPACE.num_nodes):
        terms = []
        for e, i in _node_inputs(node):
            op = OPS[a[e]]
            if op == "none" or expr[i] == "#":
                terms.append("#")
            elif op == "skip_connect":
                terms.append(expr[i])
            else:
                terms.append(f"({expr[i]})@{op}")
        expr[node] = "+".join(sorted(terms))
    return expr[SPACE.num_nodes - 1]


def _key_functional(a) -> str:
    # Exact algebra of the cell: zero terms vanish, skip connections flatten sums, and a
    # node is the multiset of its (op, input-expression) terms.
    expr: dict[int, tuple] = {0: ("in",)}
    for node in range(1, SPACE.num_nodes):
        terms: list = []
        for e, i in _node_inputs(node):
            op = OPS[a[e]]
            if op == "none" or not expr[i]:
                continue
            if op == "skip_connect":
                terms.extend(expr[i])
            else:
                terms.append((op, expr[i]))
        expr[node] = tuple(sorted(terms, key=repr))
    return repr(expr[SPACE.num_nodes - 1])


_RULES = {"nb201": _key_nb201, "functional": _key_functional}


def canonical_table(rule: str = "nb201") -> Int[Array, "15625"]:
    """Base-5 index of the canonical representative of every architecture.

    The representative is the member with the smallest base-5 index among all
    architectures that compute the same function under ``rule``:

    - ``"nb201"``: NAS-Bench-201's isomorphism rule (``to_unique_str(consider_zero=True)``);
      it yields the paper's 6,466 unique topologies. It drops dead edges and merges
      isomorphic paths, but keeps ``x + 0`` distinct from ``x`` and does not flatten sums
      passed through skip connections.
    - ``"functional"``: the cell's exact algebra (zero terms vanish, skips flatten sums);
      it is coarser and yields 4,930 classes.

    Raises:
      ValueError: for an unknown rule.
    """
    if rule not in _RULES:
        raise ValueError(f"unknown canonicalisation rule {rule!r}; valid rules are {sorted(_RULES)}")
    key_fn = _RULES[rule]
    archs = np.asarray(enumerate_all())
    first: dict[str, int] = {}
    table = np.empty(SIZE, dtype=np.int32)
    for idx, a in enumerate(archs):
        table[idx] = first.setdefault(key_fn(a.tolist()), idx)
    return jnp.asarray(table)


def canonical(arch: Int[Array, "... 6"], table: Int[Array, "15625"]) -> Int[Array, "... 6"]:
    """Canonical representative of ``arch`` given a :func:`canonical_table`; jit-friendly."""
    return from_index(table[to_index(arch)])
