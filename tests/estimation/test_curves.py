"""Learning-curve models: the formulas of the survey (docs/references.md), parameter recovery from noisy synthetic
curves, and Domhan et al.'s MCMC ensemble on a curve with a known end."""

import math

import jax
import numpy as np
import pytest

from jnas.estimation import curves

# True parameters of one plausible accuracy curve per model (values in [0, 1] over 1..300).
TRUE = {
    "vapor_pressure": (-0.2, -1.5, 0.02), "pow3": (0.9, 0.6, 0.7), "log_log_linear": (0.1, 1.6),
    "hill3": (0.92, 1.3, 4.0), "log_power": (0.9, 1.2, -1.4), "pow4": (0.92, 0.5, 1.0, 0.8),
    "mmf": (0.92, 0.1, 0.2, 1.5), "exp4": (0.93, 0.6, 0.2, 0.6), "janoschek": (0.92, 0.1, 0.15, 1.1),
    "weibull": (0.92, 0.1, 0.12, 1.3), "ilog2": (0.95, 0.3),
}

# The survey's table, typed out again with the math module, evaluated at x = 3.
BY_HAND = {
    "vapor_pressure": lambda a, b, c, x: math.exp(a + b / x + c * math.log(x)),
    "pow3": lambda c, a, al, x: c - a * x ** (-al),
    "log_log_linear": lambda a, b, x: math.log(a * math.log(x) + b),
    "hill3": lambda ymax, eta, k, x: ymax * x**eta / (k**eta + x**eta),
    "log_power": lambda a, b, c, x: a / (1 + (x / math.e**b) ** c),
    "pow4": lambda c, a, b, al, x: c - (a * x + b) ** (-al),
    "mmf": lambda al, be, k, d, x: al - (al - be) / (1 + (k * x) ** d),
    "exp4": lambda c, a, b, al, x: c - math.exp(-a * x**al + b),
    "janoschek": lambda al, be, k, d, x: al - (al - be) * math.exp(-k * x**d),
    "weibull": lambda al, be, k, d, x: al - (al - be) * math.exp(-((k * x) ** d)),
    "ilog2": lambda c, a, x: c - a / math.log(x + 1),
}


def test_eleven_models_match_the_survey_formulas():
    assert set(curves.MODELS) == set(BY_HAND) and len(curves.MODELS) == 11
    for name, p in TRUE.items():
        assert curves.evaluate(name, p, 3.0) == pytest.approx(BY_HAND[name](*p, 3.0), rel=1e-12)
        # Batched parameters broadcast against x.
        batch = np.stack([p, p])
        np.testing.assert_allclose(curves.evaluate(name, batch, np.array([3.0, 5.0])),
                                   [[BY_HAND[name](*p, 3.0), BY_HAND[name](*p, 5.0)]] * 2, rtol=1e-12)


@pytest.mark.parametrize("name", sorted(TRUE))
def test_fit_recovers_parameters_from_a_noisy_curve(name):
    x = np.arange(1, 101.0)
    p = np.asarray(TRUE[name])
    noise = 0.002 * np.asarray(jax.random.normal(jax.random.key(sorted(TRUE).index(name)), (100,)))
    fit = curves.fit(name, x, curves.evaluate(name, p, x) + noise, jax.random.key(1))
    # Noise sd 0.002 over 100 epochs: parameters within 15% (or 0.03), and the fitted curve
    # extrapolated to epoch 300 within 0.006 of the true one.
    np.testing.assert_allclose(fit.params, p, rtol=0.15, atol=0.03)
    xe = np.arange(1, 301.0)
    assert np.abs(curves.evaluate(name, fit.params, xe) - curves.evaluate(name, p, xe)).max() < 0.006
    assert fit.sse < 100 * 0.002**2 * 2  # about the noise, not more


@pytest.mark.parametrize("names", [
    ("pow3", "log_power", "hill3", "ilog2"),  # four of the models: the fast case
    pytest.param(None, marks=pytest.mark.slow),  # all eleven (least squares from nine starts each)
])
def test_ensemble_predicts_the_end_of_a_curve_and_the_stop_probability(names):
    x = np.arange(1, 101.0)
    p = (0.9, 0.6, 0.7)
    y = curves.evaluate("pow3", p, x) + 0.005 * np.asarray(jax.random.normal(jax.random.key(0), (100,)))
    truth = float(curves.evaluate("pow3", p, 100.0))
    post = curves.fit_ensemble(x[:30], y[:30], 100, jax.random.key(0), names=names, walkers=64, steps=300, burn=150)
    mean = float(post.mean([100.0])[0])
    # Seeing 30 of 100 epochs, the prediction is closer to the truth than the last-value baseline.
    assert abs(mean - truth) < 0.02 and abs(mean - truth) < abs(curves.baseline_last(y[:30]) - truth)
    assert curves.prob_greater(post, 100, truth - 0.05) > 0.95
    assert curves.prob_greater(post, 100, truth + 0.05) < 0.05
    assert np.all(post.weights >= 0) and np.all(post.sigma > 0)


def test_bad_input():
    with pytest.raises(ValueError, match="unknown learning-curve model 'pow5'.*pow3"):
        curves.fit("pow5", [1, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        curves.fit("pow3", [0, 1, 2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="equal length"):
        curves.fit("pow3", [1, 2, 3], [0.1, 0.2])
