"""Metric conventions checked on hand-computed cases, references and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from confroute.errors import DataError
from confroute.evaluation import metrics

# 4 prompts: the cloud helps on rows 0 and 3, both models agree on rows 1 and 2.
Q_EDGE = np.array([0.0, 1.0, 0.0, 0.0])
Q_CLOUD = np.array([1.0, 1.0, 0.0, 1.0])


def test_distinct_scores_by_hand():
    # order 0,1,2,3 -> quality .25 .5 .5 .5 .75 -> PGR 0 .5 .5 .5 1
    curve = metrics.sweep(np.array([0.9, 0.8, 0.7, 0.1]), Q_EDGE, Q_CLOUD)
    np.testing.assert_allclose(curve.fraction, [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(curve.quality, [0.25, 0.5, 0.5, 0.5, 0.75])
    np.testing.assert_allclose(curve.threshold[1:], [0.9, 0.8, 0.7, 0.1])
    # trapezoids: .0625 + .125 + .125 + .1875
    assert metrics.apgr(curve) == pytest.approx(0.5)
    assert metrics.cpt(curve, 0.2) == pytest.approx(0.1)
    assert metrics.cpt(curve, 0.5) == pytest.approx(0.25)
    # first reaches .8 between (.75, .5) and (1, 1)
    assert metrics.cpt(curve, 0.8) == pytest.approx(0.9)


def test_ties_cross_together_and_interpolate_as_random_tie_breaking():
    # rows 0,1,2 tie: cloud fraction jumps 0 -> .75 with PGR 0 -> .5, then 1 -> 1
    curve = metrics.sweep(np.array([1.0, 1.0, 1.0, 0.0]), Q_EDGE, Q_CLOUD)
    np.testing.assert_allclose(curve.fraction, [0, 0.75, 1])
    np.testing.assert_allclose(curve.pgr, [0, 0.5, 1])
    assert metrics.apgr(curve) == pytest.approx(0.1875 + 0.1875)
    assert metrics.cpt(curve, 0.5) == pytest.approx(0.75)


def test_oracle_by_hand():
    curve = metrics.sweep(metrics.oracle_scores(Q_EDGE, Q_CLOUD), Q_EDGE, Q_CLOUD)
    np.testing.assert_allclose(curve.pgr, [0, 1, 1])
    assert metrics.apgr(curve) == pytest.approx(0.75)
    assert metrics.cpt(curve, 0.5) == pytest.approx(0.25)
    assert metrics.cpt(curve, 0.8) == pytest.approx(0.4)


def test_constant_scores_are_the_random_line_exactly():
    rng = np.random.default_rng(1)
    qe, qc = rng.integers(0, 2, 500).astype(float), rng.integers(0, 2, 500).astype(float)
    values = metrics.summary(metrics.sweep(np.zeros(500), qe, qc))
    assert values == pytest.approx({"apgr": 0.5, "cpt_20": 0.2, "cpt_50": 0.5, "cpt_80": 0.8})


def test_random_scores_average_to_half():
    rng = np.random.default_rng(2)
    qe = (rng.random(2000) < 0.6).astype(float)
    qc = np.maximum(qe, (rng.random(2000) < 0.5).astype(float))
    runs = [metrics.summary(metrics.sweep(rng.random(2000), qe, qc)) for _ in range(40)]
    assert np.mean([r["apgr"] for r in runs]) == pytest.approx(0.5, abs=0.02)
    assert np.mean([r["cpt_50"] for r in runs]) == pytest.approx(0.5, abs=0.03)


def test_oracle_beats_random_and_random_average_reports_spread():
    rng = np.random.default_rng(3)
    qe = (rng.random(300) < 0.6).astype(float)
    qc = np.maximum(qe, (rng.random(300) < 0.5).astype(float))
    oracle = metrics.summary(metrics.sweep(metrics.oracle_scores(qe, qc), qe, qc))
    gain_share = np.mean(qc > qe)
    assert oracle["cpt_50"] == pytest.approx(0.5 * gain_share)
    mean, spread = metrics.random_average(qe, qc, seeds=10)
    assert mean["apgr"] == pytest.approx(0.5, abs=0.05)
    assert spread["apgr"] > 0


def test_cost_column_by_hand():
    curve = metrics.sweep(np.array([0.9, 0.8, 0.7, 0.1]), Q_EDGE, Q_CLOUD,
                          cost_edge=np.ones(4), cost_cloud=np.full(4, 10.0))
    np.testing.assert_allclose(curve.cost, [4, 13, 22, 31, 40])
    point = metrics.at_fraction(curve, 0.5)
    assert point["cost_usd"] == pytest.approx(22)
    assert point["quality"] == pytest.approx(0.5)
    assert point["threshold"] == pytest.approx(0.8)


def test_weights_equal_repeating_rows():
    scores = np.array([0.9, 0.8, 0.7, 0.1])
    weighted = metrics.sweep(scores, Q_EDGE, Q_CLOUD, weights=np.array([2, 0, 1, 1]))
    repeated = metrics.sweep(scores[[0, 0, 2, 3]], Q_EDGE[[0, 0, 2, 3]], Q_CLOUD[[0, 0, 2, 3]])
    assert metrics.summary(weighted) == pytest.approx(metrics.summary(repeated))


def test_bootstrap_brackets_the_estimate_and_is_reproducible():
    rng = np.random.default_rng(4)
    qe = (rng.random(400) < 0.6).astype(float)
    qc = np.maximum(qe, (rng.random(400) < 0.5).astype(float))
    scores = (qc - qe) + rng.normal(0, 0.8, 400)
    point = metrics.summary(metrics.sweep(scores, qe, qc))
    ci = metrics.bootstrap(scores, qe, qc, samples=200, seed=7)
    for key in ("apgr", "cpt_50", "cpt_80"):
        assert ci[key]["low"] <= point[key] <= ci[key]["high"]
        assert ci[key]["low"] < ci[key]["high"]
    assert ci == metrics.bootstrap(scores, qe, qc, samples=200, seed=7)


@pytest.mark.parametrize(("scores", "message"), [
    (np.array([0.1, np.nan, 0.3, 0.4]), "NaN"),
    (np.array([0.1, 0.2, 0.3]), "4 values but there are 3 prompts"),
    (np.array([[0.1, 0.2, 0.3, 0.4]]), "one number per prompt"),
])
def test_bad_scores_are_errors(scores, message):
    with pytest.raises(DataError, match=message):
        metrics.sweep(scores, Q_EDGE, Q_CLOUD)


def test_empty_input_is_an_error():
    with pytest.raises(DataError, match="empty"):
        metrics.sweep(np.array([]), np.array([]), np.array([]))


def test_equal_model_quality_makes_pgr_undefined():
    curve = metrics.sweep(np.arange(4.0), Q_EDGE, Q_EDGE)
    with pytest.raises(DataError, match="same mean quality"):
        metrics.apgr(curve)
