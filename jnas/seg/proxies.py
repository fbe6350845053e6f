"""Zero-cost proxies for dense prediction, scored on the elastic hybrid supernet
(:class:`jnas.nets.hybrid.HybridUNet`) for many candidates in one jitted call.

Every proxy is ``fn(net, params, arch, x, y, key) -> scalar`` on the supernet with weights
shared by all candidates (one initialisation from ``key``), higher is better:

* ``naswot_pixel``: NASWOT (Mellor et al., ICML 2021) with pixels as the samples: the binary
  codes of every ReLU/GELU (active channels only) at a 4x4 grid of pixels of each image, the
  kernel ``K`` of code agreements over ``images x 16`` pixels, score ``log det(K + I)``. A
  segmentation network must tell pixels apart, not images; the ridge of one agreement keeps
  the kernel invertible where two pixels see identical receptive fields (uniform background).
* ``jacob_cov`` (Mellor et al. 2020, arXiv 2006.04647 v1): eigenvalues ``v`` of the
  correlation of per-image input Jacobians of the summed logit map,
  ``-sum(log(v + 1e-5) + 1 / (v + 1e-5))``.
* ``synflow`` (Tanaka et al., NeurIPS 2020): without normalisation, ``|theta|``, an all-ones
  image, ``R = sum f(1)``; ``log sum theta * dR/dtheta`` over kernels, in float64 (the log
  keeps the ranks and fits float32: the sum reaches 1e37).
* ``zen`` (Zen-NAS, Lin et al., ICCV 2021): weights ``N(0, 1)``, Gaussian images ``x``,
  ``log E||F(x) - F(x + 0.01 e)||`` of the pre-head feature map ``F`` plus the sum of
  ``log sqrt(mean variance)`` of every normalisation's input (Zen-NAS's BatchNorm term;
  jnas's networks normalise per pixel).
* ``dss`` (TF-TAS, Zhou et al., CVPR 2022): synaptic diversity of the attention projections,
  ``sum ||dL/dW||_nuc * ||W||_nuc`` over the active ``width x width`` block of each q/k/v/o
  matrix, plus synaptic saliency ``sum |theta * dL/dtheta|`` of every other kernel (TF-TAS
  sums it over the MLPs; a hybrid network's convolutions are scored the same way), with
  ``L`` the Dice + BCE loss on a real batch.
* ``flops`` and ``params``: analytic (:func:`jnas.nets.hybrid.cost`), not batched.

:func:`aggregate` combines several by AZ-NAS's non-linear rank aggregation (Lee & Ham, CVPR
2024): ``sum_p log(rank_p / N)`` against a reference pool of scores, so a candidate must do
well on every proxy; this is jnas's reading of the application note's "better proxy that
tells Transformers apart" (BossNAS++).
"""

from __future__ import annotations

import contextlib
from functools import cache, partial
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray
from tqdm.auto import tqdm

from jnas.nets.hybrid import HybridUNet, cost
from jnas.proxies.jacobian import row_correlation
from jnas.seg.train import loss_terms
from jnas.spaces.hybrid import HybridSpace

MODES = ("map", "vmap", "loop")
ZEN_ALPHA = 0.01


def is_kernel(path) -> bool:
    name = str(getattr(path[-1], "key", path[-1]))
    return not (name.endswith("_g") or name.endswith("_b") or name.endswith("bias"))


def naswot_pixel(net, params, arch, x, y, key):
    _, taps = net.clone(taps=True).apply({"params": params}, x, arch)
    k = taps.codes.astype(jnp.float64 if jax.config.jax_enable_x64 else jnp.float32)
    return jnp.linalg.slogdet(k + jnp.eye(k.shape[0], dtype=k.dtype))[1]


def jacob_cov(net, params, arch, x, y, key):
    out, vjp = jax.vjp(lambda x: net.apply({"params": params}, x, arch), x)
    jac = vjp(jnp.ones_like(out))[0].reshape(x.shape[0], -1)
    v = jnp.linalg.eigvalsh(row_correlation(jac))
    return -jnp.sum(jnp.log(v + 1e-5) + 1.0 / (v + 1e-5))


def synflow(net, params, arch, x, y, key):
    dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    plain = net.clone(use_norm=False)
    p = jax.tree.map(lambda t: jnp.abs(t).astype(dtype), params)
    ones = jnp.ones((1,) + x.shape[1:], dtype)
    along = jax.tree_util.tree_map_with_path(lambda path, t: t if is_kernel(path) else jnp.zeros_like(t), p)
    total = lambda q: jnp.sum(plain.apply({"params": q}, ones, arch))  # noqa: E731
    # log: the same ranks, and a float32-safe value (the sum reaches 1e37 at the default sizes)
    return jnp.log(jax.jvp(total, (p,), (along,))[1])


def gaussian_params(params, key):
    """Kernels ``N(0, 1)``, norm gains 1 and biases 0 (Zen-NAS's initialisation)."""
    leaves, tree = jax.tree_util.tree_flatten_with_path(params)
    keys = jax.random.split(key, len(leaves))
    out = []
    for k, (path, leaf) in zip(keys, leaves):
        name = str(getattr(path[-1], "key", path[-1]))
        out.append(jax.random.normal(k, leaf.shape, leaf.dtype) if is_kernel(path)
                   else (jnp.ones_like(leaf) if name.endswith("_g") else jnp.zeros_like(leaf)))
    return jax.tree.unflatten(tree, out)


def zen(net, params, arch, x, y, key):
    k_w, k_x, k_e = jax.random.split(key, 3)
    p = gaussian_params(params, k_w)
    tapped = net.clone(taps=True, probe=0)
    g = jax.random.normal(k_x, x.shape, x.dtype)
    e = jax.random.normal(k_e, x.shape, x.dtype)
    _, t1 = tapped.apply({"params": p}, g, arch)
    _, t2 = tapped.apply({"params": p}, g + ZEN_ALPHA * e, arch)
    delta = jnp.sqrt(jnp.sum((t1.features - t2.features) ** 2, axis=(1, 2, 3))).mean()
    return jnp.log(delta + 1e-12) + t1.log_std


def attention_masks(space: HybridSpace, params, arch):
    """``{path: (W, W) mask}`` of the active block of every q/k/v/o matrix for ``arch``."""
    widths = jnp.asarray(space.lookup("width"))
    out = {}
    for name, leaf in params.items():
        parts = name.split("_")
        if len(parts) == 4 and parts[2] == "transformer" and parts[3] in ("q", "k", "v", "o"):
            s = int(parts[0][1:])
            m = (jnp.arange(leaf.shape[0]) < widths[s, arch[space.gene(s, "width")]]).astype(leaf.dtype)
            out[name] = m[:, None] * m[None, :]
    return out


def dss(net, params, arch, x, y, key):
    # written-out weight gradients on CPU: XLA:CPU's backward-filter convolutions inside lax.map
    # measured 2.7x slower over the whole proxy (docs/segmentation.md)
    net = net.clone(conv_grads="explicit") if jax.default_backend() == "cpu" else net
    grads = jax.grad(lambda p: loss_terms(net.apply({"params": p}, x, arch), y)[0])(params)
    masks = attention_masks(net.space, params, arch) if net.fixed is None else {
        n: jnp.ones_like(v) for n, v in params.items() if n.split("_")[-1] in ("q", "k", "v", "o") and "transformer" in n}
    nuc = lambda a: jnp.sum(jnp.linalg.svd(a, compute_uv=False))  # noqa: E731
    diversity = sum((nuc(grads[n] * m) * nuc(params[n] * m) for n, m in masks.items()), jnp.zeros(()))
    saliency = jnp.zeros(())
    for n, w in params.items():
        if n not in masks and is_kernel([n]):
            saliency = saliency + jnp.sum(jnp.abs(w * grads[n]))
    return diversity + saliency


PROXIES: dict[str, Callable] = {"naswot_pixel": naswot_pixel, "jacob_cov": jacob_cov, "synflow": synflow,
                                "zen": zen, "dss": dss}
FLOAT64 = ("naswot_pixel", "synflow")


def names() -> list[str]:
    return list(PROXIES)


def check_names(chosen: Sequence[str]) -> tuple[str, ...]:
    bad = [n for n in chosen if n not in PROXIES]
    if bad or not chosen:
        raise ValueError(f"unknown dense proxy name(s) {bad or chosen}; valid proxies are {names()}")
    return tuple(chosen)


def _vector(chosen: tuple[str, ...], net, params, arch, x, y, key):
    return jnp.stack([PROXIES[n](net, params, arch, x, y, jax.random.fold_in(key, i)).astype(jnp.float32)
                      for i, n in enumerate(chosen)])


@cache
def _jitted(chosen: tuple[str, ...], net: HybridUNet, mode: str):
    one = partial(_vector, chosen, net)
    if mode == "loop":
        return jax.jit(one)
    if mode == "vmap":
        return jax.jit(lambda p, archs, x, y, k: jax.vmap(lambda a: one(p, a, x, y, k))(archs))
    return jax.jit(lambda p, archs, x, y, k: jax.lax.map(lambda a: one(p, a, x, y, k), archs))


def _precision(chosen):
    return jax.enable_x64(True) if any(n in FLOAT64 for n in chosen) else contextlib.nullcontext()


def score(chosen: Sequence[str], space: HybridSpace, archs, images: dict[int, tuple[np.ndarray, np.ndarray]],
          key: PRNGKeyArray, mode: str = "map", chunk: int = 16, progress: bool = True,
          params: dict | None = None) -> np.ndarray:
    """Scores ``(n, len(chosen))`` of ``archs`` on the supernet of ``space``.

    Args:
      chosen: proxy names (:data:`PROXIES`).
      archs: ``(n, genes)`` architectures (validated; a bad gene is a ValueError naming it).
      images: resolution -> ``(x (b, r, r, 3), y (b, r, r))``, one batch per resolution of the
        space (each candidate is scored at its own resolution).
      key: the shared initialisation and the proxies' noise.
      mode: ``"map"`` (``lax.map`` in one jit), ``"vmap"`` or ``"loop"`` (one jitted
        candidate at a time, the baseline); every mode gives the same scores. A group of at
        most ``chunk // 2`` candidates (per resolution) is scored one by one in every mode.
      params: supernet weights (default: ``net.init`` from ``key``).
    """
    chosen = check_names(tuple(chosen))
    if mode not in MODES:
        raise ValueError(f"unknown batching mode {mode!r}; valid modes are {list(MODES)}")
    if not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be a positive int, got {chunk!r}")
    archs = space.check(archs)
    archs = archs[None] if archs.ndim == 1 else archs
    res = np.asarray(space.resolutions)[archs[:, 0]]
    for r in np.unique(res):
        if int(r) not in images:
            raise ValueError(f"no image batch at resolution {int(r)}; give one per resolution of the space {space.resolutions}")
        x, y = images[int(r)]
        if x.ndim != 4 or x.shape[1:3] != (r, r) or y.shape != x.shape[:3]:
            raise ValueError(f"images at resolution {int(r)} must be (b, {r}, {r}, c) with masks (b, {r}, {r}); "
                             f"got {x.shape} and {y.shape}")
    net = HybridUNet(space)
    k_init, k_score = jax.random.split(key)
    out = np.zeros((len(archs), len(chosen)))
    params = init_params(space, k_init) if params is None else params  # float32, outside x64
    with _precision(chosen):
        fn = _jitted(chosen, net, mode)
        with tqdm(total=len(archs), desc="dense proxies", disable=not progress, leave=False) as bar:
            for r in np.unique(res):
                idx = np.flatnonzero(res == r)
                x, y = (jnp.asarray(a, jnp.float32) for a in images[int(r)])
                for start in range(0, len(idx), chunk):
                    part = idx[start:start + chunk]
                    # a short last chunk (a search step scoring a few children) goes one by one:
                    # padding it to ``chunk`` would cost up to ``chunk`` times its work
                    if mode == "loop" or 2 * len(part) <= chunk:
                        one = _jitted(chosen, net, "loop")  # cached; compiles on its first call
                        vals = np.stack([np.asarray(one(params, jnp.asarray(archs[i]), x, y, k_score)) for i in part])
                    else:
                        padded = np.concatenate([part, np.repeat(part[:1], chunk - len(part))])
                        vals = np.asarray(fn(params, jnp.asarray(archs[padded]), x, y, k_score))[:len(part)]
                    out[part] = vals
                    bar.update(len(part))
    return out


def init_params(space: HybridSpace, key: PRNGKeyArray, resolution: int | None = None) -> dict:
    """Supernet weights (shared by every candidate) from ``key``."""
    r = min(space.resolutions) if resolution is None else resolution
    arch = jnp.zeros(space.arch_shape, jnp.int32)
    return jax.jit(HybridUNet(space).init)(key, jnp.zeros((1, r, r, 3)), arch)["params"]


def aggregate(scores: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """AZ-NAS rank aggregation ``sum_p log(F_p(s_p))`` with ``F_p`` the empirical CDF of proxy
    ``p`` over the ``reference`` pool ``(N, P)`` (at least ``1/N``); non-finite scores count
    as the worst."""
    scores, reference = np.atleast_2d(scores), np.atleast_2d(reference)
    if scores.shape[1] != reference.shape[1]:
        raise ValueError(f"scores have {scores.shape[1]} proxies, the reference {reference.shape[1]}")
    n = reference.shape[0]
    total = np.zeros(scores.shape[0])
    for p in range(scores.shape[1]):
        ref = np.sort(np.where(np.isfinite(reference[:, p]), reference[:, p], -np.inf))
        s = np.where(np.isfinite(scores[:, p]), scores[:, p], -np.inf)
        cdf = np.searchsorted(ref, s, side="right") / n
        total += np.log(np.maximum(cdf, 1.0 / n))
    return total


def analytic(space: HybridSpace, archs) -> np.ndarray:
    """``(n, 2)`` analytic ``(params, flops)`` per candidate."""
    archs = space.check(archs)
    archs = archs[None] if archs.ndim == 1 else archs
    return np.asarray([tuple(cost(space, a)) for a in archs], np.float64)
