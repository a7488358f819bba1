"""confroute.stats against scikit-learn's reference implementation."""

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
