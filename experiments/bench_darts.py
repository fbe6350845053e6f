"""Search-step time of DARTS hypergradient estimators on the NB201 or DARTS-space supernet.

    python -m experiments.bench_darts --data-dir ../shared/data --out runs/bench_darts
    python -m experiments.bench_darts --space darts --C 8 --layers 5 --estimators first_order --data-dir ../shared/data

``--space nb201`` times the NB201 supernet (``--C``, ``--N`` cells per stage); ``--space
darts`` the DARTS cell-space supernet (``--C``, ``--layers`` cells, ``--depthwise``).

Times one full search step (weight step + alpha step, jitted) at batch 64 on real CIFAR-10
images for each estimator in ``--estimators``: ``first_order`` (DARTS 1st order, the
baseline), ``finite_difference`` (DARTS 2nd order: two extra gradients), ``second_order``
(the same quantity exact, one jvp over grad). Reports steady step time (median of
``--repeats`` calls after a warm-up), compile time (first call minus a steady call) and the
ratio to first order, all measured in this run. Writes ``bench_darts.json`` (one row per
estimator as it finishes; a rerun skips finished rows) and ``bench_darts.png``.

Runtime on a 2-core CPU with the full supernet (C=16, N=5): about 10 minutes, most of it
compilation. ``--reference`` reads the PyTorch DARTS steps timed just before by
``../shared/peers/torch_proxy_bench.py`` and adds each row's ratio to them. DARTS reports second order at about 4x the cost of first order on GPU
(1.5 vs 4 GPU-days, including their different epoch counts).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Sequence

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from tqdm.auto import tqdm

from experiments.common import parse, prepare_out, save_figure
from jnas.data import load_cifar10_subset
from jnas.nets.darts import DEPTHWISE, DartsSupernet
from jnas.nets.kernels import CONV_GRADS, CONV_LIBRARIES
from jnas.oneshot import SearchConfig, darts_cells, init_state, make_step
from jnas.oneshot import nb201 as os201
from jnas.records import write_json


@dataclasses.dataclass(frozen=True)
class Config:
    space: str = dataclasses.field(default="nb201", metadata={"help": "which supernet", "choices": ("nb201", "darts")})
    estimators: str = dataclasses.field(default="first_order,finite_difference,second_order", metadata={"help": "comma list of jnas.bilevel names"})
    data_dir: str | None = dataclasses.field(default=None, metadata={"help": "data root (else $JNAS_DATA)"})
    out: str = dataclasses.field(default="runs/bench_darts", metadata={"help": "output folder"})
    batch: int = dataclasses.field(default=64, metadata={"help": "batch size"})
    C: int = dataclasses.field(default=16, metadata={"help": "supernet channels"})
    N: int = dataclasses.field(default=5, metadata={"help": "cells per stage (nb201)", "min": 1})
    layers: int = dataclasses.field(default=5, metadata={"help": "cells (darts; reductions at 1/3 and 2/3 depth)", "min": 3})
    depthwise: str = dataclasses.field(default="dense", metadata={"help": "depthwise convolutions of the separable ops (darts)", "choices": DEPTHWISE})
    repeats: int = dataclasses.field(default=5, metadata={"help": "timed steps per estimator"})
    seed: int = dataclasses.field(default=0, metadata={"help": "PRNG seed"})
    conv_grads: str = dataclasses.field(default="plain", metadata={"help": "CPU kernels (jnas.nets.kernels; nb201)", "choices": CONV_GRADS})
    conv_library: str = dataclasses.field(default="eigen", metadata={"help": "CPU convolution library of the step", "choices": CONV_LIBRARIES})
    cell_barrier: int = dataclasses.field(default=1, metadata={"help": "1: fusion barrier after each cell (jnas.nets.kernels.fusion_barrier), 0: none", "min": 0, "max": 1})
    reference: str | None = dataclasses.field(default=None, metadata={"help": "results.jsonl of ../shared/peers/torch_proxy_bench.py run just before on this machine: adds each step's ratio to the PyTorch DARTS step"})


# Which PyTorch step each estimator is compared with (torch_proxy_bench.py record names).
REFERENCE_STEP = {"first_order": "darts_v1_first_order_step", "finite_difference": "darts_v2_second_order_step",
                  "second_order": "darts_v2_second_order_step"}


def supernet(cfg: Config):
    """``(net, alpha helpers module)`` of the space ``cfg.space``."""
    if cfg.space == "darts":
        return DartsSupernet(C=cfg.C, layers=cfg.layers, depthwise=cfg.depthwise, cell_barrier=bool(cfg.cell_barrier)), darts_cells
    return os201.supernet(C=cfg.C, N=cfg.N, conv_grads=cfg.conv_grads, cell_barrier=bool(cfg.cell_barrier)), os201


def time_estimator(name: str, cfg: Config, batches: tuple, key: jax.Array) -> dict:
    net, cells = supernet(cfg)
    conf = SearchConfig(total_steps=1000, estimator=name, conv_library=cfg.conv_library)
    state = init_state(key, net, cells.init_alpha(key), cells.mixing_weights, batches[0][0][:2], conf)
    step = make_step(net, cells.mixing_weights, conf)
    mask = cells.full_mask()
    t0 = time.perf_counter()
    state, _ = step(state, batches[0], batches[1], key, 0.0, mask)
    jax.block_until_ready(state)
    first = time.perf_counter() - t0
    times = []
    for i in range(cfg.repeats):
        t0 = time.perf_counter()
        state, m = step(state, batches[0], batches[1], jax.random.fold_in(key, i), 0.0, mask)
        jax.block_until_ready(state)
        times.append(time.perf_counter() - t0)
    steady = float(np.median(times))
    return {"estimator": name, "step_s": steady, "compile_s": first - steady, "steps_timed": cfg.repeats}


def main(argv: Sequence[str] | None = None) -> list[dict]:
    cfg = parse(Config, argv, __doc__.splitlines()[0])
    if cfg.reference and cfg.space != "nb201":
        raise ValueError("--reference holds PyTorch steps of the NB201 supernet; it compares with --space nb201 only")
    ref = reference_steps(cfg.reference) if cfg.reference else {}  # a bad file fails before any output
    out = prepare_out(cfg.out, cfg, resume_keys=("space", "batch", "C", "N", "layers", "depthwise", "repeats", "seed", "conv_grads",
                                                        "conv_library", "cell_barrier"))
    x, y = load_cifar10_subset(cfg.data_dir, "train")
    b = cfg.batch
    batches = ((jnp.asarray(x[:b]), jnp.asarray(y[:b])), (jnp.asarray(x[b : 2 * b]), jnp.asarray(y[b : 2 * b])))
    path = out / "bench_darts.json"
    rows = json.loads(path.read_text())["rows"] if path.exists() else []
    done = {r["estimator"] for r in rows}
    shape = {"N": cfg.N} if cfg.space == "nb201" else {"layers": cfg.layers, "depthwise": cfg.depthwise}
    meta = {"backend": jax.default_backend(), "device": str(jax.devices()[0].device_kind), "space": cfg.space, "C": cfg.C, **shape, "batch": b,
            "conv_grads": cfg.conv_grads, "conv_library": cfg.conv_library, "cell_barrier": cfg.cell_barrier}
    for name in tqdm([n for n in cfg.estimators.split(",") if n not in done], desc="estimators"):
        rows.append(time_estimator(name, cfg, batches, jax.random.key(cfg.seed)))
        write_json(path, {**meta, "rows": rows}, indent=1)
    base = next((r["step_s"] for r in rows if r["estimator"] == "first_order"), None)
    for r in rows:
        r["ratio_to_first_order"] = r["step_s"] / base if base else None
        if REFERENCE_STEP.get(r["estimator"]) in ref:
            r["reference_step_s"] = ref[REFERENCE_STEP[r["estimator"]]]
            r["ratio_to_reference"] = r["step_s"] / r["reference_step_s"]
    if cfg.reference:
        meta["reference"] = cfg.reference
    write_json(path, {**meta, "rows": rows}, indent=1)
    print(f"{meta['backend']} ({meta['device']}), {cfg.space} supernet C={cfg.C} {shape}, batch {b}")
    print(f"{'estimator':<20}{'step s':>10}{'compile s':>12}{'x first order':>15}{'x PyTorch':>11}")
    for r in rows:
        ratio = f"{r['ratio_to_first_order']:.2f}" if r["ratio_to_first_order"] else "-"
        vs = f"{r['ratio_to_reference']:.2f}" if "ratio_to_reference" in r else "-"
        print(f"{r['estimator']:<20}{r['step_s']:>10.3f}{r['compile_s']:>12.1f}{ratio:>15}{vs:>11}")
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    names = [r["estimator"] for r in rows]
    ax[0].bar(names, [r["step_s"] for r in rows])
    ax[0].set(ylabel="search step (s)", title=f"step time, batch {b}")
    ax[1].bar(names, [r["compile_s"] for r in rows])
    ax[1].set(ylabel="compile (s)", title="compile time")
    for a in ax:
        a.tick_params(axis="x", rotation=20)
    save_figure(fig, out / "bench_darts.png", dpi=110)
    return rows


def reference_steps(path: str) -> dict[str, float]:
    """Median seconds per step of each PyTorch DARTS record in a peers ``results.jsonl``."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"--reference {p} not found: run ../shared/peers/torch_proxy_bench.py (see its README) "
                                f"and pass the results.jsonl it writes under its --out")
    found = {}
    for line in p.read_text().splitlines():
        rec = json.loads(line)
        if rec.get("proxy") in REFERENCE_STEP.values() and "sec_per_step_median" in rec:
            found[rec["proxy"]] = float(rec["sec_per_step_median"])
    if not found:
        raise ValueError(f"--reference {p} holds no DARTS step records ({sorted(set(REFERENCE_STEP.values()))}); "
                         f"run torch_proxy_bench.py without --skip-darts")
    return found


if __name__ == "__main__":
    main()
