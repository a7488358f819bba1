"""The tuned kNN router of bench/irt.py (issue 26 item 5): P(model k correct | question) = the
(weighted) mean outcome of model k over the question's k nearest training questions, on the
sentence embeddings the project's baselines use (`confroute.evaluation.embeddings`: frozen
all-MiniLM-L6-v2, mean-pooled, unit length), with scikit-learn's KNeighborsRegressor.

Tuned on the validation questions: every (k, distance, weighting) of the grid below is fitted
on the training questions and scored by the Brier score of the routed models' outcomes on the
validation questions (one proper score for pairs and ladders alike, whatever pair score ranks
the test questions afterwards); the best is refitted on training and validation questions (the
rows the per-category prior is fitted on) and scores the test questions.

Distances: `cosine` on the embeddings as they are (on unit vectors Euclidean distance ranks the
same neighbours), `euclidean` and `manhattan` on embeddings standardised with the fitting rows'
mean and spread (so every dimension counts alike). Weighting: `uniform`, or `distance` (1 /
distance, scikit-learn's). Recent comparisons find such a tuned kNN matches most learned
routers (Li et al. 2025, "Rethinking Predictive Modeling for LLM Routing: When Simple kNN
Beats Complex Learned Routers", arXiv 2505.12601).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

KS = (5, 10, 20, 50, 100, 200, 400)
DISTANCES = ("cosine", "euclidean", "manhattan")
WEIGHTS = ("uniform", "distance")


def _features(emb: np.ndarray, fit_rows: np.ndarray, distance: str) -> np.ndarray:
    if distance == "cosine":
        return emb
    mean, sd = emb[fit_rows].mean(0), emb[fit_rows].std(0) + 1e-6
    return (emb - mean) / sd


def _predict(emb: np.ndarray, y: np.ndarray, fit_rows: np.ndarray, rows: np.ndarray,
             k: int, distance: str, weights: str) -> np.ndarray:
    """P [len(rows), K] from a kNN fitted on `fit_rows` of `emb` [n, d] and outcomes `y` [n, K]."""
    from sklearn.neighbors import KNeighborsRegressor

    x = _features(emb, fit_rows, distance)
    knn = KNeighborsRegressor(n_neighbors=min(k, len(fit_rows)), metric=distance,
                              weights=weights, algorithm="brute", n_jobs=1)
    return np.clip(knn.fit(x[fit_rows], y[fit_rows]).predict(x[rows]), 0.0, 1.0).reshape(
        len(rows), -1)


def tuned_knn(emb: np.ndarray, y: np.ndarray, splits: np.ndarray) -> tuple[np.ndarray,
                                                                              dict[str, Any]]:
    """(P(model correct) [test, K], the choice) of the kNN tuned on the validation questions.

    `emb` [n, d] sentence embeddings, `y` [n, K] 0/1 outcomes of the routed models, `splits`
    [n] of "train" / "val" / "test". Raises ValueError when a split is empty.
    """
    train, val, test = (np.flatnonzero(splits == s) for s in ("train", "val", "test"))
    if not (len(train) and len(val) and len(test)):
        raise ValueError(f"tuning a kNN needs train, val and test questions; found "
                         f"{len(train)}, {len(val)}, {len(test)}")
    grid = []
    for k, distance, weights in itertools.product(KS, DISTANCES, WEIGHTS):
        p = _predict(emb, y, train, val, k, distance, weights)
        grid.append({"k": k, "distance": distance, "weights": weights,
                     "val_brier": float(np.mean((p - y[val]) ** 2))})
    best = min(grid, key=lambda g: g["val_brier"])
    fit_rows = np.concatenate([train, val])
    probs = _predict(emb, y, fit_rows, test, best["k"], best["distance"], best["weights"])
    prior_brier = float(np.mean((y[train].mean(0) - y[val]) ** 2))
    return probs, {**best, "val_brier_of_the_mean": prior_brier, "grid_size": len(grid)}
