"""Every NAS-Bench-201 cell scored by zero-cost proxies into an append-only parquet store.

One or many devices and processes share the work.

    python -m experiments.score_all --proxies all --data-dir ../shared/data --out runs/score_all

Cells go in chunks of ``--chunk`` (base-5 index order); each finished (proxy, chunk) is one
parquet file ``store/proxy=<name>/chunk-<start>.parquet`` (columns ``index``, ``score``),
written to a temporary name and renamed, never rewritten. A killed run restarted with the
same command skips every chunk whose file exists. One chunk is scored at a time, and only
the final scores (8 bytes per cell and proxy) are kept (peak RSS in ``summary.json``). Why parquet files and not DuckDB: independent writer
processes need no lock (DuckDB admits one writer process), a file is complete or absent,
and pyarrow, already installed with the data loaders, reads the folder back as one table.

Each call's cells are split over ``--devices`` local devices (default: all; ``jnas.proxies.score``'s
``shard_map``; experiments give a CPU one device per core, and
``XLA_FLAGS=--xla_force_host_platform_device_count=4`` sets another count). With ``--num-processes P`` (and ``--coordinator host:port`` and ``--process-id``,
or ``--coordinator auto`` under SLURM), process ``i`` scores its contiguous block of the
chunks (:func:`jnas.distributed.share`) and the scores are gathered on every process
(:func:`jnas.distributed.gather`); process 0 writes the summary. The store folder must be
shared by the processes only for resuming; the gathered scores do not need it.

Writes ``store/``, ``throughput.jsonl`` (cells/s per proxy and device count, one record per
run), ``correlations.json`` (Spearman and Kendall of every proxy with every accuracy column of
the benchmark file, as ``experiments.proxy_correlation`` computes them) and ``summary.json``.
"""

from __future__ import annotations

import dataclasses
import os
import resource
import time
from pathlib import Path
from typing import Sequence

import jax
import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from experiments.common import parse, prepare_out
from experiments.proxy_correlation import correlations, print_summary
from jnas import distributed, proxies
from jnas.benchmarks import nb201 as bench
from jnas.data import load_cifar10_subset
from jnas.nets import NB201Network
from jnas.records import Records, write_json
from jnas.spaces import nb201 as space

CHOICES_NET = ("benchmark", "search")


@dataclasses.dataclass(frozen=True)
class Config:
    proxies: str = dataclasses.field(default="naswot,synflow,params,flops", metadata={"help": "comma list or 'all'"})
    n: str = dataclasses.field(default="all", metadata={"help": "number of cells (first n by index) or 'all'", "items": int,
                                                        "words": ("all",), "max": 15625})
    data_dir: str | None = dataclasses.field(default=None, metadata={"help": "data root (else $JNAS_DATA)"})
    out: str = dataclasses.field(default="runs/score_all", metadata={"help": "output folder (the store is out/store)"})
    seed: int = dataclasses.field(default=0, metadata={"help": "PRNG seed: images and weights"})
    chunk: int = dataclasses.field(default=625, metadata={"help": "cells per stored chunk (the unit of resume)"})
    call_chunk: int = dataclasses.field(default=16, metadata={"help": "cells per jitted call inside a chunk"})
    devices: int = dataclasses.field(default=0, metadata={"help": "local devices each call's cells are split over (0: all)", "min": 0})
    net: str = dataclasses.field(default="benchmark", metadata={"help": "benchmark (trained network) or search (reference code's cells)",
                                                                "choices": CHOICES_NET})
    C: int = dataclasses.field(default=16, metadata={"help": "network channels (16: the benchmark's)"})
    N: int = dataclasses.field(default=5, metadata={"help": "cells per stage (5: the benchmark's)"})
    coordinator: str = dataclasses.field(default="", metadata={"help": "host:port of process 0, 'auto' (cluster environment) or '' (one process)"})
    num_processes: int = dataclasses.field(default=1, metadata={"help": "processes in the job"})
    process_id: int = dataclasses.field(default=0, metadata={"help": "this process, 0-based", "min": 0})


def main(argv: Sequence[str] | None = None) -> dict:
    cfg = parse(Config, argv, __doc__.splitlines()[0])
    if cfg.coordinator == "auto":
        distributed.initialize()
    elif cfg.coordinator:
        distributed.initialize(cfg.coordinator, cfg.num_processes, cfg.process_id)
    elif cfg.num_processes != 1:
        raise ValueError(f"--num-processes {cfg.num_processes} needs --coordinator host:port (or auto)")
    names = proxies.parse_names(cfg.proxies)
    devices = cfg.devices or len(jax.local_devices())
    if devices > len(jax.local_devices()):
        raise ValueError(f"--devices {cfg.devices} but this process sees {len(jax.local_devices())} local devices "
                         "(on CPU set XLA_FLAGS=--xla_force_host_platform_device_count=N)")
    table = bench.load(cfg.data_dir)
    archs = np.asarray(space.enumerate_all())
    if cfg.n != "all":
        archs = archs[: int(cfg.n)]
    net = (NB201Network.benchmark if cfg.net == "benchmark" else NB201Network.search_code)(C=cfg.C, N=cfg.N)
    k_img, k_init = jax.random.split(jax.random.key(cfg.seed))
    x, y = load_cifar10_subset(cfg.data_dir, "train")
    order = np.asarray(jax.random.permutation(k_img, len(x)))
    if jax.process_index() == 0:  # one process owns the folder's lock and config; all write the store
        prepare_out(cfg.out, cfg, resume_keys=("n", "seed", "net", "C", "N", "chunk"))
    out, store = Path(cfg.out), Path(cfg.out) / "store"
    store.mkdir(parents=True, exist_ok=True)
    starts = list(range(0, len(archs), cfg.chunk))
    mine = starts[distributed.share(len(starts))]
    scores, rates = {}, {}
    for name in names:
        proxy = proxies.get(name)
        b = proxy.batch_size or 1
        folder = store / f"proxy={name}"
        folder.mkdir(exist_ok=True)
        t0, computed = time.perf_counter(), 0
        for start in tqdm(mine, desc=f"{name} chunks", unit="chunk"):
            path = _chunk_path(folder, start)
            if path.exists():
                continue
            part = archs[start : start + cfg.chunk]
            vals = proxies.score(name, part, (x[order[:b]], y[order[:b]]), k_init, net=net, chunk=cfg.call_chunk,
                                 devices=devices, progress=False)
            _write_chunk(path, np.asarray(space.to_index(part)), vals)
            computed += len(part)
        seconds = time.perf_counter() - t0
        rates[name] = {"cells": computed, "seconds": seconds, "cells_per_s": computed / seconds if computed else None}
        rows = np.full((len(mine), cfg.chunk), np.nan)  # this process's chunks, the last one padded
        for i, start in enumerate(mine):
            v = _read_chunk(_chunk_path(folder, start))
            rows[i, : len(v)] = v
        every = rows if jax.process_count() == 1 else distributed.gather(rows, len(starts))
        scores[name] = every.reshape(-1)[: len(archs)]  # chunks in index order; only the last is short
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if jax.process_index() != 0:
        return {}
    Records(out / "throughput.jsonl").append({"devices": devices, "processes": jax.process_count(),
                                              "backend": jax.default_backend(), "C": cfg.C, "N": cfg.N, "n": len(archs),
                                              "per_proxy": rates})
    corr = correlations(scores, table, archs)
    write_json(out / "correlations.json", corr)
    counts = {name: _stored_rows(store / f"proxy={name}") for name in names}
    summary = {"n": len(archs), "proxies": names, "stored_rows": counts, "devices": devices, "processes": jax.process_count(),
               "throughput": rates, "peak_rss_mb_process0": peak_rss_mb, "net": cfg.net, "C": cfg.C, "N": cfg.N}
    write_json(out / "summary.json", summary, indent=1)
    print_summary(corr)
    print({"stored_rows": counts, "throughput": {k: v["cells_per_s"] for k, v in rates.items()}, "peak_rss_mb": round(peak_rss_mb)})
    return summary


def _chunk_path(folder: Path, start: int) -> Path:
    return folder / f"chunk-{start:05d}.parquet"


def _write_chunk(path: Path, index: np.ndarray, values: np.ndarray) -> None:
    """One finished chunk, atomically: a temporary file renamed into place."""
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    pq.write_table(pa.table({"index": index.astype(np.int32), "score": np.asarray(values, np.float64)}), tmp)
    os.replace(tmp, path)


def _read_chunk(path: Path) -> np.ndarray:
    try:
        return pq.read_table(path).column("score").to_numpy()
    except Exception as e:  # noqa: BLE001 - any unreadable file is reported by name
        raise ValueError(f"stored chunk {path} is unreadable ({e}); delete it and rerun to score it again") from e


def _stored_rows(folder: Path) -> int:
    return ds.dataset(folder, format="parquet").count_rows()


if __name__ == "__main__":
    main()
