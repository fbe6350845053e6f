"""Zero-shot NAS in the hybrid CNN-Transformer space for nucleus segmentation (2018 Data
Science Bowl, BBBC038): score many candidates with dense zero-cost proxies on the elastic
supernet, search with NSGA-II and regularized evolution against FLOPs and per-device latency,
then train the found networks, random candidates and two hand-designed baselines (U-Net and
U-Net + Transformer) under one recipe and compare Dice, IoU, params, FLOPs and latency.

    python -m experiments.seg_zero_shot --data-dir ../shared/data --search-resolutions 64 --out runs/seg_zero_shot

``--search-resolutions 64`` searches at the evaluation resolution only (the protocol of
docs/segmentation.md; the default searches every input size of the space).

Defaults: 1,000 candidates, 24 random candidates trained once, two found networks and both
baselines trained with 3 seeds each, 64x64 evaluation, 564/100 split by ``--split-seed``.
Runtime (2-core CPU): about 3.5 hours (trainings about 2 h, scoring 45 min, latency tables
20 min). The trainings that need no search (baselines, random candidates) run first; every
phase resumes where a killed run stopped (scores and trainings are appended per finished
unit), and a finished run can be extended with more ``--random``, ``--seeds`` or ``--top``
networks.
Published anchors (docs/segmentation.md): MSRF-Net 0.9224 Dice on DSB2018 (Srivastava et
al. 2021, arXiv 2105.07451, at 256x256 with their own split).

Writes ``config.json``, ``scores.jsonl`` (proxy scores per chunk), ``nsga2.jsonl`` and
``rea.jsonl`` (search logs), ``latency_t1.json``/``latency_t2.json`` (per-block tables),
``trainings.jsonl`` (one record per trained network and seed), ``candidates.csv``,
``trained.csv``, ``correlations.csv``, ``summary.json``, ``pareto.png`` and ``overlays/*.png``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Sequence

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from scipy import stats
from tqdm.auto import tqdm

from experiments.common import parse, prepare_out, save_figure, write_csv
from jnas.nets.hybrid import cost, standalone
from jnas.records import Records, read_json, write_json
from jnas.seg import latency
from jnas.seg import proxies as dense
from jnas.seg.baselines import BASELINES, baseline, count_params, xla_flops
from jnas.seg.data import load_nuclei
from jnas.seg.search import Scorer, pareto_under, run_nsga2, run_rea, searched
from jnas.seg.train import SegTrainConfig, fit, predict
from jnas.spaces.hybrid import VARIANTS


@dataclasses.dataclass(frozen=True)
class Config:
    space: str = dataclasses.field(default="default", metadata={"help": "hybrid space variant (tiny: a quick check)", "choices": tuple(VARIANTS)})
    candidates: int = dataclasses.field(default=1000, metadata={"help": "random candidates scored (the reference pool)"})
    proxies: str = dataclasses.field(default="naswot_pixel,jacob_cov,synflow,zen,dss",
                                     metadata={"help": "dense proxies, comma-separated (jnas.seg.proxies.PROXIES)"})
    proxy_batch: int = dataclasses.field(default=8, metadata={"help": "training images per proxy score", "min": 2})
    mode: str = dataclasses.field(default="map", metadata={"help": "batching of candidates", "choices": dense.MODES})
    chunk: int = dataclasses.field(default=16, metadata={"help": "candidates per jitted call"})
    loop_check: int = dataclasses.field(default=16, metadata={"help": "candidates per resolution timed batched and one by one, back to back (0: skip)", "min": 0})
    population: int = dataclasses.field(default=20, metadata={"help": "NSGA-II population"})
    generations: int = dataclasses.field(default=5, metadata={"help": "NSGA-II generations after the first"})
    rea_evaluations: int = dataclasses.field(default=100, metadata={"help": "regularized evolution evaluations"})
    flops_fraction: float = dataclasses.field(default=0.5, metadata={"help": "FLOPs budget as a fraction of the smaller baseline's", "above": 0.0, "max": 1.0})
    top: int = dataclasses.field(default=2, metadata={"help": "found networks trained (best aggregate within the budget)"})
    random: int = dataclasses.field(default=24, metadata={"help": "random candidates trained (proxy-Dice correlation)", "min": 0})
    seeds: int = dataclasses.field(default=3, metadata={"help": "training seeds of the found networks and baselines"})
    epochs: int = dataclasses.field(default=10, metadata={"help": "training epochs"})
    lr: float = dataclasses.field(default=3e-3, metadata={"help": "Adam learning rate", "above": 0.0})
    resolution: int = dataclasses.field(default=64, metadata={"help": "evaluation resolution", "min": 16, "max": 128})
    search_resolutions: str = dataclasses.field(default="", metadata={
        "help": "input resolutions the search may pick, comma-separated (empty: all of the space's; the scored pool "
                "and the random candidates keep all)"})
    latency_threads: str = dataclasses.field(default="1,2", metadata={"help": "CPU thread counts with a latency table", "items": int, "min": 1})
    split_seed: int = dataclasses.field(default=0, metadata={"help": "seed of the 564/100 train/test split"})
    seed: int = dataclasses.field(default=0, metadata={"help": "seed of sampling, scoring and search"})
    data_dir: str | None = dataclasses.field(default=None, metadata={"help": "data root (else $JNAS_DATA)"})
    out: str = dataclasses.field(default="runs/seg_zero_shot", metadata={"help": "output folder"})


def main(argv: Sequence[str] | None = None) -> dict:
    cfg = parse(Config, argv, __doc__.splitlines()[0])
    chosen = dense.check_names([p.strip() for p in cfg.proxies.split(",") if p.strip()])
    threads = [int(t) for t in cfg.latency_threads.split(",")]
    space = VARIANTS[cfg.space]
    if cfg.resolution not in space.resolutions:
        raise ValueError(f"--resolution {cfg.resolution} must be one of the space's resolutions {list(space.resolutions)}")
    search_space = space.with_resolutions([int(v) for v in cfg.search_resolutions.split(",")]) \
        if cfg.search_resolutions.strip() else space
    data = {r: load_nuclei(cfg.data_dir, r, cfg.split_seed) for r in space.resolutions}
    # the counts of trained networks and the speed check only add work: a finished run can be
    # extended (more random candidates, seeds or found networks) without redoing the rest
    extendable = ("out", "data_dir", "random", "seeds", "top", "loop_check")
    out = prepare_out(cfg.out, cfg, resume_keys=[f.name for f in dataclasses.fields(Config) if f.name not in extendable])
    key = jax.random.key(cfg.seed)
    k_sample, k_score, k_nsga, k_rea = jax.random.split(key, 4)
    images = {r: (d[0].x[:cfg.proxy_batch], d[0].y[:cfg.proxy_batch]) for r, d in data.items()}
    pool = np.asarray(space.sample(k_sample, cfg.candidates))
    tcfg = SegTrainConfig(epochs=cfg.epochs, lr=cfg.lr)
    # keyed by architecture too: a changed search (other settings) never reuses another network's training
    trainings = Records(out / "trainings.jsonl", key=lambda rec: (rec["name"], rec["arch"], rec["seed"]))
    (out / "overlays").mkdir(exist_ok=True)

    def train_all(jobs):
        for name, arch, seed in tqdm(jobs, desc="training"):
            if (name, arch, seed) not in trainings.done():  # re-read: another process may share the jobs
                trainings.append(_train(name, arch, seed, data, cfg, tcfg, out))

    # ---- 0. the trainings that need no search (both baselines, the random candidates) come
    # first: each finished one is kept, so a run cut short resumes with the least lost
    fixed = [(name, name, s) for name in BASELINES for s in range(cfg.seeds)]
    fixed += [(f"random_{i + 1}", space.to_string(a), 0) for i, a in enumerate(pool[:cfg.random])]
    train_all(fixed)

    # ---- 1. score the random pool, chunk by chunk (resumable), and time the loop baseline
    scorer = Scorer(space, chosen, images, k_score, reference=np.zeros((1, len(chosen))), tables={}, mode=cfg.mode, chunk=cfg.chunk)
    records = Records(out / "scores.jsonl", key=lambda r: r["chunk"])
    done = records.done()
    block = cfg.chunk * 4
    for i, start in enumerate(tqdm(range(0, len(pool), block), desc="scoring pool")):
        if i in done:
            vals = np.asarray(done[i]["scores"], np.float64)
        else:
            t0 = time.perf_counter()
            vals = dense.score(chosen, space, pool[start:start + block], images, k_score, cfg.mode, cfg.chunk,
                                 progress=False, params=scorer.params)
            records.append({"chunk": i, "scores": vals.tolist(), "seconds": time.perf_counter() - t0})
        scorer.cache.update({space.to_string(a): v for a, v in zip(pool[start:start + block], vals)})
    recs = sorted(records.read(), key=lambda r: r["chunk"])
    pool_scores = scorer.raw(pool)
    scorer.reference = pool_scores
    bench_file = out / "scoring_bench.json"
    bench = read_json(bench_file) if bench_file.exists() else _bench(scorer, pool, recs, cfg)
    write_json(bench_file, bench)

    # ---- 2. costs: analytic FLOPs and params, latency tables per thread count
    tables = {f"cpu{t}": latency.measure(out / f"latency_t{t}.json", t, cfg.space)["table"] for t in threads}
    scorer.tables = tables
    latency_check = {f"cpu{t}": _table_error(out / f"latency_t{t}.json") for t in threads}
    costs = scorer.costs(pool)
    pool_params = dense.analytic(space, pool)[:, 0]
    agg = scorer.aggregate(pool)

    # ---- 3. baselines' size (FLOPs budget = a fraction of the smaller baseline's)
    r = cfg.resolution
    base_info = {}
    for name in BASELINES:
        net = baseline(name)
        p = net.init(jax.random.key(0), np.zeros((1, r, r, 3), np.float32))["params"]
        base_info[name] = {"params": count_params(p), "flops": xla_flops(net, p, (1, r, r, 3))}
    budget = cfg.flops_fraction * min(b["flops"] for b in base_info.values())

    # ---- 4. search
    nsga, columns = run_nsga2(scorer, cfg.population, cfg.generations, k_nsga, out / "nsga2.jsonl", space=search_space)
    rea = run_rea(scorer, budget, cfg.rea_evaluations, k_rea, out / "rea.jsonl", space=search_space)
    allowed = np.isin(pool[:, 0], [space.resolutions.index(v) for v in search_space.resolutions])
    seen = np.unique(np.concatenate([pool[allowed], searched(scorer, nsga, search_space), searched(scorer, rea, search_space)]), axis=0)
    seen_costs, seen_agg = scorer.costs(seen), scorer.aggregate(seen)
    fronts = {}
    for device in ["flops"] + [f"latency_{d}" for d in tables]:
        c = seen_costs[device]
        budgets = [budget] if device == "flops" else list(np.quantile(c, [0.1, 0.25, 0.5]))
        fronts[device] = [{"budget": float(b), "archs": [space.to_string(seen[i]) for i in pareto_under(seen_agg, c, b)]}
                          for b in budgets]
    found = _within_budget(space, seen, seen_agg, seen_costs["flops"], budget, cfg.top, r)

    # ---- 5. train the found networks with every seed
    jobs = [(f"found_{i + 1}", space.to_string(a), s) for i, a in enumerate(found) for s in range(cfg.seeds)]
    train_all(jobs)
    done = trainings.done()
    results = {(name, seed): _with_latency(done[(name, arch, seed)], space, tables) for name, arch, seed in jobs + fixed}

    # ---- 6. tables, correlations, plots, summary
    write_csv(out / "candidates.csv", [
        {"arch": space.to_string(a), **{n: float(v) for n, v in zip(chosen, s)}, "aggregate": float(g),
         "params": int(pp), **{k: float(v[i]) for k, v in costs.items()}}
        for i, (a, s, g, pp) in enumerate(zip(pool, pool_scores, agg, pool_params))])
    rows = [{k: v for k, v in rec.items() if k != "dice_per_image"} for rec in results.values()]
    write_csv(out / "trained.csv", rows)
    rand = [results[(f"random_{i + 1}", 0)] for i in range(cfg.random)]
    corr = []
    if len(rand) >= 3:
        dice = np.array([rec["dice"] for rec in rand])
        idx = {space.to_string(a): i for i, a in enumerate(pool)}
        cols = {n: pool_scores[[idx[rec["arch"]] for rec in rand], j] for j, n in enumerate(chosen)}
        cols["aggregate"] = agg[[idx[rec["arch"]] for rec in rand]]
        cols["flops"] = np.array([rec["flops"] for rec in rand])
        cols["params"] = np.array([rec["params"] for rec in rand])
        for n, v in cols.items():
            tau, p_tau = stats.kendalltau(v, dice)
            rho, p_rho = stats.spearmanr(v, dice)
            corr.append({"proxy": n, "kendall_tau": float(tau), "kendall_p": float(p_tau), "spearman": float(rho),
                         "spearman_p": float(p_rho), "n": len(dice)})
        write_csv(out / "correlations.csv", corr)

    def entry(name):
        recs = [results[(name, s)] for s in range(cfg.seeds)]
        d = np.array([rec["dice"] for rec in recs])
        return {"arch": recs[0]["arch"], "dice_mean": float(d.mean()), "dice_std": float(d.std(ddof=1)) if len(d) > 1 else 0.0,
                "dice_seeds": d.tolist(), "iou_mean": float(np.mean([rec["iou"] for rec in recs])),
                "flops": recs[0]["flops"], "params": recs[0]["params"],
                **{k: recs[0][k] for k in recs[0] if k.startswith("latency")}}

    summary = {
        "split_seed": cfg.split_seed, "evaluation_resolution": r,
        "search_resolutions": list(search_space.resolutions), "train": int(len(data[r][0].x)), "test": int(len(data[r][1].x)),
        "recipe": dataclasses.asdict(tcfg), "proxies": list(chosen),
        "baseline": {name: entry(name) for name in BASELINES},
        "found": [entry(f"found_{i + 1}") | {"aggregate": float(scorer.aggregate(space.from_string(results[(f'found_{i + 1}', 0)]['arch']))[0])}
                  for i in range(len(found))],
        "flops_budget": budget, "proxy_dice_kendall": {c["proxy"]: c["kendall_tau"] for c in corr},
        "proxy_dice_spearman": {c["proxy"]: c["spearman"] for c in corr},
        "random_dice": {"mean": float(np.mean([x["dice"] for x in rand])) if rand else None,
                        "max": float(np.max([x["dice"] for x in rand])) if rand else None, "n": len(rand)},
        "scoring": bench, "latency_table_check": latency_check, "pareto": fronts, "search_columns": columns,
        "candidates_seen": int(len(seen)),
    }
    best_base = max(summary["baseline"].values(), key=lambda b: b["dice_mean"])
    small_base = min(b["flops"] for b in summary["baseline"].values())
    summary["claim"] = [{"found": f["arch"], "dice_at_least_both_baselines": f["dice_mean"] >= best_base["dice_mean"],
                         "flops_at_most_half_smaller_baseline": f["flops"] <= 0.5 * small_base} for f in summary["found"]]
    write_json(out / "summary.json", summary, indent=2)
    _plot(out, costs["flops"], agg, seen_costs["flops"], seen_agg, found, scorer, summary, budget)
    print(json.dumps({k: summary[k] for k in ("baseline", "found", "proxy_dice_kendall", "claim")}, indent=2))
    return summary


def _within_budget(space, seen, agg, flops, budget, top, r) -> list[np.ndarray]:
    """The ``top`` candidates of highest aggregate whose stand-alone network's XLA FLOPs (the
    count the baselines are measured with) are within ``budget``; the closed-form count, within
    a few percent of XLA's, preselects them. Genomes that differ only in unused genes are
    one network (:meth:`HybridSpace.canonical`): each network is taken once."""
    found, taken = [], set()
    for i in np.argsort(-agg):
        same = space.to_string(space.canonical(seen[i]))
        if flops[i] > 1.1 * budget or same in taken:
            continue
        net = standalone(space, seen[i])
        res = space.decode(seen[i]).resolution
        p = jax.eval_shape(lambda net=net, res=res: net.init(jax.random.key(0), np.zeros((1, res, res, 3), np.float32)))["params"]
        p = jax.tree.map(lambda t: np.zeros(t.shape, t.dtype), p)
        if xla_flops(net, p, (1, res, res, 3)) <= budget:
            found.append(seen[i])
            taken.add(same)
        if len(found) == top:
            return found
    raise RuntimeError(f"only {len(found)} candidates within the FLOPs budget {budget:.3g}; raise --flops-fraction")


def _bench(scorer: Scorer, pool, recs, cfg) -> dict:
    """Candidates/s of batched scoring (``cfg.mode``) and of one-by-one scoring (``loop``),
    timed back to back on the same candidates (``loop_check`` per resolution, taken from the
    pool) after both are compiled, with the largest relative score difference; plus the rates
    the pool's chunks were scored at (a chunk slowed by another process is an outlier there)."""
    rates = [len(r["scores"]) / r["seconds"] for r in (recs[1:] or recs)]  # the first chunk compiles
    out = {"mode": cfg.mode, "chunk": cfg.chunk, "pool_candidates_per_s_median": float(np.median(rates)),
           "pool_candidates_per_s_chunks": [float(v) for v in rates], "pool_first_chunk_s_with_compile": recs[0]["seconds"]}
    if not cfg.loop_check:
        return out
    part = np.concatenate([pool[pool[:, 0] == g][:cfg.loop_check] for g in np.unique(pool[:, 0])])
    warm = part[np.unique(part[:, 0], return_index=True)[1]]  # one candidate per resolution: compile outside the timing
    secs = {}
    for mode in (cfg.mode, "loop"):
        run = lambda archs, mode=mode: dense.score(scorer.chosen, scorer.space, archs, scorer.images, scorer.key, mode,
                                                   cfg.chunk, progress=False, params=scorer.params)
        run(warm)
        t0 = time.perf_counter()
        vals = run(part)
        secs[mode] = time.perf_counter() - t0
        if mode == "loop":
            rel = np.abs(vals - batched) / np.maximum(np.abs(batched), 1e-6)
        else:
            batched = vals
    out |= {"timed_candidates": len(part), "candidates_per_s": len(part) / secs[cfg.mode],
            "loop_candidates_per_s": len(part) / secs["loop"], "speedup_vs_loop": secs["loop"] / secs[cfg.mode],
            "loop_max_rel_diff": float(rel.max())}
    return out


def _table_error(path: Path) -> dict:
    rows = json.loads(path.read_text())["whole_networks"] or []
    if not rows:
        return {}
    ratio = np.array([r["table_s"] / r["measured_s"] for r in rows])
    return {"networks": len(rows), "table_over_measured_median": float(np.median(ratio)),
            "table_over_measured_min": float(ratio.min()), "table_over_measured_max": float(ratio.max())}


def _with_latency(rec: dict, space, tables: dict) -> dict:
    """A training record with its candidate's latency predicted from each device's table
    (baselines have no table entry: their measured latency stands alone)."""
    if rec["name"] in BASELINES:
        return rec
    a = space.from_string(rec["arch"])
    return rec | {f"latency_{d}": float(latency.predict(space, t, a)[0]) for d, t in tables.items()}


def _train(name, arch, seed, data, cfg, tcfg, out) -> dict:
    r, space = cfg.resolution, VARIANTS[cfg.space]
    if name in BASELINES:
        net, res = baseline(name), r
    else:
        a = space.from_string(arch)
        net, res = standalone(space, a), space.decode(a).resolution
    train, test = data[res]
    rec = fit(net, train, test, data[r][1].y, tcfg, jax.random.key(1000 + seed), desc=f"{name} seed {seed}")
    params = rec.pop("params_tree")
    flops = xla_flops(net, params, (1, res, res, 3))
    one = jax.numpy.asarray(test.x[:1])
    lat = {"latency_measured_s": latency.time_fn(jax.jit(lambda x: net.apply({"params": params}, x)), one)}
    if seed == 0 and (name.startswith("found") or name in BASELINES):
        _overlay(out / "overlays" / f"{name}.png", net, params, data[res][1], data[r][1].y, r, name, rec["dice"])
    extra = {"flops_analytic": cost(space, space.from_string(arch)).flops} if name not in BASELINES else {}
    return {"name": name, "seed": seed, "arch": arch, "resolution": res, "dice": rec["dice"], "iou": rec["iou"],
            "params": count_params(params), "flops": flops, **extra, **lat, "train_loss": rec["train_loss"],
            "steps": rec["steps"], "compile_s": rec["compile_s"], "train_s": rec["train_s"],
            "dice_per_image": rec["dice_per_image"]}


def _overlay(path, net, params, test, masks, r, name, dice) -> None:
    n = 4  # held-out images shown (the PNG is mostly photograph: its size grows with n)
    prob = predict(net, params, test.x[:n], resolution=r)
    img = test.x[:n]
    img = (img - img.min()) / (img.max() - img.min() + 1e-9)
    if img.shape[1] != r:
        img = np.asarray(jax.image.resize(img, (len(img), r, r, 3), "linear"))
    fig, axes = plt.subplots(2, n, figsize=(2 * n, 4.2))
    for i in range(n):
        axes[0, i].imshow(img[i])
        axes[0, i].contour(masks[i], levels=[0.5], colors="lime", linewidths=0.8)
        axes[1, i].imshow(img[i])
        axes[1, i].contour(prob[i], levels=[0.5], colors="red", linewidths=0.8)
        axes[0, i].axis("off"), axes[1, i].axis("off")
    axes[0, 0].set_title("ground truth (green)", fontsize=8, loc="left")
    axes[1, 0].set_title(f"{name}: prediction (red), test Dice {dice:.3f}", fontsize=8, loc="left")
    save_figure(fig, path, dpi=90, colors=32)  # photographs take many colours: 32, not 64, halves the file


def _plot(out, pool_flops, pool_agg, seen_flops, seen_agg, found, scorer, summary, budget) -> None:
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    ax.scatter(pool_flops / 1e6, pool_agg, s=4, c="0.75", label="random pool")
    front = pareto_under(seen_agg, seen_flops, np.inf)
    ax.plot(seen_flops[front] / 1e6, seen_agg[front], "k.-", ms=5, label="Pareto front (all seen)")
    ff = scorer.costs(np.stack(found))["flops"]
    ax.scatter(ff / 1e6, scorer.aggregate(np.stack(found)), marker="*", s=120, c="r", label="found (trained)")
    for name, b in summary["baseline"].items():
        ax.axvline(b["flops"] / 1e6, ls="--", lw=1, c="C0" if name == "unet" else "C1", label=f"{name} FLOPs")
    ax.axvline(budget / 1e6, ls=":", c="k", label="FLOPs budget")
    ax.set(xscale="log", xlabel="MFLOPs per image", ylabel="aggregated proxy score (AZ-NAS ranks)")
    ax.legend(fontsize=7)
    save_figure(fig, out / "pareto.png", dpi=110)
    rows = list(summary["baseline"].items()) + [(f"found_{i + 1}", f) for i, f in enumerate(summary["found"])]
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for name, e in rows:
        ax.errorbar(e["flops"] / 1e6, e["dice_mean"], yerr=e["dice_std"], fmt="o", capsize=3, label=name)
    ax.set(xscale="log", xlabel="MFLOPs per image (XLA)", ylabel="test Dice (mean +- sd over seeds)")
    ax.legend(fontsize=7)
    save_figure(fig, out / "dice_vs_flops.png", dpi=110)


if __name__ == "__main__":
    main()
