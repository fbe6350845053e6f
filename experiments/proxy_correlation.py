"""Zero-cost proxies vs trained accuracy on NAS-Bench-201.

    python -m experiments.proxy_correlation --n 1000 --proxies all --data-dir ../shared/data --out runs/proxies --seed 0

Samples ``--n`` cells (``--n all``: the whole space), scores each proxy on a batch of real
CIFAR-10 training images (the batch size of each proxy's paper: 128 for NASWOT, 64 for the
others, none for synflow/params/flops), and writes

* ``scores.csv``: arch string, base-5 index, one column per proxy, one per benchmark metric;
* ``correlations.json``: ``{accuracy column: {proxy: {"spearman", "kendall", "n"}}}`` for
  every accuracy column of the table (NaN scores are left out, ``n`` says how many remain;
  infinite scores count as extreme ranks);
* ``scatter.png``: a grid of proxy-vs-accuracy scatter plots.

``--batch per_arch`` scores every cell on its own random training batch with the standard
CIFAR augmentation (pad 4 with black, random crop, flip), drawn from ``fold_in(key, base-5
index)``, as the proxies' reference code does when it takes the next batch of a shuffled,
augmented loader for each network; the default ``shared`` scores all cells on one fixed,
unaugmented batch, so that scores differ only through the architecture.

``--net search`` scores the network the proxies' reference code builds (NB201 search cells:
BatchNorm without scale and shift, convs with a bias; see :mod:`jnas.nets.nb201`) instead
of the benchmark's trained network (``benchmark``, the default). For fisher the choice
decides the published figure.

Scores are appended to ``partial.jsonl`` block by block, so a killed run restarted with the
same command resumes where it stopped.

Targets (Abdelfattah et al., ICLR 2021, all 15,625 cells, CIFAR-10 Spearman): synflow 0.74,
jacob_cov 0.73, snip 0.58, grad_norm 0.58, grasp 0.48, fisher 0.36. Runtime on a 2-core CPU
with the defaults (300 cells, fast proxies): about 5 minutes; the gradient proxies
(snip, grasp, grad_norm) run at ~0.1-0.2 cells/s there, so use a GPU for those at scale.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path
from typing import Sequence

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from scipy import stats
from tqdm.auto import tqdm

from experiments.common import parse, prepare_out, save_figure
from jnas import proxies
from jnas.benchmarks import nb201 as bench
from jnas.data import load_cifar10_subset
from jnas.data.local import CIFAR10_MEAN, CIFAR10_STD
from jnas.data.pipeline import augment
from jnas.nets import NB201Network
from jnas.records import Records, write_json
from jnas.spaces import nb201 as space

BLOCK = 64  # architectures per incremental write
BATCHES = ("shared", "per_arch")
NETS = ("benchmark", "search")
MODES, INITS = tuple(proxies.MODES), tuple(proxies.INITS)  # read before the Config field named proxies hides the module


@dataclasses.dataclass(frozen=True)
class Config:
    n: str = dataclasses.field(default="300", metadata={"help": "number of cells", "items": int, "words": ("all",), "max": space.SIZE})
    proxies: str = dataclasses.field(default="naswot,synflow,params,flops", metadata={"help": "comma list or 'all'"})
    data_dir: str | None = dataclasses.field(default=None, metadata={"help": "data root (else $JNAS_DATA)"})
    out: str = dataclasses.field(default="runs/proxy_correlation", metadata={"help": "output folder"})
    seed: int = dataclasses.field(default=0, metadata={"help": "PRNG seed: cells, images, weights"})
    mode: str | None = dataclasses.field(default=None, metadata={"help": "batching mode (default: per backend)", "choices": MODES})
    chunk: int = dataclasses.field(default=16, metadata={"help": "architectures per jitted call"})
    init: str = dataclasses.field(default="shared", metadata={"help": "shared (one init) or per_arch (one per cell)", "choices": INITS})
    batch: str = dataclasses.field(default="shared", metadata={"help": "shared (one batch) or per_arch (an augmented batch per cell)", "choices": BATCHES})
    net: str = dataclasses.field(default="benchmark", metadata={"help": "benchmark (trained network) or search (reference code's cells)", "choices": NETS})


def sample_archs(key: jax.Array, n: str) -> np.ndarray:
    """``n`` distinct cells drawn without replacement (all 15,625 for ``'all'``)."""
    if n == "all":
        return np.asarray(space.enumerate_all())
    try:
        count = int(n)
    except ValueError:
        raise ValueError(f"--n must be a positive integer or 'all', got {n!r}") from None
    if not 1 <= count <= space.SIZE:
        raise ValueError(f"--n must lie in 1..{space.SIZE} or be 'all', got {count}")
    idx = jax.random.choice(key, space.SIZE, (count,), replace=False)
    return np.asarray(space.from_index(idx))


def cell_batch(images: np.ndarray, labels: np.ndarray, key: jax.Array, index: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The training batch of the cell with base-5 ``index`` under ``--batch per_arch``.

    ``size`` images drawn without replacement, padded with black (``images`` are in [0, 1],
    as torchvision pads before normalising), cropped and flipped at random, then normalised.
    """
    k_pick, k_aug = jax.random.split(jax.random.fold_in(key, index))
    idx = np.asarray(jax.random.choice(k_pick, len(images), (size,), replace=False))
    x = np.asarray(augment(k_aug, jnp.asarray(images[idx])))
    return (x - CIFAR10_MEAN) / CIFAR10_STD, labels[idx]


def load_partial(path: Path) -> dict[str, dict[int, list[float]]]:
    """Finished blocks ``{proxy: {start: values}}`` from a previous run."""
    done: dict[str, dict[int, list[float]]] = {}
    for rec in Records(path).read():  # NaN scores come back from null
        done.setdefault(rec["proxy"], {})[rec["start"]] = np.asarray(rec["values"], np.float64)
    return done


def correlations(scores: dict[str, np.ndarray], table, archs: np.ndarray) -> dict:
    """Spearman and Kendall of every proxy with every accuracy column.

    NaN scores (e.g. jacob_cov of a cell whose Jacobian is identically zero) are left out;
    infinite scores stay in as extreme ranks (NASWOT's log|K| = -inf for a singular kernel
    is a valid lowest score).
    """
    result: dict = {}
    for col in table.accuracy_columns():
        acc = np.asarray(table.query(archs, col), np.float64)
        result[col] = {}
        for name, s in scores.items():
            ok = ~np.isnan(s) & np.isfinite(acc)
            if ok.sum() < 3:
                result[col][name] = {"spearman": None, "kendall": None, "n": int(ok.sum())}
                continue
            result[col][name] = {
                "spearman": float(stats.spearmanr(s[ok], acc[ok]).statistic),
                "kendall": float(stats.kendalltau(s[ok], acc[ok]).statistic),
                "n": int(ok.sum()),
            }
    return result


def plot(scores: dict[str, np.ndarray], table, archs: np.ndarray, corr: dict, path: Path) -> None:
    cols = table.accuracy_columns()
    names = list(scores)
    fig, axes = plt.subplots(len(names), len(cols), figsize=(3.2 * len(cols), 2.6 * len(names)), squeeze=False)
    for j, col in enumerate(cols):
        acc = np.asarray(table.query(archs, col))
        for i, name in enumerate(names):
            ax = axes[i, j]
            s = scores[name]
            ok = np.isfinite(s)
            ax.scatter(s[ok], acc[ok], s=3, alpha=0.4)
            pos = s[ok][s[ok] > 0]
            if pos.size and np.all(s[ok] >= 0) and pos.max() / pos.min() > 1e3:
                ax.set_xscale("symlog", linthresh=pos.min())  # synflow spans many decades, and is 0 for dead cells
            rho = corr[col][name]["spearman"]
            ax.set_title(f"{col}\n{name}  rho={rho:.2f}" if rho is not None else f"{col}\n{name}", fontsize=7)
            ax.tick_params(labelsize=6)
            ax.set_xlabel(f"{name} score", fontsize=7)
            if j == 0:
                ax.set_ylabel("accuracy (%)", fontsize=7)
    save_figure(fig, path, dpi=110)


def main(argv: Sequence[str] | None = None) -> dict:
    cfg = parse(Config, argv, __doc__.split("\n\n")[0])
    names = proxies.parse_names(cfg.proxies)
    net = NB201Network.benchmark() if cfg.net == "benchmark" else NB201Network.search_code()
    out = prepare_out(cfg.out, cfg, resume_keys=("n", "seed", "data_dir", "init", "batch", "net"))
    table = bench.load(cfg.data_dir)
    k_arch, k_img, k_init = jax.random.split(jax.random.key(cfg.seed), 3)
    archs = sample_archs(k_arch, cfg.n)
    x, y = load_cifar10_subset(cfg.data_dir, "train", normalize=cfg.batch == "shared")
    index = np.asarray(space.to_index(archs))
    order = np.asarray(jax.random.permutation(k_img, len(x)))
    partial_path = out / "partial.jsonl"
    done = load_partial(partial_path)
    scores: dict[str, np.ndarray] = {}
    for name in names:
        proxy = proxies.get(name)
        b = proxy.batch_size or 1
        per_cell = cfg.batch == "per_arch" and proxy.batch_size is not None
        batch = None if per_cell else (x[order[:b]], y[order[:b]])
        vals = np.full(len(archs), np.nan)
        starts = range(0, len(archs), BLOCK)
        with tqdm(total=len(archs), desc=name, unit="arch") as bar:
            for start in starts:
                stop = min(start + BLOCK, len(archs))
                if start in done.get(name, {}):
                    vals[start:stop] = done[name][start]
                else:
                    if per_cell:  # one call per cell, each on its own batch (chunk 1: no padding)
                        block = np.concatenate([
                            proxies.score(name, archs[i : i + 1], cell_batch(x, y, k_img, int(index[i]), b), k_init,
                                          net=net, mode=cfg.mode, chunk=1, init=cfg.init, progress=False)
                            for i in range(start, stop)])
                    else:
                        block = proxies.score(name, archs[start:stop], batch, k_init, net=net, mode=cfg.mode, chunk=cfg.chunk,
                                              init=cfg.init, progress=False)
                    vals[start:stop] = block
                    Records(partial_path).append({"proxy": name, "start": start, "values": [float(v) for v in block]})
                bar.update(stop - start)
        scores[name] = vals
    write_scores(out / "scores.csv", archs, scores, table)
    corr = correlations(scores, table, archs)
    write_json(out / "correlations.json", corr)
    plot(scores, table, archs, corr, out / "scatter.png")
    print_summary(corr)
    return corr


def write_scores(path: Path, archs: np.ndarray, scores: dict[str, np.ndarray], table) -> None:
    metrics = {m: np.asarray(table.query(archs, m)) for m in table.metrics}
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arch_str", "index"] + list(scores) + list(metrics))
        idx = np.asarray(space.to_index(archs))
        for i, a in enumerate(archs):
            w.writerow([space.to_string(a), int(idx[i])] + [repr(float(s[i])) for s in scores.values()] + [repr(float(m[i])) for m in metrics.values()])


def print_summary(corr: dict) -> None:
    for col, per in corr.items():
        cells = ", ".join(
            f"{p} {v['spearman']:.3f}" if v["spearman"] is not None and not math.isnan(v["spearman"]) else f"{p} n/a"
            for p, v in per.items()
        )
        print(f"{col} (Spearman): {cells}")


if __name__ == "__main__":
    main()
