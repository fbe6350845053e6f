"""The DARTS cell space end to end: search on real CIFAR-10 images, derive the genotype, train
its evaluation network, and check the published genotypes' parameter counts.

    python -m experiments.darts_pipeline --data-dir ../shared/data --out runs/darts_pipeline

Methods (``--methods``): ``darts1`` (first order), ``darts2`` (second order, DARTS's finite
differences), ``pcdarts`` (partial channels K=4, edge normalisation, 30% weight-only warm-up
as 15 of 50 epochs in PC-DARTS). Each search trains the DARTS supernet (8 ops on 14 edges,
normal and reduction cells) on half the local CIFAR-10 training subset and scores alpha on the
other half (the DARTS protocol); the genotype is DARTS's top-2 derivation. Each derived
genotype, and the published ones named in ``--references`` for scale, is then trained as an
evaluation network with DARTS's extras (auxiliary head 0.4, cutout 16, drop path 0.2 ramped
over the epochs, SGD 0.025 cosine, weight decay 3e-4) and tested on the 1,017 test images.

CPU-sized defaults against DARTS's published setting: search C=4, 3 cells, batch 32, 8 epochs
on 1,024 images (DARTS: C=16, 8 cells, batch 64, 50 epochs on 50,000); evaluation C=8, 5 cells,
batch 64, 5 epochs on 5,085 images (DARTS: C=36, 20 cells, batch 96, 600 epochs on 50,000).
Published genotypes' parameter counts are taken at C=36, 20 cells (no auxiliary head, as the
papers count). Runtime on a 2-core CPU: about 46 minutes (searches 7, 6 and 18 minutes,
3-4 minutes per evaluation network); every network ends near 45% test accuracy at this size
(docs/bilevel.md, "The DARTS cell space end to end"), against DARTS's published 97.0-97.2%
(DARTS paper, Table 1, first and second order).

Writes ``search_<method>/alpha.jsonl`` (mixing weights and derived genotype per epoch),
``train_<name>/metrics.csv``, ``results.jsonl`` (one record per finished search or training)
and ``summary.json``; every stage resumes (rerun the same command).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from pathlib import Path
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from experiments.common import parse, prepare_out
from jnas import train
from jnas.data import load, normalize
from jnas.nets.darts import DEPTHWISE, DartsNetwork, DartsSupernet
from jnas.oneshot import SearchConfig, darts_cells, driver
from jnas.records import Records, write_json
from jnas.spaces import darts as space

METHODS = {
    # name: (hypergradient estimator, partial channels, edge normalisation, warm-up fraction)
    "darts1": ("first_order", 1, False, 0.0),
    "darts2": ("finite_difference", 1, False, 0.0),
    "pcdarts": ("first_order", 4, True, 0.3),
}


@dataclasses.dataclass(frozen=True)
class Config:
    methods: str = dataclasses.field(default="darts1,darts2,pcdarts", metadata={"help": f"search methods, comma-separated ({', '.join(METHODS)})"})
    references: str = dataclasses.field(default="DARTS_V2", metadata={"help": "published genotypes trained with the same recipe, comma-separated (empty: none)"})
    C: int = dataclasses.field(default=4, metadata={"help": "search supernet channels (DARTS: 16)", "min": 4})
    layers: int = dataclasses.field(default=3, metadata={"help": "search supernet cells (DARTS: 8)", "min": 3})
    epochs: int = dataclasses.field(default=8, metadata={"help": "search epochs (DARTS: 50)", "min": 1})
    batch: int = dataclasses.field(default=32, metadata={"help": "search batch (DARTS: 64)", "min": 2})
    n_images: int = dataclasses.field(default=1024, metadata={"help": "use the first n training images for the search, half for weights and half for alpha (0: all)", "min": 0})
    eval_C: int = dataclasses.field(default=8, metadata={"help": "evaluation network channels (DARTS: 36)", "min": 2})
    eval_layers: int = dataclasses.field(default=5, metadata={"help": "evaluation network cells (DARTS: 20)", "min": 3})
    eval_epochs: int = dataclasses.field(default=5, metadata={"help": "evaluation training epochs (DARTS: 600)", "min": 1})
    eval_batch: int = dataclasses.field(default=64, metadata={"help": "evaluation batch (DARTS: 96)", "min": 2})
    eval_images: int = dataclasses.field(default=0, metadata={"help": "use the first n training images for evaluation training (0: all)", "min": 0})
    aux_weight: float = dataclasses.field(default=0.4, metadata={"help": "auxiliary-head loss weight (0: no head)", "min": 0.0})
    cutout: int = dataclasses.field(default=16, metadata={"help": "cutout side (0: off)", "min": 0})
    drop_path: float = dataclasses.field(default=0.2, metadata={"help": "drop-path rate at the last epoch", "min": 0.0, "max": 0.9})
    depthwise: str = dataclasses.field(default="dense", metadata={"help": "depthwise convolutions of the separable ops: a dense convolution with a block-diagonal kernel, XLA's grouped convolution or shifted multiply-adds (same numbers)", "choices": DEPTHWISE})
    seed: int = dataclasses.field(default=0, metadata={"help": "PRNG seed"})
    data_dir: str | None = dataclasses.field(default=None, metadata={"help": "data root (else $JNAS_DATA)"})
    out: str = dataclasses.field(default="runs/darts_pipeline", metadata={"help": "output folder"})


def count_params(net, arch, resolution: int = 32) -> int:
    """Parameters of ``net`` for genotype ``arch`` (shapes only, nothing is computed)."""
    shapes = jax.eval_shape(lambda: net.init(jax.random.key(0), jnp.zeros((1, resolution, resolution, 3)), arch, train=False))
    return int(sum(np.prod(p.shape) for p in jax.tree.leaves(shapes["params"])))


@functools.lru_cache(maxsize=None)
def published_size_params(text: str) -> int:
    """Parameters of a genotype's evaluation network at the published size (C=36, 20 cells,
    no auxiliary head, as the papers count); counted once per genotype."""
    return count_params(DartsNetwork(C=36, layers=20), space.from_string(text))


def main(argv: Sequence[str] | None = None) -> dict:
    cfg = parse(Config, argv, __doc__.splitlines()[0])
    methods = [m.strip() for m in cfg.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise ValueError(f"--methods {cfg.methods!r}: each must be one of {list(METHODS)}")
    refs = [r.strip() for r in cfg.references.split(",") if r.strip()]
    for r in refs:
        space.from_string(r)  # an unknown name fails now, not after the searches
    out = prepare_out(cfg.out, cfg, resume_keys=[f.name for f in dataclasses.fields(Config)
                                                 if f.name not in ("out", "data_dir", "methods", "references", "depthwise")])
    trn, tst = load("cifar10", "train", cfg.data_dir), load("cifar10", "test", cfg.data_dir)
    key = jax.random.key(cfg.seed)
    results = Records(out / "results.jsonl", key=lambda r: (r["kind"], r["name"]))

    # ---- published genotypes: parameter counts of their CIFAR-10 evaluation networks
    genotype_params = {n: published_size_params(space.GENOTYPES[n]) for n in space.GENOTYPES}

    # ---- search each method (resumable per epoch) on the same images, normalised; derive its genotype
    n = cfg.n_images or None
    x, y = np.asarray(normalize(trn.x[:n], trn.spec.mean, trn.spec.std)), trn.y[:n]
    halves = driver.split_train_val(x, y, jax.random.fold_in(key, 0))
    genotypes = {}
    for m in methods:
        if ("search", m) not in results.done():
            results.append(_search(m, cfg, halves, jax.random.fold_in(key, 1), out / f"search_{m}"))
        genotypes[m] = results.done()[("search", m)]["genotype"]

    # ---- train every derived genotype and the references with one recipe
    tcfg = train.TrainConfig(epochs=cfg.eval_epochs, batch_size=cfg.eval_batch, lr=0.025, weight_decay=3e-4,
                             nesterov=False, cutout=cfg.cutout, aux_weight=cfg.aux_weight, drop_path=cfg.drop_path)
    data = trn.take(np.arange(cfg.eval_images)) if cfg.eval_images else trn
    jobs = {m: genotypes[m] for m in methods} | {r: space.to_string(space.from_string(r)) for r in refs}
    for name, text in jobs.items():
        if ("train", name) not in results.done():
            results.append(_evaluate(name, text, cfg, tcfg, data, tst, jax.random.fold_in(key, 2), out / f"train_{name}"))
    done = results.done()

    def entry(name, text):
        rec = done[("train", name)]
        return {"genotype": text, "params": rec["params"], "params_c36_20": published_size_params(text),
                "test_acc": rec["test_acc"], "train_seconds": rec["seconds"]}

    summary = {
        "genotype_params": genotype_params,
        "published_params_m": space.PUBLISHED_PARAMS_M,
        "searched": {m: entry(m, genotypes[m]) | {k: done[("search", m)][k] for k in ("estimator", "search_seconds", "step_seconds", "skip_share")}
                     for m in methods},
        "references": {r: entry(r, jobs[r]) for r in refs},
        "search": {"C": cfg.C, "layers": cfg.layers, "epochs": cfg.epochs, "batch": cfg.batch, "images": int(len(x))},
        "evaluation": {"C": cfg.eval_C, "layers": cfg.eval_layers, "epochs": cfg.eval_epochs, "train_images": len(data),
                       "test_images": len(tst), "recipe": dataclasses.asdict(tcfg)},
    }
    write_json(out / "summary.json", summary, indent=1)
    print(json.dumps({k: summary[k] for k in ("genotype_params", "searched", "references")}, indent=1))
    return summary


def _search(method: str, cfg: Config, halves, key, folder: Path) -> dict:
    """One DARTS-space search; returns its record (derived genotype, timings)."""
    est, partial, edge_norm, warm = METHODS[method]
    folder.mkdir(parents=True, exist_ok=True)
    (tr, va) = halves
    steps = len(tr[0]) // cfg.batch
    if steps == 0:
        raise ValueError(f"{len(tr[0])} search images per half are fewer than one batch of {cfg.batch}")
    conf = SearchConfig(total_steps=cfg.epochs * steps, estimator=est, warmup_steps=int(warm * cfg.epochs * steps))
    stage = driver.Stage(net=DartsSupernet(C=cfg.C, layers=cfg.layers, partial=partial, depthwise=cfg.depthwise),
                         init_alpha=lambda k: darts_cells.init_alpha(k, edge_norm=edge_norm),
                         mix=darts_cells.mixing_weights, op_mask=darts_cells.full_mask(), epochs=cfg.epochs)
    log = Records(folder / "alpha.jsonl", key=lambda r: r["epoch"])
    times = []

    def extra(state, epoch):
        times.append(time.perf_counter())
        arch = darts_cells.discretize(state.alpha)
        return {"genotype": space.to_string(arch), "skip_share": _skip_share(arch)}

    t0 = time.perf_counter()
    state = driver.run_stage(stage, conf, tr, va, cfg.batch, key, folder / "search.ckpt", log.append, extra=extra)
    arch = darts_cells.discretize(state.alpha)
    epochs = [r for _, r in sorted(log.done().items())]
    per_epoch = np.diff([t0] + times)[1:] if len(times) > 1 else np.diff([t0] + times)  # the first epoch compiles
    return {"kind": "search", "name": method, "estimator": est, "genotype": space.to_string(arch),
            "skip_share": _skip_share(arch), "skip_share_per_epoch": [r["skip_share"] for r in epochs],
            "search_seconds": time.perf_counter() - t0,
            "step_seconds": float(np.median(per_epoch) / steps) if len(per_epoch) else None}


def _skip_share(arch: np.ndarray) -> float:
    """Share of parameter-free ops (skip, pools) among the normal cell's 8 ops."""
    free = {space.OPS.index(o) for o in ("skip_connect", "max_pool_3x3", "avg_pool_3x3")}
    return float(np.mean([int(o) in free for o in np.asarray(arch)[0, :, :, 1].ravel()]))


def _evaluate(name: str, text: str, cfg: Config, tcfg, data, test, key, folder: Path) -> dict:
    """Train the evaluation network of one genotype (resumable per epoch) and test it."""
    arch = space.from_string(text)
    net = DartsNetwork(C=cfg.eval_C, layers=cfg.eval_layers, auxiliary=cfg.aux_weight > 0, depthwise=cfg.depthwise)
    t0 = time.perf_counter()
    state, history = train.fit(net, arch, data, None, tcfg, key, out=folder)
    _, acc = train.evaluate(net, state, arch, test, tcfg)
    return {"kind": "train", "name": name, "genotype": text, "test_acc": acc, "train_acc": history[-1]["train_acc"],
            "params": count_params(DartsNetwork(C=cfg.eval_C, layers=cfg.eval_layers), arch),
            "seconds": time.perf_counter() - t0}


if __name__ == "__main__":
    main()
