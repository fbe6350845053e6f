"""Score many architectures with one proxy in one jitted call.

Two independent choices, all giving the same numbers:

``mode`` -- how architectures are batched:

* ``"map"``  -- ``jax.lax.map`` over the architectures inside one jit: one compilation, no
  Python between architectures.
* ``"loop"`` -- a Python loop over one jitted single-architecture function (the baseline
  the benchmarks compare against).
* ``"vmap"`` -- ``jax.vmap`` over a chunk of architectures. With shared weights and
  masked edges the chunk becomes one large convolution, which fills a GPU.

``select`` -- how an edge applies its op (see :mod:`jnas.nets.nb201`):

* ``"switch"`` -- only the chosen op runs (``nn.switch``); no wasted FLOPs.
* ``"mask"`` -- every op runs, weighted by the one-hot architecture (~5x the FLOPs of an
  average cell, but straight-line code that ``vmap`` batches well).

Defaults (:func:`default_mode`), from ``python -m experiments.bench_proxies``:
on CPU, ``map`` + ``switch``, except for proxies needing kernel gradients: ``loop`` +
``switch`` for snip and grad_norm (with written-out conv gradients, see ``conv_grads``
below), and ``loop`` + ``mask`` for grasp, whose Hessian-vector product needs forward mode
and so JAX's own kernel-gradient convolutions, which XLA:CPU runs 3-25x slower inside
control flow than in straight-line code; on GPU, ``vmap`` + ``mask``.

``init`` -- where the weights come from:

* ``"shared"`` (default) -- one initialisation from ``key`` serves every architecture
  (weight sharing), so scores differ only through the architecture;
* ``"per_arch"`` -- each architecture gets its own initialisation from
  ``fold_in(key, base-5 index)``, as when every network is built and initialised anew (the
  zero-cost proxies' reference code). Scores then carry initialisation noise.

``conv_grads`` -- how the convolutions are differentiated (:mod:`jnas.nets.conv`):

* ``"explicit"`` -- backward passes written out as forward convolutions, which XLA:CPU
  runs 3-25x faster inside ``lax.switch``/``lax.map`` than the ones autodiff derives, and
  for training-mode BatchNorm (:class:`jnas.nets.layers.ExplicitBatchNorm`: one residual
  instead of two, which inside ``lax.switch`` every other branch also fills with zeros;
  jacob_cov 2.98 -> 3.79 cells/s, interleaved in one process on 32 cells).
  Reverse mode only; the default on CPU for proxies marked ``reverse_only``;
* ``"xla"`` -- JAX's own; the default elsewhere (GPU, and synflow and grasp, which use
  ``jax.jvp``).

``conv_library`` -- which library runs the convolutions on CPU, a compile option of the
scoring jits (:func:`jnas.nets.conv.compiler_options`):

* ``"ynnpack"`` -- XLA:CPU's default;
* ``"eigen"`` -- XLA's own Eigen convolutions (YNNPACK keeps dots and reductions). The
  default on CPU for proxies with ``cpu_conv_library="eigen"``: naswot and jacob_cov, whose
  stage-2/3 forward convolutions run ~1.7x faster there. synflow's one-image float64
  network scored 4x slower in Eigen; fisher and jacob_perclass gained nothing beyond noise,
  and the kernel-gradient proxies (snip, grad_norm, grasp) were not measured cleanly.

Under ``"switch"`` the network also skips the ops of edges whose output nothing reads
(:attr:`jnas.nets.NB201Network.skip_unread`), which no score depends on.

Either way a score depends only on ``(architecture, key, batch, init)``, never on which
other architectures share a chunk or on the mode (``conv_grads`` and ``conv_library``
change float rounding only).
"""

from __future__ import annotations

import contextlib
from functools import cache, partial
from typing import Callable, Iterator, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from tqdm.auto import tqdm

from jnas.nets.conv import CONV_LIBRARIES, check_conv_grads, compiler_options
from jnas.nets.nb201 import NB201Network
from jnas.proxies.base import Proxy
from jnas.spaces import nb201 as space

MODES = ("map", "loop", "vmap")
SELECTS = ("switch", "mask")
INITS = ("shared", "per_arch")


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


def _one(proxy: Proxy, net: nn.Module, variables, arch, x, y):
    return proxy.fn(net, variables, arch, x, y)


def _variables(net: nn.Module, variables, key, a, x):
    """Shared ``variables``, or (``variables is None``) a fresh init for this architecture."""
    return net.init(jax.random.fold_in(key, space.to_index(a)), x, a) if variables is None else variables


def _one_own(proxy: Proxy, net: nn.Module, key, arch, x, y):
    return proxy.fn(net, _variables(net, None, key, arch, x), arch, x, y)


def _map(proxy: Proxy, net: nn.Module, variables, key, archs, x, y):
    return jax.lax.map(lambda a: proxy.fn(net, _variables(net, variables, key, a, x), a, x, y), archs)


def _vmap(proxy: Proxy, net: nn.Module, variables, key, archs, x, y):
    return jax.vmap(lambda a: proxy.fn(net, _variables(net, variables, key, a, x), a, x, y))(archs)


@cache
def _jit(fn: Callable, conv_library: str) -> Callable:
    """``fn`` jitted with ``proxy`` and ``net`` static, its CPU convolutions in ``conv_library``."""
    return jax.jit(fn, static_argnames=("proxy", "net"), compiler_options=compiler_options(conv_library))


@cache
def _mesh(devices: int) -> Mesh:
    """The first ``devices`` local devices as a one-axis mesh over which archs are split
    (one object per count: :func:`calls` places its inputs on the mesh the jitted function
    was built with)."""
    return Mesh(np.array(jax.local_devices()[:devices]), ("archs",))


@cache
def _jit_split(fn: Callable, conv_library: str, devices: int) -> Callable:
    """:func:`_jit` of ``fn`` (``_map`` or ``_vmap``) with each chunk's architectures split
    evenly over ``devices`` local devices (``shard_map``); everything else is replicated."""
    mesh = _mesh(devices)

    def split(proxy, net, variables, key, archs, x, y):
        local = lambda variables, key, archs, x, y: fn(proxy, net, variables, key, archs, x, y)
        spec = (PartitionSpec(), PartitionSpec(), PartitionSpec("archs"), PartitionSpec(), PartitionSpec())
        # check_vma=False: the networks' lax.cond/switch branches mix per-device and replicated
        # values, which shard_map's type check would otherwise make them mark by hand.
        return jax.shard_map(local, mesh=mesh, in_specs=spec, out_specs=PartitionSpec("archs"), check_vma=False)(
            variables, key, archs, x, y)

    return jax.jit(split, static_argnames=("proxy", "net"), compiler_options=compiler_options(conv_library))


@partial(jax.jit, static_argnames=("proxy", "net"))
def score_one(proxy: Proxy, net: nn.Module, variables, arch, x, y):
    """One architecture with XLA's default compile options; the unit the ``"loop"`` mode repeats."""
    return _one(proxy, net, variables, arch, x, y)


def prepare(proxy: Proxy, net: nn.Module, select: str, key, x, arch0, conv_grads: str = "xla"):
    """The network a proxy runs on with edge selection ``select``, and its variables.

    Under ``"switch"`` the network skips ops whose output nothing reads
    (:attr:`jnas.nets.NB201Network.skip_unread`): no proxy can see them, and the BatchNorm
    statistics they would update are discarded here."""
    net = proxy.configure(net.clone(select=select))
    if hasattr(net, "conv_grads"):
        net = net.clone(conv_grads=conv_grads)
    if hasattr(net, "skip_unread"):
        net = net.clone(skip_unread=select == "switch")
    with precision(proxy):
        if proxy.reads_weights:
            variables = _init(net, key, x, arch0)
        else:  # computed from the network's structure: no initialisation to compile
            variables = {}
    return net, variables


def precision(proxy: Proxy):
    """Context enabling float64 for proxies whose reference implementation uses it."""
    return jax.enable_x64(True) if proxy.float64 else contextlib.nullcontext()


def check_batch(x, y) -> tuple[jax.Array, jax.Array]:
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 4:
        raise ValueError(f"proxy input images must have shape (b, h, w, c), got {x.shape}")
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


def calls(
    proxy: Proxy,
    archs,
    batch: tuple,
    key: jax.Array,
    *,
    net: nn.Module | None = None,
    mode: str | None = None,
    select: str | None = None,
    chunk: int = 16,
    init: str = "shared",
    conv_grads: str | None = None,
    conv_library: str | None = None,
    devices: int | None = None,
) -> Iterator[Call]:
    """The jitted calls that :func:`score` makes, in order, after validating its arguments
    (same arguments; run them under :func:`precision`). Exposed so that tools such as
    ``experiments.profile_proxies`` can lower and trace exactly what ``score`` runs."""
    auto_mode, auto_select = default_mode(proxy)
    mode = auto_mode if mode is None else mode
    select = (auto_select if mode == auto_mode else ("mask" if mode == "vmap" else "switch")) if select is None else select
    if mode not in MODES:
        raise ValueError(f"unknown batching mode {mode!r}; valid modes are {list(MODES)}")
    if select not in SELECTS:
        raise ValueError(f"unknown edge selection {select!r}; valid choices are {list(SELECTS)}")
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; valid choices are {list(INITS)}")
    conv_grads = default_conv_grads(proxy) if conv_grads is None else conv_grads
    check_conv_grads(conv_grads)
    if conv_grads == "explicit" and not proxy.reverse_only:
        raise ValueError(f"proxy {proxy.name!r} uses forward-mode differentiation; conv_grads='explicit' supports reverse mode only")
    conv_library = default_conv_library(proxy) if conv_library is None else conv_library
    if conv_library not in CONV_LIBRARIES:
        raise ValueError(f"unknown conv_library {conv_library!r}; valid choices are {list(CONV_LIBRARIES)}")
    if not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be a positive int, got {chunk!r}")
    available = jax.local_device_count()
    devices = available if devices is None else devices
    if not isinstance(devices, int) or not 1 <= devices <= available:
        raise ValueError(f"devices must be an int in 1..{available} (the local {jax.default_backend()} devices), got {devices!r}")
    devices = 1 if mode == "loop" else devices
    chunk = -(-chunk // devices) * devices  # each device gets the same number of archs
    archs = space.check_batch(archs)
    x, y = check_batch(*batch)
    net = NB201Network() if net is None else net
    if int(y.max()) >= net.num_classes or int(y.min()) < 0:
        raise ValueError(f"labels must lie in 0..{net.num_classes - 1} (the network's classes), got {int(y.min())}..{int(y.max())}")
    net, variables = prepare(proxy, net, select, key, x, archs[0], conv_grads)
    if init == "per_arch" and proxy.reads_weights:  # structure-only proxies need no weights at all
        variables = None
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
                    yield Call(_jit(_one_own, conv_library), (proxy, net), (key, a, x, y), 1)
                else:
                    yield Call(_jit(_one, conv_library), (proxy, net), (variables, a, x, y), 1)
        else:
            pad = chunk - part.shape[0]  # keep one compiled shape for the last chunk
            padded = jnp.concatenate([part, jnp.repeat(part[:1], pad, 0)]) if pad else part
            if split is not None:
                padded = jax.device_put(padded, split)
            yield Call(jitted, (proxy, net), (variables, key, padded, x, y), part.shape[0])


def score(
    proxy: Proxy,
    archs,
    batch: tuple,
    key: jax.Array,
    *,
    net: nn.Module | None = None,
    mode: str | None = None,
    select: str | None = None,
    chunk: int = 16,
    init: str = "shared",
    conv_grads: str | None = None,
    conv_library: str | None = None,
    devices: int | None = None,
    progress: bool = True,
) -> np.ndarray:
    """Proxy scores of a batch of NB201 architectures.

    Args:
      proxy: a :class:`Proxy` (see :func:`jnas.proxies.get`).
      archs: ``(n, 6)`` op indices (or one ``(6,)``).
      batch: ``(x, y)`` images ``(b, h, w, c)`` and integer labels ``(b,)``; data-free
        proxies use only the shape of ``x``.
      key: PRNG key of the network initialisation(s).
      net: base network (default ``NB201Network()``: the benchmark's CIFAR-10 network).
      mode: ``"map"``, ``"loop"`` or ``"vmap"``; default from :func:`default_mode`.
      select: ``"switch"`` or ``"mask"``; default from :func:`default_mode`.
      chunk: architectures per jitted call (bounds memory; progress granularity).
      init: ``"shared"`` (one initialisation) or ``"per_arch"`` (one per architecture).
      conv_grads: ``"xla"`` or ``"explicit"``; default from :func:`default_conv_grads`.
      conv_library: ``"ynnpack"`` or ``"eigen"`` (CPU only); default from
        :func:`default_conv_library`.
      devices: local devices each ``"map"``/``"vmap"`` chunk is split over (default: all
        of them; ``chunk`` is rounded up to a multiple). ``"loop"`` runs on the default device.
      progress: show a tqdm bar.
    Returns:
      float64 numpy array ``(n,)``.
    Raises:
      ValueError: bad mode, init, conv_grads, conv_library, chunk, devices, architectures or
        batch shapes.
    """
    n = space.check_batch(archs).shape[0]
    out, pending = [], []  # pending: dispatched, not yet fetched (a chunk's worth at most)
    kw = dict(net=net, mode=mode, select=select, chunk=chunk, init=init, conv_grads=conv_grads, conv_library=conv_library,
              devices=devices)
    with precision(proxy), tqdm(total=n, desc=proxy.name, unit="arch", disable=not progress, leave=False) as bar:

        def fetch():
            for vals, count in pending:
                out.append(np.asarray(jax.device_get(vals), np.float64).reshape(-1)[:count])
                bar.update(count)
            pending.clear()

        for call in calls(proxy, archs, batch, key, **kw):
            pending.append((call(), call.count))
            if sum(c for _, c in pending) >= chunk:
                fetch()
        fetch()
    return np.concatenate(out)
