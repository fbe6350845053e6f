"""Learning-curve extrapolation (Domhan, Springenberg & Hutter, IJCAI 2015).

Eleven parametric models of accuracy y (a fraction in [0, 1]) against epoch x >= 1, as
listed in the survey (docs/references.md; its table "Ngoại suy đường cong học tập") and in Domhan et
al.'s Table 1:

=================  ==============================================
vapor_pressure     exp(a + b / x + c log x)
pow3               c - a x^(-alpha)
log_log_linear     log(a log x + b)
hill3              ymax x^eta / (kappa^eta + x^eta)
log_power          a / (1 + (x / e^b)^c)
pow4               c - (a x + b)^(-alpha)
mmf                alpha - (alpha - beta) / (1 + (kappa x)^delta)
exp4               c - exp(-a x^alpha + b)
janoschek          alpha - (alpha - beta) exp(-kappa x^delta)
weibull            alpha - (alpha - beta) exp(-(kappa x)^delta)
ilog2              c - a / log(x + 1)
=================  ==============================================

(ilog2 uses log(x + 1), as Domhan et al.'s code does, so that it is finite at x = 1.)

* :func:`fit` -- least squares for one model (scipy ``least_squares`` from several starts).
* :func:`fit_ensemble` -- Domhan's weighted combination f_comb = sum_k w_k f_k(x | theta_k)
  with Gaussian noise, sampled by MCMC (emcee's affine-invariant ensemble sampler, as in the
  paper). Priors: w_k >= 0, sigma > 0, every model finite, f_comb in [0, 1] and not
  decreasing from the last observed epoch to the horizon.
* :func:`prob_greater` -- P(y(m) > y_best | y_1..n), the quantity Domhan et al. stop a run
  on (stop when below 5%); :func:`baseline_last` -- predict the last observed value.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import numpy as np
import scipy.optimize
import scipy.stats
from jaxtyping import PRNGKeyArray


@dataclasses.dataclass(frozen=True)
class CurveModel:
    """``fn(x, *params)`` with numpy broadcasting over params, its parameter names, a start point."""

    fn: Callable[..., np.ndarray]
    params: tuple[str, ...]
    p0: tuple[float, ...]


def _pow(base, exponent):
    return np.power(base, exponent)


MODELS: dict[str, CurveModel] = {
    "vapor_pressure": CurveModel(lambda x, a, b, c: np.exp(a + b / x + c * np.log(x)), ("a", "b", "c"), (-0.6, -0.5, 0.04)),
    "pow3": CurveModel(lambda x, c, a, alpha: c - a * _pow(x, -alpha), ("c", "a", "alpha"), (0.84, 0.52, 0.5)),
    "log_log_linear": CurveModel(lambda x, a, b: np.log(a * np.log(x) + b), ("a", "b"), (0.5, 1.5)),
    "hill3": CurveModel(lambda x, ymax, eta, kappa: ymax * _pow(x, eta) / (_pow(kappa, eta) + _pow(x, eta)),
                        ("ymax", "eta", "kappa"), (0.9, 1.0, 2.0)),
    "log_power": CurveModel(lambda x, a, b, c: a / (1.0 + _pow(x / np.exp(b), c)), ("a", "b", "c"), (0.9, 0.5, -1.0)),
    "pow4": CurveModel(lambda x, c, a, b, alpha: c - _pow(a * x + b, -alpha), ("c", "a", "b", "alpha"), (0.9, 1.0, 1.0, 0.5)),
    "mmf": CurveModel(lambda x, alpha, beta, kappa, delta: alpha - (alpha - beta) / (1.0 + _pow(kappa * x, delta)),
                      ("alpha", "beta", "kappa", "delta"), (0.9, 0.1, 0.3, 1.0)),
    "exp4": CurveModel(lambda x, c, a, b, alpha: c - np.exp(-a * _pow(x, alpha) + b), ("c", "a", "b", "alpha"), (0.9, 0.5, 0.0, 0.5)),
    "janoschek": CurveModel(lambda x, alpha, beta, kappa, delta: alpha - (alpha - beta) * np.exp(-kappa * _pow(x, delta)),
                            ("alpha", "beta", "kappa", "delta"), (0.9, 0.1, 0.3, 1.0)),
    "weibull": CurveModel(lambda x, alpha, beta, kappa, delta: alpha - (alpha - beta) * np.exp(-_pow(kappa * x, delta)),
                          ("alpha", "beta", "kappa", "delta"), (0.9, 0.1, 0.3, 1.0)),
    "ilog2": CurveModel(lambda x, c, a: c - a / np.log(x + 1.0), ("c", "a"), (0.9, 0.3)),
}


def evaluate(name: str, params, x) -> np.ndarray:
    """``MODELS[name]`` at epochs ``x``; params may carry leading batch axes (broadcast against x)."""
    model = _model(name)
    params = np.asarray(params, np.float64)
    with np.errstate(all="ignore"):
        return model.fn(np.asarray(x, np.float64), *[params[..., i, None] if params.ndim > 1 else params[i]
                                                    for i in range(len(model.params))])


@dataclasses.dataclass(frozen=True)
class Fit:
    name: str
    params: np.ndarray  # (p,) float64
    sse: float  # sum of squared residuals on the observed points


def fit(name: str, x, y, key: PRNGKeyArray | None = None, restarts: int = 8) -> Fit:
    """Least-squares fit of one model to an observed curve ``(x, y)``.

    Starts from the model's ``p0`` and from ``restarts`` random perturbations of it (log-normal
    scale factors, sign kept; drawn from ``key``); keeps the lowest sum of squared residuals.
    Non-finite predictions count as a residual of 10 so the solver steers away from them.
    """
    model = _model(name)
    x, y = _check_curve(x, y)
    key = jax.random.key(0) if key is None else key
    scales = np.exp(np.asarray(jax.random.normal(key, (restarts, len(model.p0)))))
    starts = [np.asarray(model.p0)] + [np.asarray(model.p0) * s for s in scales]

    def residual(p):
        r = evaluate(name, p, x) - y
        return np.where(np.isfinite(r), r, 10.0)

    best = None
    for p0 in starts:
        try:
            method = "lm" if len(x) >= len(p0) else "trf"  # lm needs at least as many points as params
            sol = scipy.optimize.least_squares(residual, p0, method=method, max_nfev=2000 * len(p0))
        except (ValueError, np.linalg.LinAlgError):
            continue
        sse = float(np.sum(residual(sol.x) ** 2))
        if best is None or sse < best.sse:
            best = Fit(name, sol.x, sse)
    if best is None:
        raise RuntimeError(f"least squares failed for model {name!r} from every start")
    return best


def baseline_last(y) -> float:
    """The simplest extrapolation: the final accuracy equals the last observed one."""
    return float(np.asarray(y)[-1])


@dataclasses.dataclass(frozen=True)
class Posterior:
    """MCMC samples of Domhan's combined model: per-model params, weights and noise sigma."""

    names: tuple[str, ...]
    params: tuple[np.ndarray, ...]  # per model (S, p_k)
    weights: np.ndarray  # (S, K)
    sigma: np.ndarray  # (S,)

    def curves(self, x) -> np.ndarray:
        """f_comb at epochs ``x`` for every sample: ``(S, len(x))``."""
        x = np.atleast_1d(np.asarray(x, np.float64))
        return sum(self.weights[:, k, None] * evaluate(n, p, x) for k, (n, p) in enumerate(zip(self.names, self.params)))

    def mean(self, x) -> np.ndarray:
        """Posterior mean prediction at epochs ``x``."""
        return self.curves(x).mean(0)


def fit_ensemble(
    x, y, horizon: float, key: PRNGKeyArray, names: tuple[str, ...] | None = None,
    walkers: int = 100, steps: int = 800, burn: int = 400, thin: int = 4,
) -> Posterior:
    """Sample Domhan et al.'s weighted model combination with emcee.

    Args:
      x, y: observed epochs (>= 1) and accuracies in [0, 1].
      horizon: the epoch to extrapolate to (the prior keeps f_comb(horizon) in [0, 1] and
        f_comb(horizon) >= f_comb(x[-1])).
      key: PRNG key for the least-squares restarts, the walkers' start and emcee's sampler.
      names: models to combine (default: all whose least-squares fit is finite).
      walkers, steps, burn, thin: emcee settings (the paper: 100 walkers, 700 steps, burn 500);
        walkers is raised to 2 * dim + 2 where the parameter count needs it.
    """
    import emcee

    x, y = _check_curve(x, y)
    k_fit, k_init, k_mcmc = jax.random.split(key, 3)
    names = tuple(names or MODELS)
    fits = []
    for i, n in enumerate(names):
        try:
            f = fit(n, x, y, jax.random.fold_in(k_fit, i))
        except RuntimeError:
            continue
        pred = evaluate(n, f.params, np.r_[x, horizon])
        # As Domhan et al., keep only fits that satisfy the prior on their own: finite, and at
        # the horizon within [0, 1] and not below the last observed epoch.
        if np.all(np.isfinite(pred)) and 0 <= pred[-1] <= 1 and pred[-1] >= pred[-2]:
            fits.append(f)
    if not fits:
        raise RuntimeError("no learning-curve model fits this curve within the prior (finite, in [0, 1], "
                           "not decreasing to the horizon)")
    names = tuple(f.name for f in fits)
    sizes = [len(f.params) for f in fits]
    offsets = np.cumsum([0] + sizes)
    K = len(fits)
    ndim = offsets[-1] + K + 1
    grid = np.r_[x, horizon]
    walkers = max(walkers, 2 * ndim + 2)  # emcee's stretch move needs more than 2 * ndim walkers

    def unpack(theta):  # theta (W, ndim)
        ps = [theta[:, offsets[k]:offsets[k + 1]] for k in range(K)]
        return ps, theta[:, offsets[-1]:offsets[-1] + K], theta[:, -1]

    def log_prob(theta):
        ps, w, sigma = unpack(np.atleast_2d(theta))
        comb = sum(w[:, k, None] * evaluate(n, ps[k], grid) for k, n in enumerate(names))
        fx, f_last, f_h = comb[:, :-1], comb[:, len(x) - 1], comb[:, -1]
        ok = (np.all(w >= 0, 1) & (sigma > 0) & np.all(np.isfinite(comb), 1)
              & (f_h >= f_last) & (f_h >= 0) & (f_h <= 1))
        with np.errstate(all="ignore"):
            ll = -0.5 * np.sum((y - fx) ** 2, 1) / sigma**2 - len(x) * np.log(sigma)
        return np.where(ok & np.isfinite(ll), ll, -np.inf)

    sigma0 = max(np.sqrt(min(f.sse for f in fits) / len(x)), 1e-4)
    center = np.concatenate([f.params for f in fits] + [np.full(K, 1.0 / K), [sigma0]])
    rng = np.random.default_rng(int(jax.random.randint(k_init, (), 0, 2**31 - 1)))
    start = center * (1 + 1e-3 * rng.standard_normal((walkers, ndim))) + 1e-6 * rng.standard_normal((walkers, ndim))
    start[:, -1] = np.abs(start[:, -1])
    start[:, offsets[-1]:offsets[-1] + K] = np.abs(start[:, offsets[-1]:offsets[-1] + K])
    for scale in (1e-4, 1e-5, 1e-6, 1e-8):  # walkers outside the prior support: jitter closer to the fits
        bad = ~np.isfinite(log_prob(start))
        if not bad.any():
            break
        start[bad] = center * (1 + scale * rng.standard_normal((bad.sum(), ndim)))
    start[~np.isfinite(log_prob(start))] = center
    sampler = emcee.EnsembleSampler(walkers, ndim, log_prob, vectorize=True)
    sampler.random_state = np.random.RandomState(int(jax.random.randint(k_mcmc, (), 0, 2**31 - 1))).get_state()
    sampler.run_mcmc(start, steps, progress=False, skip_initial_state_check=True)
    chain = sampler.get_chain(discard=burn, thin=thin, flat=True)
    chain = chain[np.isfinite(log_prob(chain))]
    ps, w, sigma = unpack(chain)
    return Posterior(names, tuple(ps), w, sigma)


def prob_greater(post: Posterior, x_final: float, y_best: float) -> float:
    """P(y(x_final) > y_best): the sample average of 1 - Phi((y_best - f_comb) / sigma)."""
    f = post.curves([x_final])[:, 0]
    return float(np.mean(scipy.stats.norm.sf(y_best, loc=f, scale=post.sigma)))


def _model(name: str) -> CurveModel:
    if name not in MODELS:
        raise ValueError(f"unknown learning-curve model {name!r}; valid models are {sorted(MODELS)}")
    return MODELS[name]


def _check_curve(x, y) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.ndim != 1 or x.shape != y.shape or len(x) < 2:
        raise ValueError(f"a curve needs 1-d x and y of equal length >= 2, got shapes {x.shape} and {y.shape}")
    if np.any(x < 1):
        raise ValueError(f"epochs must be >= 1 (the models use log x and x^-alpha), got min {x.min()}")
    if not np.all(np.isfinite(y)):
        raise ValueError("the observed curve has non-finite values")
    return x, y
