"""Where a zero-cost proxy's time goes, op by op, and what that allows against the FLOP bound.

    python -m experiments.profile_proxies --data-dir ../shared/data --out runs/profile_proxies

For each proxy, compiles exactly the calls :func:`jnas.proxies.scoring.score` makes for N
random NB201 cells (``--mode``/``--select``/``--conv-grads``, default: the backend's
defaults), times one run, then traces one more with ``jax.profiler`` and charges each XLA
op its own time (its span minus the ops nested in it, e.g. the body of a ``lax.switch``
branch). Ops are grouped by what the optimised HLO says they compute: ``convolution``,
``matmul`` (dots: NASWOT's kernel, and the 1x1 convolutions, which run as matmuls on CPU),
``fused elementwise/reduce`` (BatchNorm, ReLU, pooling, node sums), ``copy/layout``,
``control flow`` and ``other``; ``untraced`` is the rest of the wall time, outside any traced
op. It is mostly convolutions when they run in XLA's Eigen kernels (``conv_library="eigen"``,
the CPU default for naswot and jacob_cov): those run asynchronously on Eigen's thread pool and
the trace holds only their launch. Shares are of traced op time plus untraced time.

The fraction of the FLOP bound is the one ``experiments.bench_proxies`` reports (the
table's MACs x 2 x batch x passes over a measured matmul rate). ``ceiling`` divides it by the
share of time in convolutions, matmuls and untraced time (charged as convolution time, see
above): the fraction the proxy would reach if every other op took no time at all, with the
convolutions and matmuls as fast as they run now.

Writes ``profile.json`` (one record per proxy, written as each finishes), ``ops.csv`` (the
ops with the most time) and ``profile.png`` (time shares per proxy). About 3 minutes on a
2-core CPU with the defaults.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import json
import re
import tempfile
import time
from pathlib import Path
from typing import Sequence

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from tqdm.auto import tqdm

from experiments.bench_proxies import PASSES, flop_bound_s, matmul_gflops, network_dtype
from experiments.cli import parse, prepare_out
from experiments.plots import save_figure
from jnas import proxies
from jnas.data import load_cifar10_subset
from jnas.nets import NB201Network, cost_tables
from jnas.proxies import scoring
from jnas.spaces import nb201 as space

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
    """Seconds of each XLA op of ``module`` in a profiler trace, excluding the ops nested
    in it (a conditional's own time is its span minus its branch's ops)."""
    data = jax.profiler.ProfileData.from_file(str(xspace_path))
    total: dict[str, float] = collections.Counter()
    for plane in data.planes:
        for line in plane.lines:
            events = []
            for e in line.events:
                stats = dict(e.stats)
                if stats.get("hlo_module") == module and "hlo_op" in stats:
                    events.append((e.start_ns, e.duration_ns, stats["hlo_op"]))
            events.sort(key=lambda t: (t[0], -t[1]))
            own = [d for _, d, _ in events]
            stack: list[int] = []
            for i, (start, dur, _) in enumerate(events):
                while stack and start >= events[stack[-1]][0] + events[stack[-1]][1]:
                    stack.pop()
                if stack:
                    own[stack[-1]] -= dur
                stack.append(i)
            for (_, _, op), t in zip(events, own):
                total[op] += t * 1e-9
    return dict(total)


def profile(proxy, archs, batch, key, net, trace_dir: Path, **kw) -> tuple[float, dict[str, float], dict[str, str]]:
    """``(seconds of one untraced run, op -> seconds in a traced run, op -> category)`` for
    scoring ``archs`` as :func:`jnas.proxies.scoring.score` would with ``kw``."""
    with scoring.precision(proxy):
        calls = list(scoring.calls(proxy, archs, batch, key, net=net, **kw))
        compiled = {}
        for c in calls:  # one executable per jitted function (equal shapes within a run)
            if c.fn not in compiled:
                compiled[c.fn] = c.fn.lower(*c.static, *c.args).compile()
        (fn, exe), *more = compiled.items()
        if more:
            raise ValueError("profiling expects one compiled function per run")

        def run():
            jax.block_until_ready([exe(*c.args) for c in calls])

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


def main(argv: Sequence[str] | None = None) -> list[dict]:
    cfg = parse(Config, argv, __doc__.split("\n\n")[0])
    names = proxies.parse_names(cfg.proxies)
    if cfg.n < 1:
        raise ValueError(f"--n must be >= 1, got {cfg.n}")
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
        dtype = network_dtype(name)
        if dtype not in rates:
            rates[dtype] = matmul_gflops(dtype=jax.numpy.dtype(dtype).type)
        bound = flop_bound_s(name, archs, b, costs, rates[dtype])
        traced = sum(ops.values())
        seconds = {c: 0.0 for c in CATEGORIES}
        for op, t in ops.items():
            seconds[cats.get(op, "other")] += t
        seconds["untraced"] = max(wall - traced, 0.0)
        total = traced + seconds["untraced"]
        shares = {c: s / total for c, s in seconds.items()} if total else dict.fromkeys(CATEGORIES, 0.0)
        heavy = shares["convolution"] + shares["matmul"] + shares["untraced"]
        fraction = bound / wall if name in PASSES else None
        records.append(dict(
            proxy=name, n=cfg.n, **{k: v for k, v in kw.items() if k != "chunk"}, chunk=kw["chunk"], batch=b,
            backend=jax.default_backend(), wall_s=wall, traced_op_s=traced, seconds=seconds, shares=shares,
            flop_bound_s=bound, matmul_gflops=rates[dtype], fraction_of_bound=fraction,
            ceiling=fraction / heavy if fraction is not None and heavy > 0 else None,
        ))
        for op, t in sorted(ops.items(), key=lambda kv: -kv[1])[: cfg.top]:
            op_rows.append(dict(proxy=name, op=op, category=cats.get(op, "other"), seconds=t, share=t / traced))
        (out / "profile.json").write_text(json.dumps(records, indent=2) + "\n")  # incremental
    with open(out / "ops.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["proxy", "op", "category", "seconds", "share"])
        w.writeheader()
        w.writerows(op_rows)
    print_table(records)
    plot(records, out / "profile.png")
    return records


def print_table(records: list[dict]) -> None:
    short = {"convolution": "conv", "matmul": "matmul", "fused elementwise/reduce": "elementwise",
             "copy/layout": "copy", "control flow": "control", "other": "other", "untraced": "untraced"}
    print(f"{'proxy':<15}{'wall s':>8}" + "".join(f"{short[c]:>12}" for c in CATEGORIES) + f"{'of bound':>10}{'ceiling':>9}")
    for r in records:
        fb = f"{r['fraction_of_bound']:.3f}" if r["fraction_of_bound"] is not None else "-"
        ce = f"{r['ceiling']:.3f}" if r["ceiling"] is not None else "-"
        print(f"{r['proxy']:<15}{r['wall_s']:>8.2f}" + "".join(f"{r['shares'][c]:>12.1%}" for c in CATEGORIES) + f"{fb:>10}{ce:>9}")


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
