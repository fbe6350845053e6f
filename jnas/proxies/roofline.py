"""The FLOP bound that proxy-scoring speed is read against: how many network passes each
proxy makes, the MACs of the architectures scored, and this machine's measured matmul and
convolution rates. Used by ``experiments.bench_proxies`` and ``experiments.profile_proxies``
(docs/performance.md)."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp

from jnas.nets import arch_cost

# Proxies whose network runs in float64 (naswot only takes its log-determinant in float64).
FLOAT64_NETWORK = {"synflow"}
# Network passes per score, counting a backward pass as 2 forwards when it produces
# weight gradients and 1 when it stops at the input/activations.
PASSES = {"naswot": 1, "jacob_cov": 2, "jacob_perclass": 2, "fisher": 2, "synflow": 3, "snip": 3, "grad_norm": 3, "grasp": 7}


def network_dtype(name: str) -> str:
    """The float type the proxy's network runs in (float64 for :data:`FLOAT64_NETWORK`)."""
    return "float64" if name in FLOAT64_NETWORK else "float32"


def flop_bound_s(name: str, archs, batch_size: int, costs: dict, gflops: float) -> float:
    """Seconds the architectures' MACs (x 2 FLOPs, x batch, x the proxy's :data:`PASSES`)
    would take at ``gflops``: the FLOP bound the measured times are read against."""
    macs = float(jnp.sum(arch_cost(costs["macs_fixed"], costs["macs_per_op"], archs)))
    return macs * 2 * batch_size * PASSES.get(name, 1) / (gflops * 1e9)


def seconds_per_call(f, args, reps: int) -> float:
    """Mean seconds per call of jitted ``f(*args)`` over ``reps`` calls, after a warm-up call."""
    jax.block_until_ready(f(*args))
    t = time.perf_counter()
    for _ in range(reps):
        r = f(*args)
    jax.block_until_ready(r)
    return (time.perf_counter() - t) / reps


def _rate(f, args, flops: float, reps: int, trials: int = 5) -> float:
    """Best GFLOP/s of jitted ``f(*args)`` doing ``flops`` per call over ``trials`` timings of
    ``reps`` calls: the reference rates the proxies are measured against are peaks, so a
    slow trial (another process on a shared core) must not lower them."""
    return flops / min(seconds_per_call(f, args, reps) for _ in range(trials)) / 1e9


def matmul_gflops(n: int = 2048, reps: int = 10, dtype=jnp.float32) -> float:
    """Measured n x n matmul rate of the default device in ``dtype``, GFLOP/s (smaller ``n``
    measures faster and lower: the benchmarks' ``--matmul-n``)."""
    with jax.enable_x64(dtype == jnp.float64):
        a = jax.random.normal(jax.random.key(0), (n, n), dtype)
        return _rate(jax.jit(lambda a: a @ a), (a,), 2 * n**3, reps)


def conv_gflops(batch: int = 64, side: int = 32, channels: int = 16, reps: int = 20) -> float:
    """Measured float32 rate of one 3x3 'SAME' convolution of NB201's first stage, GFLOP/s."""
    kx, kw = jax.random.split(jax.random.key(0))
    x = jax.random.normal(kx, (batch, side, side, channels), jnp.float32)
    w = jax.random.normal(kw, (3, 3, channels, channels), jnp.float32)
    conv = jax.jit(lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")))
    return _rate(conv, (x, w), 2 * batch * side * side * channels * channels * 9, reps)
