"""confroute.stats: AUROC (scikit-learn) and the percentile bootstrap (scipy) as the evaluation
uses them."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from confroute.stats import binary_auroc, weighted_bootstrap


def test_binary_auroc_matches_sklearn_with_ties() -> None:
    rng = np.random.default_rng(0)
    for _ in range(100):
        n = int(rng.integers(2, 300))
        positive = rng.random(n) < 0.3
        scores = np.round(rng.random(n), int(rng.integers(1, 4)))  # coarse scores: many ties
        if positive.all() or not positive.any():
            continue
        assert binary_auroc(positive, scores) == pytest.approx(roc_auc_score(positive, scores))
    assert np.isnan(binary_auroc(np.ones(3, bool), np.arange(3.0)))


def test_weighted_bootstrap_brackets_the_mean_and_counts_skips() -> None:
    values = np.random.default_rng(1).normal(size=400)

    def mean(weights: np.ndarray) -> dict[str, float]:
        if weights[0] > 3:
            raise ValueError("a resample the statistic cannot use")
        return {"mean": float(np.average(values, weights=weights))}

    out = weighted_bootstrap(len(values), mean, samples=300, seed=0, skip=(ValueError,))
    assert out["mean"]["low"] < values.mean() < out["mean"]["high"]
    assert out["_meta"]["samples"] == 300 and out["_meta"]["skipped"] >= 0


def test_weighted_bootstrap_draws_numpys_resamples_of_the_seed() -> None:
    """A seed keeps its resamples (default_rng(seed).integers(0, n, n), one per resample), so
    CIs reported before the bootstrap moved to scipy are reproduced to the last digit."""
    values = np.random.default_rng(2).normal(size=50)
    rng = np.random.default_rng(7)
    by_hand = [values[rng.integers(0, 50, 50)].mean() for _ in range(40)]
    out = weighted_bootstrap(50, lambda w: {"mean": float(np.average(values, weights=w))},
                             samples=40, seed=7)
    assert out["mean"]["low"] == pytest.approx(np.quantile(by_hand, 0.025), abs=1e-12)
    assert out["mean"]["high"] == pytest.approx(np.quantile(by_hand, 0.975), abs=1e-12)


def test_weighted_bootstrap_leaves_nan_resamples_out_and_handles_one_row() -> None:
    def sometimes(weights: np.ndarray) -> dict[str, float]:
        return {"x": float("nan") if weights[0] == 0 else float(weights[0])}

    out = weighted_bootstrap(5, sometimes, samples=200, seed=0)
    assert 1.0 <= out["x"]["low"] <= out["x"]["high"] <= 5.0
    one = weighted_bootstrap(1, lambda w: {"sum": float(w.sum())}, samples=10)
    assert one["sum"] == {"low": 1.0, "high": 1.0} and one["_meta"]["skipped"] == 0
    assert np.isnan(weighted_bootstrap(3, lambda w: {"v": 1.0}, samples=0)["v"]["low"])
