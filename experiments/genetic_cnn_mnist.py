"""Genetic CNN on real MNIST at CPU scale ("Thiết kế cho MNIST" in the survey (docs/references.md)).

    python -m experiments.genetic_cnn_mnist --data-dir ../shared/data --out runs/genetic_cnn_mnist

The survey's design: one stage of 7 nodes (21-bit genome), 10 generations of 7 individuals,
r_C = 4, r_M = 2, p_C = 0.7, p_M = 0.2, roulette-wheel selection, each individual trained
with Adam at lr 0.01. CPU scale here (flags): 3,000 training and 1,000 validation images
drawn from the local MNIST training split, C=8 channels, 3 epochs of batch 128 per
individual; fitness = validation accuracy. The best genome found is retrained with the same
settings and scored on the 10,000 MNIST test images. Every evaluation is appended to
``evaluations.jsonl`` (a killed run resumes from it); writes ``generations.csv``,
``summary.json`` and ``search.png``. Identical genomes are trained once (same key, same
result).

Runtime (2-core CPU, defaults): about 10 minutes.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Sequence

import jax
import numpy as np

from experiments.common import generation_rows, parse, prepare_out, save_generation_plot, write_csv
from jnas.data import draw_train_val, load
from jnas import data, strategies, train
from jnas.spaces import genetic
from jnas.records import write_json


@dataclasses.dataclass(frozen=True)
class Config:
    nodes: int = dataclasses.field(default=7, metadata={"help": "nodes in the single stage", "min": 2})
    population: int = dataclasses.field(default=7, metadata={"help": "individuals per generation (N)"})
    generations: int = dataclasses.field(default=10, metadata={"help": "generations after the initial one (T)"})
    r_c: int = dataclasses.field(default=4, metadata={"help": "crossover radius"})
    r_m: int = dataclasses.field(default=2, metadata={"help": "mutation radius"})
    p_c: float = dataclasses.field(default=0.7, metadata={"help": "crossover probability", "min": 0.0, "max": 1.0})
    p_m: float = dataclasses.field(default=0.2, metadata={"help": "mutation probability", "min": 0.0, "max": 1.0})
    n_train: int = dataclasses.field(default=3000, metadata={"help": "training images"})
    n_val: int = dataclasses.field(default=1000, metadata={"help": "validation images"})
    epochs: int = dataclasses.field(default=3, metadata={"help": "epochs per individual"})
    C: int = dataclasses.field(default=8, metadata={"help": "channels"})
    lr: float = dataclasses.field(default=0.01, metadata={"help": "Adam learning rate", "above": 0.0})
    seed: int = dataclasses.field(default=0, metadata={"help": "PRNG seed"})
    data_dir: str | None = dataclasses.field(default=None, metadata={"help": "data root (else $JNAS_DATA)"})
    out: str = dataclasses.field(default="runs/genetic_cnn_mnist", metadata={"help": "output folder"})


def main(argv: Sequence[str] | None = None) -> dict:
    cfg = parse(Config, argv, __doc__.splitlines()[0])
    out = prepare_out(cfg.out, cfg, resume_keys=[f.name for f in dataclasses.fields(Config) if f.name not in ("out", "data_dir")])
    key = jax.random.key(cfg.seed)
    space = genetic.GeneticSpace((cfg.nodes,))
    tr, va = draw_train_val(load("mnist", "train", cfg.data_dir), cfg.n_train, cfg.n_val, key)
    tc = train.TrainConfig(epochs=cfg.epochs, batch_size=128, lr=cfg.lr, optimizer="adam", weight_decay=0.0,
                           augment=False)
    cache: dict[str, float] = {}

    def fitness(genome) -> float:
        code = genetic.to_string(space, genome)
        if code not in cache:
            net, g = train.realise("genetic", code, 10, C=cfg.C)
            _, hist = train.fit(net, g, tr, va, tc, jax.random.fold_in(key, 2), progress=False)
            cache[code] = hist[-1]["val_acc"]
        return cache[code]

    def objective(genomes):
        f = np.array([fitness(g) for g in np.asarray(genomes)], np.float32)
        return f, f

    strategy = strategies.genetic_cnn(space, cfg.population, cfg.r_c, cfg.r_m, cfg.p_c, cfg.p_m)
    budget = cfg.population * (cfg.generations + 1)
    trace = strategies.run(strategy, None, objective, budget, jax.random.fold_in(key, 3), log=out / "evaluations.jsonl")
    fit = np.asarray(trace.fitness)  # (generations + 1, N)
    rows = generation_rows(fit)
    write_csv(out / "generations.csv", rows)
    flat = np.asarray(trace.archs).reshape(-1, space.length)
    best = flat[int(np.argmax(fit.ravel()))]
    code = genetic.to_string(space, best)
    net, g = train.realise("genetic", code, 10, C=cfg.C)
    state, hist = train.fit(net, g, tr, va, tc, jax.random.fold_in(key, 2), progress=False)
    test = data.load("mnist", "test", cfg.data_dir)
    _, test_acc = train.evaluate(net, state, g, test, tc)
    summary = {"best_genome": code, "best_val_acc": float(fit.max()), "retrained_val_acc": hist[-1]["val_acc"],
               "test_acc": test_acc, "test_images": len(test), "evaluations": int(fit.size),
               "distinct_genomes": len({genetic.to_string(space, a) for a in flat}),
               "train_images": len(tr), "val_images": len(va), "epochs": cfg.epochs}
    write_json(out / "summary.json", summary, indent=2)
    save_generation_plot(rows, out / "search.png", "generation", "validation accuracy (%)",
                         f"Genetic CNN on MNIST, best {code}")
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
