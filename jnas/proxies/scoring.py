"""Score many architectures with one proxy in one jitted call.

The knobs live in one :class:`ScoringConfig`; every choice gives the same scores (up to
float rounding), only the speed differs. Their CPU defaults and the measurements behind
them are in docs/performance.md ("The knobs").

* ``mode`` -- how architectures are batched: ``"map"`` (``jax.lax.map`` inside one jit),
  ``"loop"`` (a Python loop over one jitted single-architecture function, the benchmarks'
  baseline) or ``"vmap"`` (a chunk at once; with shared weights and masked edges one large
  convolution, which fills a GPU).
* ``select`` -- how an edge applies its op (:mod:`jnas.nets.nb201`): ``"switch"`` (only the
  chosen op runs) or ``"mask"`` (every op runs, weighted by the one-hot cell: straight-line
  code that ``vmap`` batches well).
* ``init`` -- ``"shared"`` (one initialisation from ``key`` for every architecture: weight
  sharing, scores differ only through the architecture) or ``"per_arch"`` (each its own,
  from ``fold_in(key, index)``, as when every network is built anew).
* ``conv_grads`` -- the backend switch of :mod:`jnas.nets.kernels`: ``"explicit"`` backward
  passes (reverse mode only; the CPU default for proxies marked ``reverse_only``) or
  ``"xla"`` (autodiff's; synflow and grasp use ``jax.jvp`` and keep it).
* ``conv_library`` -- ``"ynnpack"`` or ``"eigen"`` for CPU convolutions, a compile option
  (:func:`jnas.nets.kernels.compiler_options`), per proxy.
* ``devices`` -- split each chunk over local devices.

Under ``"switch"`` the network also skips the ops of edges whose output nothing reads
(:attr:`jnas.nets.NB201Network.skip_unread`), which no score depends on. A score depends only
on ``(architecture, key, batch, init)``, never on which other architectures share a chunk.

Any space/network pair can be scored: pass ``space`` (a :class:`jnas.spaces.Space`, default
NB201) and ``net`` (a Flax module called as ``net.apply(variables, x, arch, train=...,
mutable=["batch_stats"])``). ``select``, ``conv_grads`` and ``skip_unread`` apply to networks
that have those fields (NB201's). Networks that build their layers from a concrete
architecture (Genetic-CNN, DARTS, chains) take ``arch="static"``: one compiled function per
architecture, in a loop.
"""

from __future__ import annotations

import contextlib
import dataclasses
from functools import cache, partial
from typing import Callable, Iterator, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from tqdm.auto import tqdm

from jnas.distributed import local_mesh
from jnas.nets.kernels import CONV_LIBRARIES, check_conv_grads, compiler_options
from jnas.nets.nb201 import NB201Network
from jnas.proxies.base import Proxy
from jnas.spaces import nb201
from jnas.spaces.base import Space

MODES = ("map", "loop", "vmap")
SELECTS = ("switch", "mask")
INITS = ("shared", "per_arch")
ARCHS = ("traced", "static")


@dataclasses.dataclass(frozen=True)
class ScoringConfig:
    """How :func:`score` batches, selects edges, initialises and compiles (module docstring).

    ``None`` fields take the measured defaults for the proxy and backend."""

    mode: str | None = None  # "map" | "loop" | "vmap"
    select: str | None = None  # "switch" | "mask" (networks with a select field)
    chunk: int = 16  # architectures per jitted call
    init: str = "shared"  # "shared" | "per_arch"
    conv_grads: str | None = None  # "xla" | "explicit"
    conv_library: str | None = None  # "ynnpack" | "eigen" (CPU)
    devices: int | None = None  # local devices a chunk is split over (default: all)
    arch: str = "traced"  # "traced": one compile for every architecture; "static": one per architecture
    progress: bool = True  # tqdm bar


def config_from(config: ScoringConfig | None, knobs: dict) -> ScoringConfig:
    """``config`` (default :class:`ScoringConfig`) with ``knobs`` replacing its fields; a
    ValueError names an unknown knob and lists the valid ones."""
    fields = {f.name for f in dataclasses.fields(ScoringConfig)}
    unknown = sorted(set(knobs) - fields)
    if unknown:
        raise ValueError(f"unknown scoring option(s) {unknown}; valid options are {sorted(fields)}")
    return dataclasses.replace(ScoringConfig() if config is None else config, **knobs)


def default_conv_grads(proxy: Proxy, backend: str | None = None) -> str:
    """``"explicit"`` for reverse-mode proxies on CPU, else ``"xla"`` (see module docstring)."""
    backend = jax.default_backend() if backend is None else backend
    return "explicit" if backend == "cpu" and proxy.reverse_only else "xla"


def default_conv_library(proxy: Proxy, backend: str | None = None) -> str:
    """``proxy.cpu_conv_library`` on CPU; ``"ynnpack"`` (no compile options) elsewhere."""
    backend = jax.default_backend() if backend is None else backend
    return proxy.cpu_conv_library if backend == "cpu" else "ynnpack"


def default_mode(proxy: Proxy, backend: str | None = None) -> tuple[str, str]:
    """``(mode, select)`` that measured fastest for ``proxy`` on ``backend`` (default: JAX's)."""
    backend = jax.default_backend() if backend is None else backend
    if backend != "cpu":
        return "vmap", "mask"
    if proxy.weight_grads:  # kernel gradients: lax.map measured slower than the loop here
        return ("loop", "switch") if proxy.reverse_only else ("loop", "mask")
    return "map", "switch"


@partial(jax.jit, static_argnames=("net",))
def _init(net: nn.Module, key, x, arch):
    return net.init(key, x, arch)


@partial(jax.jit, static_argnames=("net", "arch"))
def _init_static(net: nn.Module, key, x, arch):
    return net.init(key, x, arch.arch)


def _one(proxy: Proxy, net: nn.Module, variables, arch, x, y):
    return proxy.fn(net, variables, arch, x, y)


def arch_seed(space: Space, arch) -> jax.Array:
    """The integer an architecture's own initialisation folds into the key: the space's dense
    index where it has one (NB201: the base-5 index), else a fixed hash of its values."""
    if getattr(space, "to_index", None) is not None:
        return space.to_index(arch)
    flat = jnp.ravel(jnp.asarray(arch, jnp.uint32))
    mult = jnp.uint32(2654435761) ** (jnp.arange(flat.shape[0], dtype=jnp.uint32) + 1)  # Knuth's multiplicative hash
    return jnp.sum(flat * mult, dtype=jnp.uint32)


def _variables(space: Space, net: nn.Module, variables, key, a, x):
    """Shared ``variables``, or (``variables is None``) a fresh init for this architecture."""
    return net.init(jax.random.fold_in(key, arch_seed(space, a)), x, a) if variables is None else variables


def _one_own(proxy: Proxy, space: Space, net: nn.Module, key, arch, x, y):
    return proxy.fn(net, _variables(space, net, None, key, arch, x), arch, x, y)


def _map(proxy: Proxy, space: Space, net: nn.Module, variables, key, archs, x, y):
    return jax.lax.map(lambda a: proxy.fn(net, _variables(space, net, variables, key, a, x), a, x, y), archs)


def _vmap(proxy: Proxy, space: Space, net: nn.Module, variables, key, archs, x, y):
    return jax.vmap(lambda a: proxy.fn(net, _variables(space, net, variables, key, a, x), a, x, y))(archs)


class _Static:
    """A concrete architecture as a hashable static jit argument (``arch="static"``)."""

    def __init__(self, arch):
        self.arch = np.asarray(arch)

    def __hash__(self):
        return hash((self.arch.shape, self.arch.tobytes()))

    def __eq__(self, other):
        return isinstance(other, _Static) and np.array_equal(self.arch, other.arch)


def _one_static(proxy: Proxy, net: nn.Module, arch: _Static, variables, x, y):
    return proxy.fn(net, variables, arch.arch, x, y)


def _one_static_own(proxy: Proxy, space: Space, net: nn.Module, arch: _Static, key, x, y):
    return proxy.fn(net, _variables(space, net, None, key, arch.arch, x), arch.arch, x, y)


_STATIC = {
    _one: ("proxy", "net"), _one_own: ("proxy", "space", "net"), _map: ("proxy", "space", "net"),
    _vmap: ("proxy", "space", "net"), _one_static: ("proxy", "net", "arch"),
    _one_static_own: ("proxy", "space", "net", "arch"),
}


@cache
def _jit(fn: Callable, conv_library: str) -> Callable:
    """``fn`` jitted with its static arguments (:data:`_STATIC`), its CPU convolutions in ``conv_library``."""
    return jax.jit(fn, static_argnames=_STATIC[fn], compiler_options=compiler_options(conv_library))


def _mesh(devices: int) -> Mesh:
    """The first ``devices`` local devices as a one-axis mesh over which archs are split
    (one object per count: :func:`calls` places its inputs on the mesh the jitted function
    was built with)."""
    return local_mesh(devices, "archs")


@cache
def _jit_split(fn: Callable, conv_library: str, devices: int) -> Callable:
    """:func:`_jit` of ``fn`` (``_map`` or ``_vmap``) with each chunk's architectures split
    evenly over ``devices`` local devices (``shard_map``); everything else is replicated."""
    mesh = _mesh(devices)

    def split(proxy, space, net, variables, key, archs, x, y):
        local = lambda variables, key, archs, x, y: fn(proxy, space, net, variables, key, archs, x, y)
        spec = (PartitionSpec(), PartitionSpec(), PartitionSpec("archs"), PartitionSpec(), PartitionSpec())
        # check_vma=False: the networks' lax.cond/switch branches mix per-device and replicated
        # values, which shard_map's type check would otherwise make them mark by hand.
        return jax.shard_map(local, mesh=mesh, in_specs=spec, out_specs=PartitionSpec("archs"), check_vma=False)(
            variables, key, archs, x, y)

    return jax.jit(split, static_argnames=("proxy", "space", "net"), compiler_options=compiler_options(conv_library))


@partial(jax.jit, static_argnames=("proxy", "net"))
def score_one(proxy: Proxy, net: nn.Module, variables, arch, x, y):
    """One architecture with XLA's default compile options; the unit the ``"loop"`` mode repeats."""
    return _one(proxy, net, variables, arch, x, y)


def prepare(proxy: Proxy, net: nn.Module, select: str, key, x, arch0, conv_grads: str = "xla"):
    """The network a proxy runs on with edge selection ``select``, and its variables.

    Under ``"switch"`` the network skips ops whose output nothing reads
    (:attr:`jnas.nets.NB201Network.skip_unread`): no proxy can see them, and the BatchNorm
    statistics they would update are discarded here."""
    if hasattr(net, "select"):
        net = net.clone(select=select)
    try:
        net = proxy.configure(net)
    except TypeError as e:  # flax: clone() with a field the module does not have
        raise ValueError(f"proxy {proxy.name!r} reconfigures its network ({e}); {type(net).__name__} does not support "
                         "that, so it cannot be scored with this proxy") from None
    if hasattr(net, "conv_grads"):
        net = net.clone(conv_grads=conv_grads)
    if hasattr(net, "skip_unread"):
        net = net.clone(skip_unread=select == "switch")
    with precision(proxy):
        if proxy.reads_weights and isinstance(arch0, _Static):
            variables = _init_static(net, key, x, arch0)
        elif proxy.reads_weights:
            variables = _init(net, key, x, arch0)
        else:  # computed from the network's structure: no initialisation to compile
            variables = {}
    return net, variables


def precision(proxy: Proxy):
    """Context enabling float64 for proxies whose reference implementation uses it."""
    return jax.enable_x64(True) if proxy.float64 else contextlib.nullcontext()


MAX_ABS_PIXEL = 20.0  # standardised images stay within a few sd; raw 0..255 pixels do not


def check_batch(x, y, channels: int | None = None) -> tuple[jax.Array, jax.Array]:
    """Validate a proxy batch: images ``(b, h, w, c)`` (``c == channels`` when given), a float
    dtype, finite values within +-:data:`MAX_ABS_PIXEL` (an error, not a warning: scores of
    unnormalised or NaN images are numbers of the wrong thing), integer labels ``(b,)``."""
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 4:
        raise ValueError(f"proxy input images must have shape (b, h, w, c), got {x.shape}")
    if channels is not None and x.shape[-1] != channels:
        hint = " (channels first? transpose to (b, h, w, c))" if x.shape[1] == channels else ""
        raise ValueError(f"proxy input images must have {channels} channels last, shape (b, h, w, {channels}); "
                         f"got {x.shape}{hint}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"proxy input images must be floats, normalised (jnas.data.normalize); got dtype {x.dtype}")
    if not np.isfinite(x).all():
        raise ValueError(f"proxy input images hold {int((~np.isfinite(x)).sum())} non-finite values (NaN or inf)")
    if np.abs(x).max() > MAX_ABS_PIXEL:
        raise ValueError(f"proxy input images reach {float(np.abs(x).max()):.1f}; normalised images stay within "
                         f"+-{MAX_ABS_PIXEL:g} (raw 0..255 pixels? normalise with jnas.data.normalize)")
    if y.shape != (x.shape[0],):
        raise ValueError(f"proxy labels must have shape ({x.shape[0]},) to match the images, got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"proxy labels must be integer class ids, got dtype {y.dtype}")
    return jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.int32)


class Call(NamedTuple):
    """One jitted call of a scoring run: ``fn(*static, *args)`` scores ``count`` architectures
    (the first ``count`` entries of its flattened output; a padded chunk has more)."""

    fn: Callable
    static: tuple
    args: tuple
    count: int

    def __call__(self):
        return self.fn(*self.static, *self.args)


def calls(proxy: Proxy, archs, batch: tuple, key: jax.Array, *, space: Space | None = None,
          net: nn.Module | None = None, config: ScoringConfig | None = None, **knobs) -> Iterator[Call]:
    """The jitted calls that :func:`score` makes, in order, after validating its arguments
    (same arguments; run them under :func:`precision`). Exposed so that tools such as
    ``experiments.profile_proxies`` can lower and trace exactly what ``score`` runs."""
    cfg = config_from(config, knobs)
    space = nb201.SPACE if space is None else space
    auto_mode, auto_select = default_mode(proxy)
    if cfg.arch not in ARCHS:
        raise ValueError(f"unknown arch handling {cfg.arch!r}; valid choices are {list(ARCHS)}")
    if cfg.arch == "static" and cfg.mode not in (None, "loop"):
        raise ValueError(f"arch='static' compiles one function per architecture and runs them in a loop; got mode={cfg.mode!r}")
    mode = ("loop" if cfg.arch == "static" else auto_mode) if cfg.mode is None else cfg.mode
    select = cfg.select
    if select is None:
        select = auto_select if mode == auto_mode else ("mask" if mode == "vmap" else "switch")
    if mode not in MODES:
        raise ValueError(f"unknown batching mode {mode!r}; valid modes are {list(MODES)}")
    if select not in SELECTS:
        raise ValueError(f"unknown edge selection {select!r}; valid choices are {list(SELECTS)}")
    if cfg.init not in INITS:
        raise ValueError(f"unknown init {cfg.init!r}; valid choices are {list(INITS)}")
    conv_grads = default_conv_grads(proxy) if cfg.conv_grads is None else cfg.conv_grads
    check_conv_grads(conv_grads)
    if conv_grads == "explicit" and not proxy.reverse_only:
        raise ValueError(f"proxy {proxy.name!r} uses forward-mode differentiation; conv_grads='explicit' supports reverse mode only")
    conv_library = default_conv_library(proxy) if cfg.conv_library is None else cfg.conv_library
    if conv_library not in CONV_LIBRARIES:
        raise ValueError(f"unknown conv_library {conv_library!r}; valid choices are {list(CONV_LIBRARIES)}")
    chunk = cfg.chunk
    if not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be a positive int, got {chunk!r}")
    available = jax.local_device_count()
    devices = available if cfg.devices is None else cfg.devices
    if not isinstance(devices, int) or not 1 <= devices <= available:
        raise ValueError(f"devices must be an int in 1..{available} (the local {jax.default_backend()} devices), got {devices!r}")
    devices = 1 if mode == "loop" else devices
    chunk = -(-chunk // devices) * devices  # each device gets the same number of archs
    archs = np.asarray(space.check(archs))
    if archs.shape == space.arch_shape:
        archs = archs[None]
    if net is None:
        if space != nb201.SPACE:
            raise ValueError(f"scoring the {space.name} space needs its network: pass net= (NB201Network is the default for nb201 only)")
        net = NB201Network()
    x, y = check_batch(*batch, channels=getattr(net, "in_channels", 3 if isinstance(net, NB201Network) else None))
    if int(y.max()) >= net.num_classes or int(y.min()) < 0:
        raise ValueError(f"labels must lie in 0..{net.num_classes - 1} (the network's classes), got {int(y.min())}..{int(y.max())}")
    static = cfg.arch == "static"
    net, variables = prepare(proxy, net, select, key, x, _Static(archs[0]) if static else jnp.asarray(archs[0]), conv_grads)
    if cfg.init == "per_arch" and proxy.reads_weights:  # structure-only proxies need no weights at all
        variables = None
    if static:
        for a in archs:
            if variables is None:
                yield Call(_jit(_one_static_own, conv_library), (proxy, space, net, _Static(a)), (key, x, y), 1)
            else:
                yield Call(_jit(_one_static, conv_library), (proxy, net, _Static(a)), (variables, x, y), 1)
        return
    archs = jnp.asarray(archs)
    batched = _map if mode == "map" else _vmap
    if devices > 1:
        mesh = _mesh(devices)
        variables, key, x, y = jax.device_put((variables, key, x, y), NamedSharding(mesh, PartitionSpec()))
        split, jitted = NamedSharding(mesh, PartitionSpec("archs")), _jit_split(batched, conv_library, devices)
    else:
        split, jitted = None, _jit(batched, conv_library)
    for start in range(0, archs.shape[0], chunk):
        part = archs[start : start + chunk]
        if mode == "loop":
            for a in part:
                if variables is None:
                    yield Call(_jit(_one_own, conv_library), (proxy, space, net), (key, a, x, y), 1)
                else:
                    yield Call(_jit(_one, conv_library), (proxy, net), (variables, a, x, y), 1)
        else:
            pad = chunk - part.shape[0]  # keep one compiled shape for the last chunk
            padded = jnp.concatenate([part, jnp.repeat(part[:1], pad, 0)]) if pad else part
            if split is not None:
                padded = jax.device_put(padded, split)
            yield Call(jitted, (proxy, space, net), (variables, key, padded, x, y), part.shape[0])


def score(proxy: Proxy, archs, batch: tuple, key: jax.Array, *, space: Space | None = None,
          net: nn.Module | None = None, config: ScoringConfig | None = None, **knobs) -> np.ndarray:
    """Proxy scores of a batch of architectures of ``space`` (default NB201).

    Args:
      proxy: a :class:`Proxy` (see :func:`jnas.proxies.get`).
      archs: ``(n, *space.arch_shape)`` (or one architecture).
      batch: ``(x, y)`` images ``(b, h, w, c)`` and integer labels ``(b,)``; data-free
        proxies use only the shape of ``x``.
      key: PRNG key of the network initialisation(s).
      space: the :class:`jnas.spaces.Space` the architectures belong to (default NB201).
      net: base network (default for NB201: ``NB201Network()``, the benchmark's CIFAR-10
        network; required for other spaces).
      config: a :class:`ScoringConfig`; ``knobs`` (its field names: ``mode``, ``select``,
        ``chunk``, ``init``, ``conv_grads``, ``conv_library``, ``devices``, ``arch``,
        ``progress``) replace its fields. ``devices``: each ``"map"``/``"vmap"`` chunk is
        split over that many local devices (``chunk`` rounded up to a multiple).
    Returns:
      float64 numpy array ``(n,)``.
    Raises:
      ValueError: bad mode, init, conv_grads, conv_library, chunk, devices, architectures or
        batch shapes.
    """
    cfg = config_from(config, knobs)
    space = nb201.SPACE if space is None else space
    checked = np.asarray(space.check(archs))
    n = 1 if checked.shape == space.arch_shape else checked.shape[0]
    out, pending = [], []  # pending: dispatched, not yet fetched (a chunk's worth at most)
    with precision(proxy), tqdm(total=n, desc=proxy.name, unit="arch", disable=not cfg.progress, leave=False) as bar:

        def fetch():
            for vals, count in pending:
                out.append(np.asarray(jax.device_get(vals), np.float64).reshape(-1)[:count])
                bar.update(count)
            pending.clear()

        for call in calls(proxy, archs, batch, key, space=space, net=net, config=cfg):
            pending.append((call(), call.count))
            if sum(c for _, c in pending) >= cfg.chunk:
                fetch()
        fetch()
    return np.concatenate(out)
