"""Per-block latency tables of the hybrid U-Net, measured on this machine, and candidate
latency as their sum (the lookup-table predictor of ProxylessNAS/OFA/ElasticViT).

A table holds the median wall time (batch 1, float32, jitted, after warm-up) of every part a
candidate is built from, keyed by what fixes its shape: the stem and head per resolution;
per stage, the stride-2 downsampling convolution for each (input width, width) and one block
for each (block type, width, heads, MLP ratio, kernel); per decoder level, each (input width,
output width). A candidate's latency is the sum over its parts (a block counted ``depth``
times). :func:`measure` runs in a child process per thread count (XLA fixes its thread pool
at start), pinned to that many cores, and writes the table to JSON row by row, so a killed
run resumes; it also times whole networks to report the table's error.

    python -m jnas.seg.latency --threads 1 --out runs/latency_t1.json [--space tiny]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from jnas.spaces.hybrid import VARIANTS, HybridSpace


def part_keys(space: HybridSpace, arch) -> list[tuple[str, int]]:
    """``[(table key, count)]`` of the parts of ``arch``."""
    c = space.decode(arch)
    r = c.resolution
    keys = [(f"stem r{r}", 1), (f"head r{r}", 1)]
    prev, widths = space.stem_width, [space.stem_width]
    for s, st in enumerate(c.stages):
        keys.append((f"down r{r} s{s} {prev}->{st.width}", 1))
        keys.append((_block_key(r, s, st.block, st.width, st.heads, st.mlp, st.kernel), st.depth))
        widths.append(st.width)
        prev = st.width
    for i in range(space.stages - 1, -1, -1):
        keys.append((f"dec r{r} l{i} {prev}->{widths[i]}", 1))
        prev = widths[i]
    return keys


def _block_key(r, s, block, width, heads, mlp, kernel) -> str:
    heads = heads if block == "transformer" else 0  # unused genes do not change the block
    mlp = mlp if block != "conv" else 0
    return f"block r{r} s{s} {block} w{width} h{heads} m{mlp} k{kernel}"


def predict(space: HybridSpace, table: dict[str, float], archs) -> np.ndarray:
    """Latency (seconds) of each candidate from ``table``; a missing part is a ValueError."""
    archs = space.check(archs)
    archs = archs[None] if archs.ndim == 1 else archs
    out = []
    for a in archs:
        total = 0.0
        for key, count in part_keys(space, a):
            if key not in table:
                raise ValueError(f"latency table has no entry {key!r}; measure the table for this space "
                                 "(python -m jnas.seg.latency)")
            total += count * table[key]
        out.append(total)
    return np.asarray(out)


def all_parts(space: HybridSpace) -> dict[str, tuple]:
    """Every table key of ``space`` with what builds the part."""
    parts = {}
    for r in space.resolutions:
        parts[f"stem r{r}"] = ("stem", r)
        parts[f"head r{r}"] = ("head", r)
        ins = [space.stem_width]
        for s in range(space.stages):
            side = r // 2 ** (s + 1)
            for w_in in ins:
                for w in space.widths[s]:
                    parts[f"down r{r} s{s} {w_in}->{w}"] = ("down", side * 2, w_in, w)
            for block in space.stage_blocks[s]:
                for w in space.widths[s]:
                    for h in (space.heads if block == "transformer" else (0,)):
                        for m in (space.mlp_ratios if block != "conv" else (0,)):
                            for k in space.kernels:
                                parts[_block_key(r, s, block, w, h, m, k)] = ("block", side, block, w, h, m, k)
            ins = space.widths[s]
        for i in range(space.stages - 1, -1, -1):
            outs = space.widths[i - 1] if i else (space.stem_width,)
            for w_in in space.widths[i]:
                for w in outs:
                    parts[f"dec r{r} l{i} {w_in}->{w}"] = ("dec", r // 2 ** i, w_in, w)
    return parts


def _part_fn(space: HybridSpace, spec: tuple):
    """``(jitted f, x)`` timing one part."""
    import flax.linen as nn
    import jax
    import jax.numpy as jnp

    from functools import partial

    from jnas.nets.hybrid import HybridUNet, _Ctx, conv as plain_conv, upsample2
    from jnas.nets.kernels import conv_fn

    conv = partial(plain_conv, fn=conv_fn("xla"))  # as the networks run them

    kind = spec[0]
    key = jax.random.key(0)
    if kind in ("stem", "head"):
        r = spec[1]
        cin, cout = (3, space.stem_width) if kind == "stem" else (space.stem_width, 1)
        k = 3 if kind == "stem" else 1
        w = jax.random.normal(key, (k, k, cin, cout)) * 0.1
        return jax.jit(lambda x: conv(x, w)), jnp.ones((1, r, r, cin))
    if kind == "down":
        _, side, w_in, w_out = spec
        w = jax.random.normal(key, (3, 3, w_in, w_out)) * 0.1
        return jax.jit(lambda x: conv(x, w, stride=2)), jnp.ones((1, side, side, w_in))
    if kind == "dec":
        _, side, w_in, w_out = spec
        wu = jax.random.normal(key, (3, 3, w_in, w_out)) * 0.1
        ws = jax.random.normal(key, (3, 3, w_out, w_out)) * 0.1
        wc = jax.random.normal(key, (3, 3, w_out, w_out)) * 0.1
        skip = jnp.ones((1, side, side, w_out))

        def dec(x):
            y = jax.nn.relu(conv(upsample2(x), wu) + conv(skip, ws))
            y = y - y.mean(-1, keepdims=True)
            return jax.nn.relu(conv(y, wc))
        return jax.jit(dec), jnp.ones((1, side // 2, side // 2, w_in))
    _, side, block, width, heads, mlp, kernel = spec

    class One(HybridUNet):
        @nn.compact
        def __call__(self, x, arch=None):
            ctx = _Ctx(True, 0, False)
            f = self._block(block, "blk", width, kernel, max(mlp, 1), max(heads, 1), None, None, None, max(heads, 1), ctx)
            return f(x)[0]

    net = One(space)
    x = jnp.ones((1, side, side, width))
    params = net.init(key, x)
    return jax.jit(lambda x: net.apply(params, x)), x


def time_fn(f, x, reps: int = 20) -> float:
    """Median seconds of ``f(x)`` over ``reps`` calls after two warm-up calls."""
    f(x).block_until_ready()
    f(x).block_until_ready()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        f(x).block_until_ready()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _measure_here(space: HybridSpace, out: Path, reps: int, check: int, seed: int) -> None:
    import jax

    from tqdm.auto import tqdm

    from jnas.nets.hybrid import standalone

    table = json.loads(out.read_text())["table"] if out.exists() else {}
    parts = all_parts(space)
    todo = [k for k in parts if k not in table]
    for k in tqdm(todo, desc=f"latency table ({os.environ.get('JNAS_THREADS', '?')} threads)"):
        f, x = _part_fn(space, parts[k])
        table[k] = time_fn(f, x, reps)
        _write(out, table, None)
    archs = np.asarray(space.sample(jax.random.key(seed), check))
    rows = []
    for a in tqdm(archs, desc="whole networks"):
        net = standalone(space, a)
        r = space.decode(a).resolution
        x = jax.numpy.ones((1, r, r, 3))
        params = net.init(jax.random.key(0), x)
        measured = time_fn(jax.jit(lambda x, net=net, params=params: net.apply(params, x)), x, reps)
        rows.append({"arch": space.to_string(a), "measured_s": measured, "table_s": float(predict(space, table, a)[0])})
    _write(out, table, rows)


def _write(out: Path, table: dict, check: list | None) -> None:
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps({"threads": int(os.environ.get("JNAS_THREADS", "0")), "table": table,
                               "whole_networks": check}, indent=1))
    os.replace(tmp, out)


def measure(out: str | Path, threads: int, space: str = "default", reps: int = 20, check: int = 8, seed: int = 0) -> dict:
    """Measure (or finish) the table of the ``space`` variant (:data:`jnas.spaces.hybrid.VARIANTS`)
    at ``threads`` CPU threads in a child process pinned to that many cores; returns the JSON
    content. Resumes from an existing ``out``."""
    out = Path(out)
    if space not in VARIANTS:
        raise ValueError(f"unknown hybrid space {space!r}; valid ones are {sorted(VARIANTS)}")
    done = json.loads(out.read_text()) if out.exists() else {}
    if done.get("whole_networks") is not None and len(done.get("table", {})) >= len(all_parts(VARIANTS[space])):
        return done
    cores = sorted(os.sched_getaffinity(0))
    if not 1 <= threads <= len(cores):
        raise ValueError(f"threads must be in 1..{len(cores)} (the cores this process may use), got {threads}")
    env = dict(os.environ, JNAS_THREADS=str(threads),
               XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") + f" --xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'}"
                          f" intra_op_parallelism_threads={threads}").strip())
    cmd = [sys.executable, "-m", "jnas.seg.latency", "--space", space, "--threads", str(threads), "--out", str(out), "--reps", str(reps),
           "--check", str(check), "--seed", str(seed), "--child"]
    subprocess.run(cmd, env=env, check=True)
    return json.loads(out.read_text())


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--space", default="default", choices=sorted(VARIANTS))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True)
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--check", type=int, default=8, help="whole networks timed to check the table")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: a.threads])
        _measure_here(VARIANTS[a.space], Path(a.out), a.reps, a.check, a.seed)
    else:
        measure(a.out, a.threads, a.space, a.reps, a.check, a.seed)


if __name__ == "__main__":
    main()
