"""Train one architecture standalone (NAS-Bench-201 protocol, low-fidelity knobs).

    python -m experiments.train_arch --space nb201 --arch "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|" \\
        --epochs 10 --data-fraction 1.0 --C 8 --N 1 --data-dir ../shared/data --out runs/train_arch

Protocol (``--split valid``, NB201's ``cifar10-valid``): a seeded half of the training images
trains, the other half validates each epoch; the test split is scored once at the end.
``--split test`` trains on the whole training split and validates on the test split.
Optimiser: NB201's SGD, Nesterov momentum 0.9, lr 0.1 cosine to 0, weight decay 5e-4, batch
256, pad-4 crop and flip. Low-fidelity knobs: --epochs, --data-fraction, --C, --N,
--resolution. Writes ``config.json``, ``metrics.csv`` (one row per epoch), ``checkpoint.ckpt`` (orbax),
``curves.png`` and ``result.json`` (with the NB201 table's accuracies of the same cell when the
table is found). Rerunning the same command resumes after the last finished epoch.

Runtime (2-core CPU): about 5 s per epoch at C=8, N=1 on the 2,542-image half of the local
CIFAR-10 subset; the full-size C=16, N=5 network is far slower. The NB201 table's 200-epoch
numbers come from the full 50k images and C=16, N=5, so a CPU run is a low-fidelity estimate.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Sequence

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from experiments.common import parse, prepare_out, save_figure
from jnas import data, train
from jnas.records import write_json

RESNET_CELL = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"


@dataclasses.dataclass(frozen=True)
class Config:
    space: str = dataclasses.field(default="nb201", metadata={"help": f"search space, one of {sorted(train.SPACES)}"})
    arch: str = dataclasses.field(default=RESNET_CELL, metadata={"help": "architecture string of the space"})
    dataset: str = dataclasses.field(default="cifar10", metadata={"help": f"one of {sorted(data.DATASETS)}"})
    split: str = dataclasses.field(default="valid", metadata={"help": "valid (NB201 half/half) or test", "choices": ("valid", "test")})
    epochs: int = dataclasses.field(default=10, metadata={"help": "epochs (the cosine schedule spans them)"})
    data_fraction: float = dataclasses.field(default=1.0, metadata={"help": "fraction of the training images", "above": 0.0, "max": 1.0})
    C: int = dataclasses.field(default=8, metadata={"help": "channels of the first stage (NB201: 16)"})
    N: int = dataclasses.field(default=1, metadata={"help": "cells per stage (NB201: 5)"})
    resolution: int = dataclasses.field(default=0, metadata={"help": "input resolution (0: native)", "min": 0})
    batch_size: int = dataclasses.field(default=256, metadata={"help": "batch size"})
    lr: float = dataclasses.field(default=0.1, metadata={"help": "initial learning rate", "above": 0.0})
    seed: int = dataclasses.field(default=0, metadata={"help": "PRNG seed"})
    data_dir: str | None = dataclasses.field(default=None, metadata={"help": "data root (else $JNAS_DATA)"})
    out: str = dataclasses.field(default="runs/train_arch", metadata={"help": "output folder"})


def main(argv: Sequence[str] | None = None) -> dict:
    cfg = parse(Config, argv, __doc__.splitlines()[0])
    train_data = data.load(cfg.dataset, "train", cfg.data_dir)
    net, arch = train.realise(cfg.space, cfg.arch, train_data.spec.num_classes, cfg.C, cfg.N)
    out = prepare_out(cfg.out, cfg, resume_keys=[f.name for f in dataclasses.fields(Config) if f.name not in ("out", "data_dir")])
    key = jax.random.key(cfg.seed)
    test_data = data.load(cfg.dataset, "test", cfg.data_dir)
    if cfg.split == "valid":
        train_data, val_data = data.split(train_data, jax.random.fold_in(key, 0))
    else:
        val_data = test_data
    train_data = data.subset(train_data, cfg.data_fraction, jax.random.fold_in(key, 1))
    tc = train.TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, resolution=cfg.resolution or None)
    print(f"training {cfg.arch} on {len(train_data)} {cfg.dataset} images ({train_data.origin}), "
          f"validating on {len(val_data)}, {cfg.epochs} epochs")
    state, history = train.fit(net, arch, train_data, val_data, tc, jax.random.fold_in(key, 2), out=out)
    _, test_acc = train.evaluate(net, state, arch, test_data, tc)
    result = {
        "arch": cfg.arch, "epochs": cfg.epochs, "train_images": len(train_data), "val_images": len(val_data),
        "final_val_acc": history[-1]["val_acc"], "test_acc": test_acc, "test_images": len(test_data),
        "data_origin": train_data.origin, "reference": _table_reference(cfg),
    }
    write_json(out / "result.json", result, indent=2)
    _plot(history, out / "curves.png", cfg)
    print(json.dumps(result, indent=2))
    return result


def _table_reference(cfg: Config) -> dict:
    """The NB201 table's accuracies of this cell (full size, full data), if the table is found."""
    if cfg.space != "nb201":
        return {}
    from jnas.benchmarks import nb201 as bench
    from jnas.spaces import nb201 as space

    try:
        table = bench.load(cfg.data_dir)
    except FileNotFoundError:
        return {}
    arch = space.from_string(cfg.arch)
    return {c: float(table.query(arch, c)) for c in table.accuracy_columns()}


def _plot(history: list[dict], path, cfg: Config) -> None:
    ep = [r["epoch"] for r in history]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
    ax[0].plot(ep, [r["train_loss"] for r in history], label="train")
    ax[0].plot(ep, [r["val_loss"] for r in history], label="validation")
    ax[0].set(xlabel="epoch", ylabel="cross-entropy")
    ax[1].plot(ep, [r["train_acc"] for r in history], label="train")
    ax[1].plot(ep, [r["val_acc"] for r in history], label="validation")
    ax[1].set(xlabel="epoch", ylabel="accuracy (%)")
    ax[0].legend()
    fig.suptitle(f"{cfg.space} C={cfg.C} N={cfg.N}: {cfg.arch}", fontsize=8)
    save_figure(fig, path, dpi=120)


if __name__ == "__main__":
    main()
