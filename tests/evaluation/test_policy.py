"""The K-model policy: cheapest adequate model, fallback to the best predicted, calibration,
per-request override."""

from __future__ import annotations

import numpy as np
import pytest

from confroute import calibration, policy
from confroute.errors import ConfigError, InputError

MODELS = ["phone", "laptop", "cloud"]


def test_cheapest_model_that_clears_else_the_best_predicted():
    probs = np.array([[0.9, 0.9, 0.9],   # phone clears
                      [0.2, 0.8, 0.9],   # laptop is the cheapest that clears
                      [0.2, 0.3, 0.4],   # nobody clears: best predicted is the cloud
                      [0.1, 0.5, 0.3]])  # nobody clears: best predicted is the laptop
    index, cleared = policy.choose(probs, [0.6, 0.6, 0.6])
    assert index.tolist() == [0, 1, 2, 1]
    assert cleared.tolist() == [True, True, False, False]


def test_decide_explains_and_honours_overrides():
    pol = policy.Policy(MODELS, [0.6, 0.6, 0.0])
    d = pol.decide([0.5, 0.7, 0.9])
    assert (d.model, d.model_index) == ("laptop", 1) and "cheaper model was below" in d.reason
    assert pol.decide([0.5, 0.7, 0.9], thresholds={"phone": 0.4}).model == "phone"
    assert pol.decide([0.5, 0.7, 0.9], model="cloud").reason == "forced by the request"
    strict = policy.Policy(MODELS, [0.95, 0.95, 0.95])
    assert "no model cleared" in strict.decide([0.5, 0.7, 0.6]).reason
    for bad in ({"thresholds": {"gpt": 0.1}}, {"model": "gpt"}):
        with pytest.raises(InputError, match="unknown model"):
            pol.decide([0.5, 0.7, 0.9], **bad)
    with pytest.raises(InputError, match=r"probs must be one P\(adequate\) per model \(3\)"):
        pol.decide([0.5, 0.7])
    with pytest.raises(ConfigError, match="at least 2 distinct non-empty names"):
        policy.Policy(["only"], [0.5])


def test_calibrated_cost_is_met_with_the_most_quality():
    rng = np.random.default_rng(0)
    probs = rng.random((500, 3))
    costs = np.tile([1.0, 3.0, 10.0], (500, 1))
    for target in (2.0, 5.0, 9.0):
        t = calibration.calibrate_cost(probs, costs, target)
        index, _ = policy.choose(probs, t)
        spent = costs[np.arange(500), index].mean()
        assert spent <= target
        # the next higher threshold would overspend
        higher = np.unique(probs[:, :-1])
        above = higher[higher > t[0]]
        if above.size:
            index, _ = policy.choose(probs, policy.shared_thresholds(above.min(), 3))
            assert costs[np.arange(500), index].mean() > target
    assert np.isinf(calibration.calibrate_cost(probs, costs, 50.0)[0])  # all to the top fits
    with pytest.raises(ConfigError, match="below the cheapest"):
        calibration.calibrate_cost(probs, costs, 0.5)


def test_calibrated_shares_are_met():
    probs = np.random.default_rng(1).random((1000, 3))
    t = calibration.calibrate_shares(probs, [0.5, 0.3, 0.2])
    index, _ = policy.choose(probs, t)
    assert np.bincount(index, minlength=3).tolist() == [500, 300, 200]
    with pytest.raises(ConfigError, match="summing to 1"):
        calibration.calibrate_shares(probs, [0.5, 0.6, 0.2])


def test_bad_probabilities_are_named():
    with pytest.raises(InputError, match="finite"):
        policy.choose(np.array([[np.nan, 1.0]]), [0.5, 0.5])
    with pytest.raises(ConfigError, match="one number per model"):
        policy.choose(np.ones((2, 2)), [0.5])


def test_utility_rule_weighs_probability_against_cost():
    probs = np.array([[0.30, 0.60, 0.90], [0.80, 0.82, 0.85]])
    costs = np.array([[1.0, 2.0, 10.0], [1.0, 2.0, 10.0]])
    pol = policy.Policy(MODELS, [0.5, 0.5, 0.0], "utility", 0.01)
    # 0.9 - 0.1 beats 0.6 - 0.02; then 0.82 - 0.02 beats 0.80 - 0.01 and 0.85 - 0.1
    assert pol.route(probs, costs).tolist() == [2, 1]
    d = pol.decide(probs[0], costs=costs[0])
    assert d.model == "cloud" and "lambda 0.01 per USD" in d.reason
    assert pol.decide(probs[0], costs=costs[0], lambda_per_usd=1.0).model == "phone"
    with pytest.raises(InputError, match="needs the request's cost"):
        pol.decide(probs[0])
    with pytest.raises(InputError, match="override lambda_per_usd, not thresholds"):
        pol.decide(probs[0], thresholds={"phone": 0.1}, costs=costs[0])
    with pytest.raises(InputError, match="threshold rule: override thresholds"):
        policy.Policy(MODELS, [0.5, 0.5, 0.0]).decide(probs[0], lambda_per_usd=1.0)
    for bad in (-1.0, float("nan")):
        with pytest.raises(ConfigError, match="lambda_per_usd must be a number >= 0"):
            policy.Policy(MODELS, [0.5, 0.5, 0.0], "utility", bad)


def test_calibrate_lambda_is_the_smallest_that_fits_the_budget():
    rng = np.random.default_rng(0)
    probs = rng.random((400, 3))
    costs = np.tile([1.0, 3.0, 10.0], (400, 1)) * rng.uniform(0.5, 2, (400, 1))

    def mean_cost(lam: float) -> float:
        chosen = policy.choose_utility(probs, costs, lam)
        return float(costs[np.arange(400), chosen].mean())

    assert mean_cost(0.0) > 4.0
    for target in (2.0, 3.0, 4.0):
        lam = calibration.calibrate_lambda(probs, costs, target)
        assert mean_cost(lam) <= target and mean_cost(lam * (1 - 1e-6)) > target
    assert calibration.calibrate_lambda(probs, costs, 100.0) == 0.0  # the best model fits
    with pytest.raises(ConfigError, match="below the cheapest"):
        calibration.calibrate_lambda(probs, costs, 0.1)
