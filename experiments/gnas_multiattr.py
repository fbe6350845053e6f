"""GNAS on a multi-attribute task built from real MNIST: digit, odd and >= 5
(Algorithm 10 of the survey, docs/references.md; Huang et al., ACM MM 2018).

    python -m experiments.gnas_multiattr --data-dir ../shared/data --out runs/gnas_multiattr

A tree of M = 4 layers with blocks (1, 3, 3, 3): the input, two hidden layers of 3 conv
blocks (16 channels, 3x3 conv + ReLU + 2x2 max pool) and 3 attribute heads, 729 trees in all.
GNAS sweeps the layers top-down twice; before each layer's search the shared supernet
weights are trained 150 Adam steps (batch 64) with that layer's parents drawn uniformly,
then the accelerated intra-layer search picks each block's parent from the validation
rewards (mean per-attribute accuracy on 1,000 held-out training images; 5,000 for
training). Checks of the greedy assumption under the final shared weights: the rewards of
all 729 trees (``all_trees.csv``) and where GNAS's tree ranks. Finally the GNAS tree and
two hand-made trees -- fully shared (every attribute on one path) and fully separate (one
path per attribute) -- are trained from scratch with the same schedule and scored on the
10,000 MNIST test images. The GNAS paper's targets are face-attribute benchmarks
(CelebA, LFWA); on MNIST there is no published figure, so the hand-made trees are the
baselines.

Outputs: ``config.json``, ``search.jsonl`` (one line per searched layer), ``search.json``
and ``supernet.ckpt`` (the search phase, reused by a rerun), ``all_trees.csv``,
``final.jsonl`` (one line per trained tree, reused by a rerun), ``summary.json`` and
``gnas.png``. Runtime (2-core CPU, defaults): about 5 minutes.
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json
from pathlib import Path
from typing import Sequence

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import optax
from tqdm.auto import tqdm

from experiments.common import parse, prepare_out, save_figure, write_csv
from jnas.data import draw_train_val, load
from jnas import checkpoints, data
from jnas.nets.tree import TreeSupernet
from jnas.records import Records, read_json, write_json
from jnas.spaces import tree
from jnas.strategies import gnas as G


@dataclasses.dataclass(frozen=True)
class Config:
    hidden_blocks: str = dataclasses.field(default="3,3", metadata={"help": "blocks per hidden layer", "items": int})
    C: int = dataclasses.field(default=16, metadata={"help": "channels per block"})
    sweeps: int = dataclasses.field(default=2, metadata={"help": "top-down passes over the layers"})
    steps_per_layer: int = dataclasses.field(default=150, metadata={"help": "supernet steps before each layer's search"})
    final_steps: int = dataclasses.field(default=600, metadata={"help": "steps to train each final tree from scratch"})
    batch_size: int = dataclasses.field(default=64, metadata={"help": "batch size"})
    lr: float = dataclasses.field(default=1e-3, metadata={"help": "Adam learning rate", "above": 0.0})
    n_train: int = dataclasses.field(default=5000, metadata={"help": "training images"})
    n_val: int = dataclasses.field(default=1000, metadata={"help": "validation images (search rewards)"})
    seed: int = dataclasses.field(default=0, metadata={"help": "PRNG seed"})
    data_dir: str | None = dataclasses.field(default=None, metadata={"help": "data root (else $JNAS_DATA)"})
    out: str = dataclasses.field(default="runs/gnas_multiattr", metadata={"help": "output folder"})


def _with_attributes(d: data.ImageData) -> tuple[data.ImageData, tuple]:
    attrs, y = data.attributes("mnist", d.y)
    return dataclasses.replace(d, y=y), attrs


def _stream(d: data.ImageData, batch_size: int, key):
    for epoch in itertools.count():
        for x, y in data.epoch_batches(d, batch_size, key, epoch):
            yield data.normalize(x, d.spec.mean, d.spec.std), jnp.asarray(y)


def _accuracies(correct_fn, params, arch, d: data.ImageData) -> np.ndarray:
    """Per-attribute accuracy (%) over all of ``d``."""
    total = 0
    for x, y in data.epoch_batches(d, 1000, jax.random.key(0), 0, shuffle=False, drop_last=False):
        total = total + np.asarray(correct_fn(params, jnp.asarray(arch), data.normalize(x, d.spec.mean, d.spec.std),
                                              jnp.asarray(y)))
    return 100.0 * total / len(d)


def main(argv: Sequence[str] | None = None) -> dict:
    cfg = parse(Config, argv, __doc__.splitlines()[0])
    out = prepare_out(cfg.out, cfg, resume_keys=[f.name for f in dataclasses.fields(Config) if f.name not in ("out", "data_dir")])
    key = jax.random.key(cfg.seed)
    tr, va = draw_train_val(load("mnist", "train", cfg.data_dir), cfg.n_train, cfg.n_val, key)
    (tr, attrs), (va, _) = _with_attributes(tr), _with_attributes(va)
    test, _ = _with_attributes(data.load("mnist", "test", cfg.data_dir))
    hidden = tuple(int(b) for b in cfg.hidden_blocks.split(","))
    space = tree.TreeSpace((1, *hidden, len(attrs)))
    net = TreeSupernet(space, tuple(a.num_classes for a in attrs), cfg.C)
    tx = optax.adam(cfg.lr)
    step_fn, correct_fn = G.make_trainer(net, tx), G.make_rewards(net)
    example = data.normalize(tr.x[:2], tr.spec.mean, tr.spec.std)

    # --- search phase (skipped when search.json exists) ---
    if not (out / "search.json").exists():
        params = G.init_params(net, jax.random.fold_in(key, 2), example, space)
        opt_state = tx.init(params)
        batches = _stream(tr, cfg.batch_size, jax.random.fold_in(key, 3))
        arch0 = np.asarray(tree.sample(space, jax.random.fold_in(key, 4)))
        (out / "search.jsonl").unlink(missing_ok=True)  # a search phase restarts whole (minutes)
        bar = tqdm(total=cfg.sweeps * sum(b > 1 for b in space.blocks[:-1]), desc="GNAS layers")
        box = {"params": params, "opt": opt_state, "t": 0}

        def train_steps(arch, layer):
            box["params"], box["opt"], loss = G.train_layer(
                step_fn, box["params"], box["opt"], space, arch, layer,
                itertools.islice(batches, cfg.steps_per_layer), jax.random.fold_in(key, 100 + box["t"]))
            box["t"] += 1
            box["loss"] = loss

        def rewards(arch):
            return _accuracies(correct_fn, box["params"], arch, va)

        def on_step(s: G.GNASStep):
            rec = {"sweep": s.sweep, "layer": s.layer, "tree": tree.to_string(space, s.arch), "reward": s.reward,
                   "train_loss": box["loss"], "table": np.round(s.table, 3).tolist()}
            Records(out / "search.jsonl").append(rec)
            bar.update()
            bar.set_postfix(reward=f"{s.reward:.2f}")

        history = G.gnas(space, arch0, train_steps, rewards, cfg.sweeps, on_step)
        bar.close()
        checkpoints.save(out / "supernet.ckpt", box["params"])
        write_json(out / "search.json", {"initial_tree": tree.to_string(space, arch0),
                                         "tree": tree.to_string(space, history[-1].arch), "reward": history[-1].reward})
    search = read_json(out / "search.json")
    params, _ = checkpoints.restore(out / "supernet.ckpt", G.init_params(net, jax.random.fold_in(key, 2), example, space))

    # --- the greedy assumption against every tree under the same shared weights ---
    if not (out / "all_trees.csv").exists():
        rows = []
        all_trees = list(itertools.product(*[range(space.blocks[l]) for l in range(space.layers - 1)
                                             for _ in range(space.blocks[l + 1])]))
        for a in tqdm(all_trees, desc="all trees"):
            acc = _accuracies(correct_fn, params, np.array(a, np.int32), va)
            rows.append({"tree": tree.to_string(space, a), "reward": float(acc.mean()),
                         **{a_.name: float(v) for a_, v in zip(attrs, acc)}})
        write_csv(out / "all_trees.csv", rows)
    with open(out / "all_trees.csv", newline="") as f:
        every = [{**r, "reward": float(r["reward"])} for r in csv.DictReader(f)]
    rewards_all = np.array([r["reward"] for r in every])
    found_reward = next(r["reward"] for r in every if r["tree"] == search["tree"])
    rank = int(np.sum(rewards_all > found_reward + 1e-9)) + 1

    # --- final training from scratch, one line per tree ---
    candidates = {
        "gnas": search["tree"],
        "shared": "_".join("-".join("0" for _ in range(space.blocks[l + 1])) for l in range(space.layers - 1)),
        "separate": "_".join("-".join(str(min(j, space.blocks[l] - 1)) for j in range(space.blocks[l + 1]))
                             for l in range(space.layers - 1)),
    }
    final = Records(out / "final.jsonl", key=lambda r: r["name"])
    done = final.done()
    for name, code in candidates.items():
        if name in done:
            continue
        arch = jnp.asarray(tree.from_string(space, code))
        p = G.init_params(net, jax.random.fold_in(key, 5), example, space)
        o = tx.init(p)
        for x, y in tqdm(itertools.islice(_stream(tr, cfg.batch_size, jax.random.fold_in(key, 6)), cfg.final_steps),
                         total=cfg.final_steps, desc=f"train {name}"):
            p, o, _ = step_fn(p, o, arch, x, y)
        acc = _accuracies(correct_fn, p, arch, test)
        used = _used_parameters(space, p, np.asarray(arch))
        rec = {"name": name, "tree": code, "test_mean": float(acc.mean()),
               **{f"test_{a.name}": float(v) for a, v in zip(attrs, acc)}, "parameters": used}
        final.append(rec)
        done[name] = rec

    summary = {"tree": search["tree"], "initial_tree": search["initial_tree"], "search_reward": search["reward"],
               "rank_among_all_trees": rank, "trees": len(every), "best_tree_shared_weights": every[int(np.argmax(rewards_all))]["tree"],
               "best_reward_shared_weights": float(rewards_all.max()), "median_reward_shared_weights": float(np.median(rewards_all)),
               "final": [done[n] for n in candidates], "train_images": len(tr), "val_images": len(va),
               "test_images": len(test), "attributes": [a.name for a in attrs]}
    write_json(out / "summary.json", summary)
    _plot(out, Records(out / "search.jsonl").read(), rewards_all, found_reward, [done[n] for n in candidates], attrs)
    print(json.dumps(summary, indent=2))
    return summary


def _used_parameters(space: tree.TreeSpace, params, arch: np.ndarray) -> int:
    """Weights of the connections on some attribute's path (the supernet holds every candidate;
    a block that feeds no attribute is not part of the network)."""
    path = tree.ancestors(space, arch)
    total = 0
    for name, leaf in params.items():
        if name.startswith(("conv", "bias")):
            l = int(name[4:])
            parents = tree.layer_parents(space, arch, l)
            total += sum(leaf[parents[j], j].size for j in set(path[l + 1].tolist()))
        else:
            n = int(name[4:].split("_")[0])
            total += leaf[tree.layer_parents(space, arch, space.layers - 2)[n]].size
    return int(total)


def _plot(out: Path, steps: list[dict], rewards_all, found_reward, final: list[dict], attrs) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    if steps:
        axes[0].plot(range(1, len(steps) + 1), [s["reward"] for s in steps], "o-")
        axes[0].set_xticks(range(1, len(steps) + 1), [f"s{s['sweep']} l{s['layer']}" for s in steps])
    axes[0].set(xlabel="searched layer (sweep, layer)", ylabel="mean validation accuracy (%)", title="GNAS search")
    axes[1].hist(rewards_all, bins=40)
    axes[1].axvline(found_reward, color="r", label="GNAS tree")
    axes[1].set(xlabel="mean validation accuracy (%), shared weights", ylabel="trees", title="all trees")
    axes[1].legend()
    w = 0.8 / len(final)
    for i, r in enumerate(final):
        vals = [r[f"test_{a.name}"] for a in attrs] + [r["test_mean"]]
        axes[2].bar(np.arange(len(vals)) + i * w, vals, w, label=f"{r['name']} {r['tree']}")
    axes[2].set_xticks(np.arange(len(attrs) + 1) + 0.4 - w / 2, [a.name for a in attrs] + ["mean"])
    axes[2].set(ylabel="test accuracy (%)", title="trained from scratch", ylim=(80, 100))
    axes[2].legend(fontsize=7)
    save_figure(fig, out / "gnas.png", dpi=120)


if __name__ == "__main__":
    main()
