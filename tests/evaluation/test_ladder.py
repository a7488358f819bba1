"""K-model quality-vs-cost curves: exact K = 2 agreement with APGR/CPT, references, CIs."""

from __future__ import annotations

import numpy as np
import pytest

from confroute import policy
from confroute.errors import DataError
from confroute.evaluation import ladder, metrics


def _pair(n=400, seed=0):
    rng = np.random.default_rng(seed)
    qe = (rng.random(n) < 0.4).astype(float)
    qc = (rng.random(n) < 0.7).astype(float)
    scores = (0.6 * (qc - qe) + rng.normal(0, 0.5, n)).round(1)  # many ties
    return scores, qe, qc


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_two_models_reproduce_apgr_and_cpt_exactly(seed):
    scores, qe, qc = _pair(seed=seed)
    two = metrics.sweep(scores, qe, qc)
    n = len(scores)
    # the policy routes to the edge iff P(edge adequate) >= t: P = -score ranks as the router
    c = ladder.curve(np.c_[-scores, np.zeros(n)], np.c_[qe, qc], np.c_[np.zeros(n), np.ones(n)])
    assert ladder.area(c) == pytest.approx(metrics.apgr(two), abs=1e-12)
    for level in (0.2, 0.5, 0.8):
        assert ladder.cost_at_level(c, level) == pytest.approx(metrics.cpt(two, level),
                                                               abs=1e-12)
    np.testing.assert_allclose(c.x, two.fraction, atol=1e-12)
    np.testing.assert_allclose(c.quality, two.quality, atol=1e-12)
    # and with bootstrap weights, point by point
    w = np.bincount(np.random.default_rng(seed).integers(0, n, n), minlength=n).astype(float)
    weighted = ladder.curve(np.c_[-scores, np.zeros(n)], np.c_[qe, qc],
                            np.c_[np.zeros(n), np.ones(n)], w)
    assert ladder.area(weighted) == pytest.approx(metrics.apgr(metrics.sweep(scores, qe, qc, w)),
                                                  abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_utility_policy_with_two_models_is_apgr_of_the_probability_gap(seed):
    rng = np.random.default_rng(seed)
    _, qe, qc = _pair(seed=seed)
    n = len(qe)
    probs = rng.random((n, 2)).round(2)
    c = ladder.curve(probs, np.c_[qe, qc], np.c_[np.zeros(n), np.ones(n)], policy="utility")
    two = metrics.sweep(probs[:, 1] - probs[:, 0], qe, qc)
    assert ladder.area(c) == pytest.approx(metrics.apgr(two), abs=1e-12)
    assert ladder.cost_at_level(c, 0.5) == pytest.approx(metrics.cpt(two, 0.5), abs=1e-12)


def test_every_utility_point_is_the_argmax_at_its_lambda():
    rng = np.random.default_rng(4)
    _, quality, _ = _ladder()
    n = len(quality)
    costs = np.tile([1.0, 3.0, 10.0], (n, 1)) * rng.uniform(0.5, 2, (n, 1))  # per-prompt tokens
    probs = rng.random(quality.shape).round(2)
    c = ladder.curve(probs, quality, costs, policy="utility")
    rows = np.arange(n)
    for lam, cost, q in zip(c.threshold[1:-1], c.cost[1:-1], c.quality[1:-1], strict=True):
        index = policy.choose_utility(probs, costs, lam + 1e-9)  # just past the breakpoint
        assert costs[rows, index].mean() == pytest.approx(cost)
        assert quality[rows, index].mean() == pytest.approx(q)
    assert np.all(np.diff(c.cost) >= -1e-12)


def _ladder(n=600, seed=0):
    rng = np.random.default_rng(seed)
    skill = np.array([0.5, 0.7, 0.9])
    difficulty = rng.random(n)
    quality = (difficulty[:, None] < skill[None, :]).astype(float)  # a clean ladder
    costs = np.tile([1.0, 3.0, 10.0], (n, 1))
    return difficulty, quality, costs


def test_every_point_is_the_policy_at_its_threshold():
    rng = np.random.default_rng(3)
    _, quality, costs = _ladder()
    probs = rng.random(quality.shape).round(2)
    c = ladder.curve(probs, quality, costs)
    for t, cost, q in zip(c.threshold, c.cost, c.quality, strict=True):
        index, _ = policy.choose(probs, policy.shared_thresholds(t, 3))
        rows = np.arange(len(index))
        assert costs[rows, index].mean() == pytest.approx(cost)
        assert quality[rows, index].mean() == pytest.approx(q)
    assert np.all(np.diff(c.cost) >= -1e-12)
    assert (c.x[0], c.x[-1], c.y[0]) == (0, 1, 0)


def test_references_order_oracle_router_random():
    difficulty, quality, costs = _ladder()
    rng = np.random.default_rng(0)
    informed = np.clip(np.array([0.5, 0.7, 0.9])[None, :] - difficulty[:, None]
                       + rng.normal(0, 0.1, quality.shape), -1, 1)
    oracle = ladder.summary(ladder.curve(ladder.oracle_probs(quality), quality, costs))
    router = ladder.summary(ladder.curve(informed, quality, costs))
    rand = ladder.random_reference(quality, costs, seeds=10)
    assert oracle["area"] > router["area"] > rand["area"]
    assert oracle["cost_at_95"] < router["cost_at_95"] < rand["cost_at_95"]
    # the oracle reaches the any-model-adequate rate at the cost of the cheapest adequate model
    # (the cheapest model when none is adequate)
    c = ladder.curve(ladder.oracle_probs(quality), quality, costs)
    assert c.quality.max() == pytest.approx(quality.max(axis=1).mean())
    cheapest_best = (quality >= quality.max(axis=1, keepdims=True)).argmax(axis=1)
    assert c.cost.min() <= costs[np.arange(len(costs)), cheapest_best].mean() + 1e-12
    assert np.any(np.isclose(c.cost, costs[np.arange(len(costs)), cheapest_best].mean()))


def test_cost_at_quality_interpolates_inside_the_crossing_segment():
    quality = np.array([[0.0, 1.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    costs = np.tile([1.0, 2.0], (4, 1))
    probs = np.array([[0.1, 1], [0.2, 1], [0.9, 1], [0.8, 1]])
    c = ladder.curve(probs, quality, costs)
    out = ladder.cost_at_quality(c, 0.95)  # best = 0.75; target 0.7125
    # points (ascending cost): (1.0, .25), (1.25, .5), (1.5, .75), (1.75, .75), (2.0, .75)
    assert out["usd"] == pytest.approx(1.25 + (0.7125 - 0.5) / 0.25 * 0.25)
    assert out["of_best"] == pytest.approx(out["usd"] / 2.0)


def test_bootstrap_cis_cover_the_point_and_the_paired_gap():
    difficulty, quality, costs = _ladder(300)
    probs = np.array([0.5, 0.7, 0.9])[None, :] - difficulty[:, None]
    weak = np.random.default_rng(1).random(quality.shape)
    ci = ladder.bootstrap(probs, quality, costs, samples=100, reference=weak)
    point = ladder.summary(ladder.curve(probs, quality, costs))
    assert ci["area"]["low"] <= point["area"] <= ci["area"]["high"]
    assert ci["area_minus_reference"]["low"] > 0


@pytest.mark.parametrize("probs, quality, costs, match", [
    (np.zeros((3, 1)), np.zeros((3, 1)), np.zeros((3, 1)), "models >= 2"),
    (np.full((2, 2), np.nan), np.zeros((2, 2)), np.zeros((2, 2)), "NaN"),
    (np.zeros((2, 2)), np.zeros((3, 2)), np.zeros((2, 2)), "must all be"),
    (np.zeros((2, 2)), np.zeros((2, 2)), np.array([[2.0, 1.0], [1, 2]]), "do not rise"),
])
def test_bad_input_is_named(probs, quality, costs, match):
    with pytest.raises(DataError, match=match):
        ladder.curve(probs, quality, costs)


def test_equal_quality_makes_the_area_undefined_with_a_clear_error():
    c = ladder.curve(np.random.default_rng(0).random((5, 2)), np.ones((5, 2)),
                     np.tile([1.0, 2.0], (5, 1)))
    with pytest.raises(DataError, match="as good as the best"):
        ladder.area(c)
