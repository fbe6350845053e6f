"""Throughput of zero-cost proxies per batching mode, against a per-architecture loop.

    python -m experiments.bench_proxies --data-dir ../shared/data --out runs/bench_proxies

For each proxy and N in ``--sizes``, times every ``mode/select/conv_grads/conv_library``
combination on the same N random NB201 cells in one run: ``loop/switch/xla/ynnpack`` (a
Python loop over one jitted single-architecture function with JAX's own convolution
gradients and XLA's default compile options, the baseline), then ``loop/switch``,
``map/switch``, ``loop/mask`` and ``vmap/mask`` with the proxy's default ``conv_grads``
(``explicit`` for reverse-mode proxies on CPU) and ``conv_library`` (see
:mod:`jnas.nets.kernels`; combinations that resolve to the same one are timed once). Reports archs/s
(steady state: the best of ``--repeats`` calls after the first), compile time (first call
minus the best steady call), the speed-up over the baseline, and the fraction of a FLOP
bound: useful FLOPs (the table's MACs x 2 x batch x passes) over a matmul rate measured on
the same device, in the proxy's network's precision (float64 for synflow, float32
otherwise). The matmul rate is the best of five timings, like the proxies' best of
``--repeats``, and is measured again just before each row, so that a row is read against
the machine as it was when the row ran (a shared machine's rates drift over a long run;
every row records its own rate). For scale it also measures one 3x3
convolution of the network's first stage (batch 64, 32x32, 16 -> 16 channels) on its own:
the rate the network's small convolutions reach outside any proxy.

Like every experiment it gives JAX one CPU device per core (``JNAS_CPU_DEVICES``, see
:func:`experiments.common.use_cpu_cores`): the ``map`` and ``vmap`` rows split each chunk over
them, the ``loop`` rows run on one device, and the matmul rate is that of one device (which
uses every core).

Writes ``bench_proxies.json`` and ``bench_proxies.png``. Runtime with the defaults on a
2-core CPU: about 15 minutes; pass ``--sizes 16,64,256`` for the full grid on a GPU.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Sequence

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from tqdm.auto import tqdm

from experiments.common import parse, prepare_out, save_figure
from jnas import proxies
from jnas.proxies.roofline import PASSES, conv_gflops, flop_bound_s, matmul_gflops, network_dtype
from jnas.data import load_cifar10_subset
from jnas.nets import NB201Network, cost_tables
from jnas.nets.kernels import CONV_GRADS, CONV_LIBRARIES
from jnas.spaces import nb201 as space
from jnas.records import write_json

# (mode, select, conv_grads, conv_library); None: the proxy's default on this backend.
COMBOS = (
    ("loop", "switch", "xla", "ynnpack"),
    ("loop", "switch", None, None),
    ("map", "switch", None, None),
    ("loop", "mask", None, None),
    ("vmap", "mask", None, None),
)
BASELINE = ("loop", "switch", "xla", "ynnpack")
@dataclasses.dataclass(frozen=True)
class Config:
    proxies: str = dataclasses.field(default="naswot,jacob_cov,synflow", metadata={"help": "comma list or 'all'"})
    sizes: str = dataclasses.field(default="16,64", metadata={"help": "numbers of architectures N", "items": int})
    combos: str = dataclasses.field(default="all", metadata={"help": "e.g. 'loop/switch/xla/ynnpack,map/switch' (conv_grads, conv_library optional) or 'all'"})
    chunk: int = dataclasses.field(default=16, metadata={"help": "architectures per jitted call (map/vmap)"})
    repeats: int = dataclasses.field(default=2, metadata={"help": "steady calls timed per row (the best counts)"})
    data_dir: str | None = dataclasses.field(default=None, metadata={"help": "data root (else $JNAS_DATA)"})
    out: str = dataclasses.field(default="runs/bench_proxies", metadata={"help": "output folder"})
    matmul_n: int = dataclasses.field(default=2048, metadata={"help": "side of the matmul that measures the machine's peak rate"})
    seed: int = 0


def time_scores(proxy, archs, batch, key, mode, select, conv_grads, conv_library, chunk, repeats: int = 1) -> tuple[float, list[float]]:
    """(seconds of the first call, seconds of each of ``repeats`` identical calls after it)."""
    times = []
    for _ in range(1 + repeats):
        t = time.perf_counter()
        proxies.score(proxy.name, archs, batch, key, mode=mode, select=select, conv_grads=conv_grads,
                      conv_library=conv_library,
                      chunk=min(chunk, len(archs)), progress=False)
        times.append(time.perf_counter() - t)
    return times[0], times[1:]


def parse_combos(spec: str):
    if spec == "all":
        return COMBOS
    combos = []
    for item in spec.split(","):
        parts = item.strip().split("/")
        mode, select, conv, library = (parts + ["", "", ""])[:4]
        conv, library = conv or None, library or None
        if (len(parts) not in (2, 3, 4) or mode not in proxies.MODES or select not in proxies.SELECTS
                or conv not in (None, *CONV_GRADS) or library not in (None, *CONV_LIBRARIES)):
            raise ValueError(
                f"bad combo {item!r}; use mode/select[/conv_grads[/conv_library]] with mode in {list(proxies.MODES)}, "
                f"select in {list(proxies.SELECTS)}, conv_grads in {list(CONV_GRADS)} and conv_library in "
                f"{list(CONV_LIBRARIES)}"
            )
        combos.append((mode, select, conv, library))
    return tuple(combos)


def resolve(combos, proxy) -> list[tuple[str, str, str, str]]:
    """``combos`` with the proxy's default conv_grads and conv_library filled in, duplicates
    and combinations the proxy cannot run (explicit gradients for a forward-mode proxy) dropped."""
    out = []
    for mode, select, conv, library in combos:
        conv = proxies.default_conv_grads(proxy) if conv is None else conv
        library = proxies.default_conv_library(proxy) if library is None else library
        if (conv == "explicit" and not proxy.reverse_only) or (mode, select, conv, library) in out:
            continue
        out.append((mode, select, conv, library))
    return out


def main(argv: Sequence[str] | None = None) -> list[dict]:
    cfg = parse(Config, argv, __doc__.split("\n\n")[0])
    names = proxies.parse_names(cfg.proxies)
    sizes = [int(s) for s in cfg.sizes.split(",")]
    combos = parse_combos(cfg.combos)
    out = prepare_out(cfg.out, cfg, resume_keys=())
    x, y = load_cifar10_subset(cfg.data_dir, "train")
    gflops = {"float32": matmul_gflops(cfg.matmul_n), "float64": matmul_gflops(cfg.matmul_n, dtype=jnp.float64)}
    conv_rate = conv_gflops()
    costs = cost_tables(NB201Network())
    key = jax.random.key(cfg.seed)
    backend = jax.default_backend()
    device = str(jax.devices()[0].device_kind)
    print(f"backend {backend} ({device}, {jax.local_device_count()} local devices: map/vmap rows split each chunk over them); matmul {gflops['float32']:.0f} GFLOP/s float32, "
          f"{gflops['float64']:.0f} float64; one stage-1 3x3 conv alone {conv_rate:.0f} GFLOP/s float32")
    rows = []
    jobs = [(n, s, c) for n in names for s in sizes for c in resolve(combos, proxies.get(n))]
    for name, n, (mode, select, conv, library) in tqdm(jobs, desc="bench", unit="run"):
        proxy = proxies.get(name)
        b = proxy.batch_size or 1
        batch = (x[:b], y[:b])
        archs = space.sample(jax.random.fold_in(key, n), n)
        dtype = network_dtype(name)
        rate = matmul_gflops(cfg.matmul_n, dtype=jnp.dtype(dtype).type)  # the machine as it is for this row
        first, times = time_scores(proxy, archs, batch, key, mode, select, conv, library, cfg.chunk, cfg.repeats)
        steady = min(times)
        bound_s = flop_bound_s(name, archs, b, costs, rate)
        rows.append(
            dict(proxy=name, n=n, mode=mode, select=select, conv_grads=conv, conv_library=library, archs_per_s=n / steady, compile_s=max(first - steady, 0.0),
                 steady_s=steady, steady_times_s=times, flop_bound_s=bound_s, fraction_of_bound=bound_s / steady if name in PASSES else None,
                 backend=backend, device=device, devices=1 if mode == "loop" else jax.local_device_count(), matmul_gflops=rate, matmul_gflops_at_start=gflops, conv_gflops=conv_rate)
        )
        base = next((r for r in rows if r["proxy"] == name and r["n"] == n and _combo(r) == BASELINE), None)
        rows[-1]["speedup_vs_loop"] = rows[-1]["archs_per_s"] / base["archs_per_s"] if base else None
        write_json(out / "bench_proxies.json", rows, indent=2)  # incremental
    print_table(rows)
    plot(rows, out / "bench_proxies.png")
    return rows


def _combo(row: dict) -> tuple[str, str, str, str]:
    return row["mode"], row["select"], row.get("conv_grads", "xla"), row.get("conv_library", "ynnpack")


def print_table(rows: list[dict]) -> None:
    print(f"{'proxy':<15}{'N':>5}  {'mode/select/conv/library':<30}{'archs/s':>9}{'compile s':>11}{'x loop':>8}{'of bound':>10}{'matmul GFLOP/s':>16}")
    for r in rows:
        sp = f"{r['speedup_vs_loop']:.2f}" if r["speedup_vs_loop"] else "-"
        fb = f"{r['fraction_of_bound']:.2f}" if r["fraction_of_bound"] is not None else "-"
        print(f"{r['proxy']:<15}{r['n']:>5}  {'/'.join(_combo(r)):<30}{r['archs_per_s']:>9.2f}{r['compile_s']:>11.1f}{sp:>8}{fb:>10}{r['matmul_gflops']:>16.0f}")


def plot(rows: list[dict], path) -> None:
    names = sorted({r["proxy"] for r in rows})
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.5), squeeze=False)
    for ax, name in zip(axes[0], names):
        sub = [r for r in rows if r["proxy"] == name]
        for combo in sorted({_combo(r) for r in sub}):
            pts = sorted((r["n"], r["archs_per_s"]) for r in sub if _combo(r) == combo)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label="/".join(combo))
        ax.set_xscale("log", base=2)
        ax.set_xlabel("architectures N")
        ax.set_ylabel("archs / s")
        ax.set_title(f"{name} ({sub[0]['backend']})")
        ax.legend(fontsize=7)
    save_figure(fig, path)


if __name__ == "__main__":
    main()
