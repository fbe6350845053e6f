"""Where a zero-cost proxy's time goes, op by op, and what that allows against the FLOP bound.

    python -m experiments.profile_proxies --data-dir ../shared/data --out runs/profile_proxies

For each proxy, compiles exactly the calls :func:`jnas.proxies.scoring.score` makes for N
random NB201 cells (``--mode``/``--select``/``--conv-grads``, default: the backend's
defaults), times one run, then traces one more with ``jax.profiler`` and charges each XLA
op its own time (its span minus the ops nested in it, e.g. the body of a ``lax.switch``
branch; where ops run on several threads at once, their common time is split among them,
see :func:`wall_charges`). Ops are grouped by what the optimised HLO says they compute:
``convolution``, ``matmul`` (dots: NASWOT's kernel, and the 1x1 convolutions, which run as
matmuls on CPU), ``fused elementwise/reduce`` (BatchNorm, ReLU, pooling, node sums),
``copy/layout``, ``control flow`` and ``other``; ``untraced`` is the rest of the wall time,
outside any traced op. Shares are of traced op time plus untraced time.

The fraction of the FLOP bound is the one ``experiments.bench_proxies`` reports (the
table's MACs x 2 x batch x passes over a measured matmul rate). Trace shares cannot say how
much of the time the convolutions take when Eigen runs them on its thread pool while other
ops run (the ops beside them slow down, and their launch is all the trace holds), so the
convolutions' time is measured instead: the same calls are compiled and timed once more
with every convolution and channel matmul of :mod:`jnas.nets.kernels` replaced by a stand-in
that materialises its input and writes an output of the right shape from one element of it
(:func:`stand_in_convolutions`). ``conv_s`` is the wall time minus that convolution-free
time; ``ceiling`` is the FLOP bound over ``conv_s``, the fraction the proxy would reach if
every other op took no time at all, with the convolutions as fast as they run now.

Writes ``profile.json`` (one record per proxy, written as each finishes), ``ops.csv`` (the
ops with the most time) and ``profile.png`` (time shares per proxy). About 5 minutes on a
2-core CPU with the defaults.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import re
import tempfile
import time
import types
from pathlib import Path
from typing import Sequence

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from tqdm.auto import tqdm

from experiments.common import parse, prepare_out, save_figure, write_csv
from jnas import proxies
from jnas.data import load_cifar10_subset
from jnas.nets import NB201Network, cost_tables
from jnas.nets import kernels as conv_module
from jnas.proxies import scoring
from jnas.proxies.roofline import PASSES, flop_bound_s, matmul_gflops, network_dtype
from jnas.spaces import nb201 as space
from jnas.records import write_json

CATEGORIES = ("convolution", "matmul", "fused elementwise/reduce", "copy/layout", "control flow", "other", "untraced")
_OPCODE = {"convolution": "convolution", "dot": "matmul", "copy": "copy/layout", "transpose": "copy/layout",
           "conditional": "control flow", "while": "control flow", "call": "control flow"}
_CALLED = re.compile(r"(?:calls|to_apply|body|condition)=%?([\w.\-]+)|branch_computations=\{([^}]*)\}")


@dataclasses.dataclass(frozen=True)
class Config:
    proxies: str = dataclasses.field(default="naswot,jacob_cov,synflow", metadata={"help": "comma list or 'all'"})
    n: int = dataclasses.field(default=16, metadata={"help": "random architectures scored per proxy"})
    mode: str = dataclasses.field(default="", metadata={"help": "map, loop or vmap ('' = backend default)"})
    select: str = dataclasses.field(default="", metadata={"help": "switch or mask ('' = default)"})
    conv_grads: str = dataclasses.field(default="", metadata={"help": "xla or explicit ('' = default)"})
    conv_library: str = dataclasses.field(default="", metadata={"help": "ynnpack or eigen ('' = default)"})
    chunk: int = dataclasses.field(default=16, metadata={"help": "architectures per jitted call (map/vmap)"})
    C: int = dataclasses.field(default=16, metadata={"help": "channels of the first stage (16: the benchmark's)"})
    N: int = dataclasses.field(default=5, metadata={"help": "cells per stage (5: the benchmark's)"})
    top: int = dataclasses.field(default=30, metadata={"help": "ops per proxy listed in ops.csv"})
    matmul_n: int = dataclasses.field(default=2048, metadata={"help": "side of the matmul that measures the machine's peak rate"})
    data_dir: str | None = dataclasses.field(default=None, metadata={"help": "data root (else $JNAS_DATA)"})
    out: str = dataclasses.field(default="runs/profile_proxies", metadata={"help": "output folder"})
    seed: int = 0


def _instruction(line: str) -> tuple[str, str, str] | None:
    """``(name, opcode, rest)`` of one HLO instruction line, else None."""
    m = re.match(r"\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*", line)
    if not m:
        return None
    rest = line[m.end():]
    if rest.startswith("("):  # tuple shape: skip the balanced parentheses
        depth = 0
        for i, ch in enumerate(rest):
            depth += {"(": 1, ")": -1}.get(ch, 0)
            if depth == 0:
                rest = rest[i + 1:]
                break
    else:
        rest = rest.split(" ", 1)[1] if " " in rest else ""
    op = re.match(r"\s*([\w\-]+)\(", rest)
    return (m.group(1), op.group(1), rest) if op else None


def hlo_categories(hlo_text: str) -> dict[str, str]:
    """Instruction name -> category (one of :data:`CATEGORIES`) for an optimised HLO module.

    A fusion (XLA:CPU wraps library convolutions and matmuls in fusions too) takes the
    category of the heaviest op among the computations it calls: convolution, then dot.
    """
    comps: dict[str, list[tuple[str, str, str]]] = {}
    current = None
    for line in hlo_text.splitlines():
        head = re.match(r"(?:ENTRY\s+)?%?([\w.\-]+)\s*\(.*\)\s*->.*\{\s*$", line)
        if head:
            current = comps.setdefault(head.group(1), [])
        elif current is not None and (ins := _instruction(line)):
            current.append(ins)

    def callees(rest: str) -> list[str]:
        """Computations an instruction calls (fusion bodies, branches, loop bodies)."""
        return [c for single, many in _CALLED.findall(rest)
                for c in ([single] if single else re.findall(r"%?([\w.\-]+)", many))]

    def opcodes(comp: str, seen: set) -> set[str]:
        if comp in seen or comp not in comps:
            return set()
        seen.add(comp)
        found = set()
        for _, op, rest in comps[comp]:
            found.add(op)
            for c in callees(rest):
                found |= opcodes(c, seen)
        return found

    out = {}
    for instrs in comps.values():
        for name, op, rest in instrs:
            if op == "fusion":
                inner = set().union(*(opcodes(c, set()) for c in callees(rest)))
                out[name] = ("convolution" if "convolution" in inner else "matmul" if "dot" in inner
                             else "fused elementwise/reduce")
            else:
                out[name] = _OPCODE.get(op, "other")
    return out


def self_times(xspace_path: str | Path, module: str) -> dict[str, float]:
    """Seconds of wall time charged to each XLA op of ``module`` in a profiler trace (see
    :func:`wall_charges`)."""
    data = jax.profiler.ProfileData.from_file(str(xspace_path))
    lines = []
    for plane in data.planes:
        for line in plane.lines:
            events = []
            for e in line.events:
                stats = dict(e.stats)
                if stats.get("hlo_module") == module and "hlo_op" in stats:
                    events.append((e.start_ns, e.duration_ns, stats["hlo_op"]))
            if events:
                lines.append(events)
    return {op: t * 1e-9 for op, t in wall_charges(lines).items()}


def wall_charges(lines: Sequence[Sequence[tuple[int, int, str]]]) -> dict[str, float]:
    """Time charged to each op, from ``(start, duration, op)`` events on trace lines (threads).

    On its line an op is charged while it is the innermost event, so a conditional's own
    time is its span minus the ops of its branch. XLA:CPU runs independent ops on several
    threads at once; time in which ops run on k lines together is split equally among
    them (1/k each), so the charges add up to the time in which any op ran, never more
    than the wall time. Summing each line's own times instead counts overlapping ops twice.
    """
    segments = [seg for events in lines for seg in _innermost(events) if seg[1] > seg[0]]
    bounds = sorted({t for a, b, _ in segments for t in (a, b)})
    starts = collections.defaultdict(list)
    ends = collections.defaultdict(list)
    for i, (a, b, _) in enumerate(segments):
        starts[a].append(i)
        ends[b].append(i)
    total: dict[str, float] = collections.Counter()
    active: set[int] = set()
    for t0, t1 in zip(bounds, bounds[1:]):
        active.difference_update(ends[t0])
        active.update(starts[t0])
        for i in active:
            total[segments[i][2]] += (t1 - t0) / len(active)
    return dict(total)


def _innermost(events: Sequence[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """``(start, end, op)`` pieces of one line's time during which ``op`` is the innermost
    event (events nest; one ending past its parent is cut at the parent's end)."""
    out: list[tuple[int, int, str]] = []
    stack: list[tuple[int, str]] = []  # (end, op) of the open events, innermost last
    now = None

    def close_until(t):
        nonlocal now
        while stack and stack[-1][0] <= t:
            end, op = stack.pop()
            if end > now:
                out.append((now, end, op))
                now = end

    for start, dur, op in sorted(events, key=lambda e: (e[0], -e[1])):
        if now is None:
            now = start
        close_until(start)
        if stack and start > now:
            out.append((now, start, stack[-1][1]))
        now = max(now, start)
        end = start + dur if not stack else min(start + dur, stack[-1][0])
        stack.append((end, op))
    if stack:
        close_until(stack[0][0])
    return out


def profile(proxy, archs, batch, key, net, trace_dir: Path, **kw) -> tuple[float, dict[str, float], dict[str, str]]:
    """``(seconds of one untraced run, op -> seconds in a traced run, op -> category)`` for
    scoring ``archs`` as :func:`jnas.proxies.scoring.score` would with ``kw``."""
    with scoring.precision(proxy):
        run, exe = _compiled(proxy, archs, batch, key, net, **kw)
        run()  # warm-up
        t = time.perf_counter()
        run()
        wall = time.perf_counter() - t
        with jax.profiler.trace(str(trace_dir)):
            run()
    text = exe.as_text()
    module = re.match(r"HloModule\s+([\w.\-]+)", text).group(1)
    (xspace,) = sorted(trace_dir.glob("**/*.xplane.pb"))[-1:]
    return wall, self_times(xspace, module), hlo_categories(text)


def _compiled(proxy, archs, batch, key, net, **kw):
    """``(run, executable)``: ``run()`` makes the calls :func:`jnas.proxies.scoring.score`
    makes, through their one executable (the calls of a run share one jitted function and
    their shapes), and waits for them."""
    calls = list(scoring.calls(proxy, archs, batch, key, net=net, **kw))
    if len({c.fn for c in calls}) > 1:
        raise ValueError("profiling expects one compiled function per run")
    exe = calls[0].fn.lower(*calls[0].static, *calls[0].args).compile()

    def run():
        jax.block_until_ready([exe(*c.args) for c in calls])

    return run, exe


def seconds_without_convolutions(proxy, archs, batch, key, net, repeats: int = 2, **kw) -> float:
    """Best of ``repeats`` timed runs of the calls :func:`profile` times, compiled with
    :func:`stand_in_convolutions` (after a warm-up run)."""
    with stand_in_convolutions(), scoring.precision(proxy):
        run, _ = _compiled(proxy, archs, batch, key, net, **kw)
        run()
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            run()
            times.append(time.perf_counter() - t)
    return min(times)


@contextlib.contextmanager
def stand_in_convolutions():
    """Inside, the convolutions and channel matmuls of :mod:`jnas.nets.kernels` (every conv of
    the NB201 network, in both ``conv_grads`` modes and their backward passes) are stand-ins:
    each materialises its input and writes an output of the real shape and dtype, filled
    from one input element times one kernel element. What runs is the network without the
    arithmetic of its convolutions; the scores are meaningless. JAX's caches are cleared on
    entry and exit, so functions traced inside are traced again outside."""
    real = conv_module.lax
    fake = types.SimpleNamespace(**{n: getattr(real, n) for n in dir(real) if not n.startswith("__")})
    fake.conv_general_dilated = _stand_in(real.conv_general_dilated)
    fake.dot_general = _stand_in(real.dot_general)
    conv_module.lax = fake
    jax.clear_caches()
    try:
        yield
    finally:
        conv_module.lax = real
        jax.clear_caches()


def _stand_in(op):
    def stand_in(lhs, rhs, *args, **kwargs):
        out = jax.eval_shape(lambda a, b: op(a, b, *args, **kwargs), lhs, rhs)
        one = jax.lax.optimization_barrier(lhs).ravel()[0] * rhs.ravel()[0]
        return jax.lax.optimization_barrier(jnp.broadcast_to(one.astype(out.dtype), out.shape))

    return stand_in


def main(argv: Sequence[str] | None = None) -> list[dict]:
    cfg = parse(Config, argv, __doc__.split("\n\n")[0])
    names = proxies.parse_names(cfg.proxies)
    out = prepare_out(cfg.out, cfg, resume_keys=())
    x, y = load_cifar10_subset(cfg.data_dir, "train")
    net = NB201Network(C=cfg.C, N=cfg.N)
    costs = cost_tables(net)
    key = jax.random.key(cfg.seed)
    kw = dict(mode=cfg.mode or None, select=cfg.select or None, conv_grads=cfg.conv_grads or None,
              conv_library=cfg.conv_library or None, chunk=min(cfg.chunk, cfg.n))
    rates: dict[str, float] = {}
    records, op_rows = [], []
    for name in tqdm(names, desc="profile", unit="proxy"):
        proxy = proxies.get(name)
        b = proxy.batch_size or 1
        archs = space.sample(jax.random.fold_in(key, cfg.n), cfg.n)
        with tempfile.TemporaryDirectory() as tmp:
            wall, ops, cats = profile(proxy, archs, (x[:b], y[:b]), key, net, Path(tmp), **kw)
        conv_free = seconds_without_convolutions(proxy, archs, (x[:b], y[:b]), key, net, **kw)
        dtype = network_dtype(name)
        if dtype not in rates:
            rates[dtype] = matmul_gflops(cfg.matmul_n, dtype=jax.numpy.dtype(dtype).type)
        bound = flop_bound_s(name, archs, b, costs, rates[dtype])
        traced = sum(ops.values())
        seconds = {c: 0.0 for c in CATEGORIES}
        for op, t in ops.items():
            seconds[cats.get(op, "other")] += t
        seconds["untraced"] = max(wall - traced, 0.0)
        total = traced + seconds["untraced"]
        shares = {c: s / total for c, s in seconds.items()} if total else dict.fromkeys(CATEGORIES, 0.0)
        fraction = bound / wall if name in PASSES else None
        conv_s = wall - conv_free
        records.append(dict(
            proxy=name, n=cfg.n, **{k: v for k, v in kw.items() if k != "chunk"}, chunk=kw["chunk"], batch=b,
            backend=jax.default_backend(), wall_s=wall, traced_op_s=traced, seconds=seconds, shares=shares,
            conv_free_s=conv_free, conv_s=conv_s, flop_bound_s=bound, matmul_gflops=rates[dtype],
            fraction_of_bound=fraction, ceiling=bound / conv_s if fraction is not None and conv_s > 0 else None,
        ))
        for op, t in sorted(ops.items(), key=lambda kv: -kv[1])[: cfg.top]:
            op_rows.append(dict(proxy=name, op=op, category=cats.get(op, "other"), seconds=t, share=t / traced))
        write_json(out / "profile.json", records, indent=2)  # incremental
    write_csv(out / "ops.csv", op_rows)
    print_table(records)
    plot(records, out / "profile.png")
    return records


def print_table(records: list[dict]) -> None:
    short = {"convolution": "conv", "matmul": "matmul", "fused elementwise/reduce": "elementwise",
             "copy/layout": "copy", "control flow": "control", "other": "other", "untraced": "untraced"}
    print(f"{'proxy':<15}{'wall s':>8}" + "".join(f"{short[c]:>12}" for c in CATEGORIES) + f"{'conv s':>8}{'of bound':>10}{'ceiling':>9}")
    for r in records:
        fb = f"{r['fraction_of_bound']:.3f}" if r["fraction_of_bound"] is not None else "-"
        ce = f"{r['ceiling']:.3f}" if r["ceiling"] is not None else "-"
        print(f"{r['proxy']:<15}{r['wall_s']:>8.2f}" + "".join(f"{r['shares'][c]:>12.1%}" for c in CATEGORIES) + f"{r['conv_s']:>8.2f}{fb:>10}{ce:>9}")


def plot(records: list[dict], path) -> None:
    fig, ax = plt.subplots(figsize=(1.6 * len(records) + 3, 3.5))
    bottom = [0.0] * len(records)
    for c in CATEGORIES:
        vals = [r["shares"][c] for r in records]
        ax.bar([r["proxy"] for r in records], vals, bottom=bottom, label=c)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_ylabel("share of traced op time + untraced time")
    ax.set_title(f"where the time goes ({records[0]['backend']})")
    ax.legend(fontsize=7, bbox_to_anchor=(1.02, 1), loc="upper left")
    save_figure(fig, path)


if __name__ == "__main__":
    main()
