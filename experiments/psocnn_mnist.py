"""psoCNN on real MNIST at CPU scale (the psoCNN section of the survey (docs/references.md); Fernandes Junior & Yen 2019).

    python -m experiments.psocnn_mnist --data-dir ../shared/data --out runs/psocnn_mnist

psoCNN's settings: swarm 20, 10 iterations, c_g 0.5, depth 3..20 layers, conv up to 256
channels and 7x7 kernels, fc up to 300 units, layer-type probabilities 0.6 / 0.3 / 0.1,
fitness = validation cross-entropy after 1 epoch of Adam, the best particle retrained
longer. CPU scale here (flags): swarm 8, 5 iterations (48 evaluations), depth 3..8, conv up
to 32 channels, fc up to 128 units, 3,000 training and 1,000 validation images, 1 epoch of
batch 64 per particle; the gBest is retrained for 5 epochs and scored on the 10,000 MNIST
test images. The paper reports 99.51% test accuracy on MNIST at full scale (60k images,
100 final epochs). Every evaluation is appended to ``evaluations.jsonl`` (a killed run
resumes from it); writes ``iterations.csv``, ``summary.json`` and ``search.png``. Identical
chains are trained once (same key, same result).

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
from jnas.spaces import cnn_chain
from jnas.records import write_json


@dataclasses.dataclass(frozen=True)
class Config:
    swarm: int = dataclasses.field(default=8, metadata={"help": "particles"})
    iterations: int = dataclasses.field(default=5, metadata={"help": "PSO iterations after the initial swarm"})
    c_g: float = dataclasses.field(default=0.5, metadata={"help": "probability of following gBest per layer", "min": 0.0, "max": 1.0})
    min_layers: int = dataclasses.field(default=3, metadata={"help": "minimum initial depth (output included)"})
    max_layers: int = dataclasses.field(default=8, metadata={"help": "maximum initial depth (output included)"})
    max_channels: int = dataclasses.field(default=32, metadata={"help": "most conv output channels"})
    max_kernel: int = dataclasses.field(default=7, metadata={"help": "largest conv kernel"})
    max_units: int = dataclasses.field(default=128, metadata={"help": "most fc units"})
    n_train: int = dataclasses.field(default=3000, metadata={"help": "training images"})
    n_val: int = dataclasses.field(default=1000, metadata={"help": "validation images"})
    epochs: int = dataclasses.field(default=1, metadata={"help": "epochs per particle evaluation"})
    final_epochs: int = dataclasses.field(default=5, metadata={"help": "epochs to retrain the gBest"})
    batch_size: int = dataclasses.field(default=64, metadata={"help": "batch size"})
    lr: float = dataclasses.field(default=1e-3, metadata={"help": "Adam learning rate", "above": 0.0})
    seed: int = dataclasses.field(default=0, metadata={"help": "PRNG seed"})
    data_dir: str | None = dataclasses.field(default=None, metadata={"help": "data root (else $JNAS_DATA)"})
    out: str = dataclasses.field(default="runs/psocnn_mnist", metadata={"help": "output folder"})


def main(argv: Sequence[str] | None = None) -> dict:
    cfg = parse(Config, argv, __doc__.splitlines()[0])
    out = prepare_out(cfg.out, cfg, resume_keys=[f.name for f in dataclasses.fields(Config) if f.name not in ("out", "data_dir")])
    key = jax.random.key(cfg.seed)
    space = cnn_chain.ChainSpace(input_size=28, min_layers=cfg.min_layers, max_layers=cfg.max_layers,
                                 max_channels=cfg.max_channels, max_kernel=cfg.max_kernel, max_units=cfg.max_units)
    tr, va = draw_train_val(load("mnist", "train", cfg.data_dir), cfg.n_train, cfg.n_val, key)
    tc = train.TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, optimizer="adam",
                           weight_decay=0.0, augment=False)
    cache: dict[str, dict] = {}

    def evaluate(arch) -> dict:
        code = cnn_chain.to_string(cnn_chain.decode(arch))
        if code not in cache:
            net, a = train.realise("chain", code, 10)
            _, hist = train.fit(net, a, tr, va, tc, jax.random.fold_in(key, 2), progress=False)
            cache[code] = hist[-1]
        return cache[code]

    def objective(archs):  # fitness: minus the validation cross-entropy (psoCNN's ComputeLoss); report accuracy
        recs = [evaluate(a) for a in np.asarray(archs)]
        return (np.array([-r["val_loss"] for r in recs], np.float32), np.array([r["val_acc"] for r in recs], np.float32))

    strategy = strategies.psocnn(space, cfg.swarm, cfg.c_g)
    budget = cfg.swarm * (cfg.iterations + 1)
    trace = strategies.run(strategy, None, objective, budget, jax.random.fold_in(key, 3), log=out / "evaluations.jsonl")
    fit, acc = np.asarray(trace.fitness), np.asarray(trace.report)  # (iterations + 1, swarm)
    rows = [{**r, "val_acc_of_best": float(acc[t].ravel()[np.argmax(fit[t])]),
             "mean_depth": float(np.mean([len(cnn_chain.decode(a)) + 1 for a in trace.archs[t]]))}
            for t, r in enumerate(generation_rows(-fit, larger_is_better=False))]  # validation loss per iteration
    write_csv(out / "iterations.csv", rows)
    flat = np.asarray(trace.archs).reshape(-1, space.width, 3)
    best = cnn_chain.decode(flat[int(np.argmax(fit.ravel()))])
    code = cnn_chain.to_string(best)
    net, a = train.realise("chain", code, 10)
    final = dataclasses.replace(tc, epochs=cfg.final_epochs)
    state, hist = train.fit(net, a, tr, va, final, jax.random.fold_in(key, 4), out=out / "gbest_training")
    test = data.load("mnist", "test", cfg.data_dir)
    _, test_acc = train.evaluate(net, state, a, test, final)
    params = sum(x.size for x in jax.tree.leaves(state.params))
    summary = {"gbest": code, "gbest_val_loss": float(-fit.max()), "gbest_val_acc": float(acc.ravel()[np.argmax(fit)]),
               "retrained_val_acc": hist[-1]["val_acc"], "test_acc": test_acc, "test_images": len(test),
               "gbest_params": int(params), "evaluations": int(fit.size),
               "distinct_chains": len({cnn_chain.to_string(cnn_chain.decode(x)) for x in flat}),
               "train_images": len(tr), "val_images": len(va), "epochs": cfg.epochs, "final_epochs": cfg.final_epochs}
    write_json(out / "summary.json", summary, indent=2)
    save_generation_plot(rows, out / "search.png", "iteration", "validation cross-entropy (lower is better)",
                         f"psoCNN on MNIST, gBest {code}")
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
