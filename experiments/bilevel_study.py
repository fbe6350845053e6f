"""Hypergradient estimators against closed forms, and TTSA's convergence rates.

    python -m experiments.bilevel_study --data-dir ../shared/data --out runs/bilevel_study

Problems with closed-form hypergradients (float64):

* ``quadratic``: g = 1/2 y'Ay - y'Bx (A with eigenvalues in [1, 20]), f = 1/2||y - c||^2 +
  mu/2 ||x||^2;
* ``ridge_mnist``: per-feature ridge penalties (exp(lambda_j)) tuned on validation data,
  500 + 500 real MNIST digits average-pooled to 7x7 (+ bias), one-hot targets.

Writes ``hypergrad_errors.json`` ``{problem: {estimator: {budget: relative_error}}}``
(budget = unroll steps, CG or Neumann iterations; implicit methods are evaluated at the
exact inner solution, unrolled ones from the cold start y0 = 0; the stochastic Neumann
error is the mean over 32 single draws), ``convergence.json`` (``||x_k - x*||^2`` per outer
iteration and wall time for TTSA, implicit and unrolled methods on a noisy oracle of the
strongly convex quadratic, and the fitted log-log slopes), ``ttsa_rates.json`` and plots. Each problem is written when done;
a rerun skips finished ones. Runtime on a 2-core CPU: about 2 minutes.

Targets (Hong et al. 2020): E||x_K - x*||^2 = O(K^-2/3) for a strongly convex outer problem,
and an O(K^-2/5)-stationary point for a weakly convex one (both upper bounds).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Sequence

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from tqdm.auto import tqdm

from experiments.common import parse, prepare_out, save_figure
from jnas.bilevel import problems, study, ttsa
from jnas.records import write_json


@dataclasses.dataclass(frozen=True)
class Config:
    data_dir: str | None = dataclasses.field(default=None, metadata={"help": "data root (else $JNAS_DATA)"})
    out: str = dataclasses.field(default="runs/bilevel_study", metadata={"help": "output folder"})
    seed: int = dataclasses.field(default=0, metadata={"help": "PRNG seed"})
    budgets: str = dataclasses.field(default="1,2,5,10,20,50,100,200", metadata={"help": "estimator budgets", "items": int})
    outer_iters: int = dataclasses.field(default=5000, metadata={"help": "outer iterations per convergence run"})
    seeds: int = dataclasses.field(default=8, metadata={"help": "noisy-oracle seeds averaged per method", "min": 1})
    noise: float = dataclasses.field(default=1.0, metadata={"help": "gradient-noise std of the stochastic oracle", "min": 0.0})
    horizons: str = dataclasses.field(default="300,1000,3000,10000,30000", metadata={"help": "weakly convex TTSA horizons", "items": int})


def _problems(cfg: Config, key: jax.Array) -> dict[str, problems.Reference]:
    data = [np.asarray(a, np.float64) for a in problems.mnist_ridge_data(cfg.data_dir)]
    return {
        "quadratic": problems.quadratic(key, dim_x=10, dim_y=30, cond=20.0, mu=0.5, noise=cfg.noise),
        "ridge_mnist": problems.ridge(*data, noise=cfg.noise * 0.01),
    }


def convergence(ref: problems.Reference, cfg: Config, key: jax.Array) -> dict:
    """Mean ||x_k - x*||^2 over seeds for TTSA / implicit / unrolled with Theorem 1's steps."""
    x_star = np.asarray(ref.x_star)
    L = study.inner_smoothness(ref, ref.x0)
    mu_l = float(np.linalg.eigvalsh(np.asarray(jax.hessian(ref.value)(x_star)))[0])
    alpha, beta = ttsa.strongly_convex_schedules(c_alpha=1.0 / mu_l, c_beta=1.0 / L, k_alpha=10.0 * L / mu_l)
    out = {"mu_outer": mu_l, "L_inner": L}
    ks = np.arange(cfg.outer_iters + 1)
    for method in ("ttsa", "implicit", "unrolled"):
        errs, walls = [], []
        for s in range(cfg.seeds):
            xs, wall = study.outer_run(ref, method, cfg.outer_iters, jax.random.fold_in(key, s), alpha, beta, 1.0 / L)
            errs.append(((xs - x_star) ** 2).sum(1))
            walls.append(wall)
        err = np.mean(errs, 0)
        tail = ks >= cfg.outer_iters // 10
        out[method] = {
            "iter": ks[:: max(1, cfg.outer_iters // 200)].tolist(),
            "err": err[:: max(1, cfg.outer_iters // 200)].tolist(),
            "wall_s_total": float(np.mean(walls)),
            "loglog_slope_last_90pct": study.loglog_slope(ks[tail], err[tail]),
        }
    return out


def weakly_convex_rates(cfg: Config, key: jax.Array) -> dict:
    """Theorem 2 setting: mean over iterates (= a uniformly drawn iterate) of ||grad l||^2
    for constant steps tuned to each horizon K; slope of log E||grad l||^2 against log K."""
    ref = problems.quadratic(key, dim_x=10, dim_y=30, cond=20.0, mu=0.0, weak=0.5, noise=cfg.noise)
    L = study.inner_smoothness(ref, ref.x0)
    horizons = [int(h) for h in cfg.horizons.split(",")]
    grad = jax.jit(jax.vmap(ref.hypergrad))
    res = {}
    for K in tqdm(horizons, desc="weakly convex horizons", leave=False):
        alpha, beta = ttsa.weakly_convex_schedules(c_alpha=0.5, c_beta=1.0 / L, horizon=K)
        vals = []
        for s in range(cfg.seeds):
            xs, _ = study.outer_run(ref, "ttsa", K, jax.random.fold_in(key, s), alpha, beta, 1.0 / L)
            vals.append(float((np.asarray(grad(xs[1:])) ** 2).sum(1).mean()))
        res[str(K)] = float(np.mean(vals))
    ks = np.array(horizons, float)
    return {"mean_sq_grad_by_horizon": res, "loglog_slope": study.loglog_slope(ks, np.array(list(res.values())))}


def main(argv: Sequence[str] | None = None) -> dict:
    cfg = parse(Config, argv, __doc__.splitlines()[0])
    out = prepare_out(cfg.out, cfg, resume_keys=("seed", "budgets", "outer_iters", "seeds", "noise", "horizons"))
    with jax.enable_x64(True):
        key = jax.random.key(cfg.seed)
        refs = _problems(cfg, key)
        budgets = [int(b) for b in cfg.budgets.split(",")]
        files = {name: out / f"{name}.json" for name in ("hypergrad_errors", "convergence")}
        results = {n: json.loads(p.read_text()) if p.exists() else {} for n, p in files.items()}
        for name, ref in tqdm(refs.items(), desc="problems"):
            if name not in results["hypergrad_errors"]:
                x = ref.x0 + 0.1 if name == "quadratic" else ref.x0 + np.log(0.01)
                results["hypergrad_errors"][name] = study.estimator_errors(ref, x, budgets, key)
                write_json(files["hypergrad_errors"], results["hypergrad_errors"], indent=1)
            # Convergence needs a strongly convex outer problem with a known x*: the quadratic.
            # (The ridge outer objective is flat in the penalties of always-zero pixels.)
            if ref.x_star is not None and name not in results["convergence"]:
                results["convergence"][name] = convergence(ref, cfg, key)
                write_json(files["convergence"], results["convergence"], indent=1)
        rates_path = out / "ttsa_rates.json"
        if rates_path.exists():
            rates = json.loads(rates_path.read_text())
        else:
            rates = {
                "strongly_convex": {p: r["ttsa"]["loglog_slope_last_90pct"] for p, r in results["convergence"].items()},
                "strongly_convex_bound": -2 / 3,
                "weakly_convex": weakly_convex_rates(cfg, key),
                "weakly_convex_bound": -2 / 5,
            }
            write_json(rates_path, rates, indent=1)
    _plot(results, rates, out)
    print(json.dumps(rates, indent=1))
    return {**results, "rates": rates}


def _plot(results: dict, rates: dict, out: Path) -> None:
    errs, conv = results["hypergrad_errors"], results["convergence"]
    fig, axes = plt.subplots(1, len(errs), figsize=(6 * len(errs), 4.5), squeeze=False)
    for ax, (prob, by_est) in zip(axes[0], errs.items()):
        for est, by_budget in by_est.items():
            b = [int(k) for k in by_budget]
            v = list(by_budget.values())
            ax.plot(b, v, "o-" if len(b) > 1 else "s", label=est)
        ax.set(xscale="log", yscale="log", xlabel="budget (steps / iterations)", ylabel="relative error", title=prob)
        ax.legend(fontsize=7)
    save_figure(fig, out / "hypergrad_errors.png", dpi=120)
    fig, axes = plt.subplots(2, len(conv), figsize=(6 * len(conv), 8), squeeze=False)
    for j, (prob, by_m) in enumerate(conv.items()):
        for m in ("ttsa", "implicit", "unrolled"):
            r = by_m[m]
            it = np.array(r["iter"])
            axes[0, j].plot(np.maximum(it, 1), r["err"], label=f"{m} (slope {r['loglog_slope_last_90pct']:.2f})")
            axes[1, j].plot(it / it[-1] * r["wall_s_total"], r["err"], label=m)
        axes[0, j].set(xscale="log", yscale="log", xlabel="outer iteration", ylabel="E||x_k - x*||^2", title=prob)
        axes[1, j].set(yscale="log", xlabel="wall time (s, jitted)", ylabel="E||x_k - x*||^2")
        axes[0, j].legend(fontsize=8)
        axes[1, j].legend(fontsize=8)
    save_figure(fig, out / "convergence.png", dpi=120)


if __name__ == "__main__":
    main()
