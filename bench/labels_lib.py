"""The router and the statistics of bench/labels.py (the label study): one router family with one
budget for every label, group priors, AUROC pooled and within groups, paired bootstrap CIs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from confroute.errors import DataError
from confroute.stats import binary_auroc

C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3)
"""Inverse regularisation strengths tried for every label (same grid, same folds)."""


# --- the router: frozen embeddings + logistic regression, one budget for every label ----------


def fit_score(x_train: np.ndarray, label: np.ndarray, x_test: np.ndarray, seed: int) -> np.ndarray:
    """P(label = 1) on `x_test` from a standardised logistic regression fitted to `label` in
    [0, 1] (soft values as cross-entropy targets). C from C_GRID by 3-fold CV log-loss."""
    from sklearn.model_selection import KFold
    from sklearn.preprocessing import StandardScaler

    keep = ~np.isnan(label)
    x, y = x_train[keep], label[keep]
    scaler = StandardScaler().fit(x)
    x, x_test = scaler.transform(x), scaler.transform(x_test)
    folds = list(KFold(3, shuffle=True, random_state=seed).split(x))
    losses = [np.mean([_log_loss(y[te], _fit(x[tr], y[tr], c).predict_proba(x[te])[:, 1])
                       for tr, te in folds]) for c in C_GRID]
    return _fit(x, y, C_GRID[int(np.argmin(losses))]).predict_proba(x_test)[:, 1]


def _fit(x: np.ndarray, y: np.ndarray, c: float) -> Any:
    from sklearn.linear_model import LogisticRegression

    # a soft target p is the cross-entropy of two weighted copies: (x, 1, p) and (x, 0, 1 - p)
    xx, yy, w = np.r_[x, x], np.r_[np.ones(len(y)), np.zeros(len(y))], np.r_[y, 1 - y]
    if len(np.unique(yy[w > 0])) < 2:
        raise DataError("a label has a single class on the training rows; nothing to learn")
    return LogisticRegression(C=c, max_iter=2000).fit(xx[w > 0], yy[w > 0], sample_weight=w[w > 0])


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def group_prior(groups_train: np.ndarray, label: np.ndarray, groups_test: np.ndarray) -> np.ndarray:
    """The source (category) prior: each test prompt gets its group's mean training label."""
    keep = ~np.isnan(label)
    overall = float(label[keep].mean())
    means = {g: float(label[keep & (groups_train == g)].mean())
             for g in np.unique(groups_train[keep])}
    return np.array([means.get(g, overall) for g in groups_test])


# --- metrics with paired bootstrap CIs ------------------------------------------------------


def auroc(y: np.ndarray, s: np.ndarray) -> float:
    """Mann-Whitney AUROC (average ranks for ties); NaN with one class."""
    return binary_auroc(np.asarray(y, dtype=bool), np.asarray(s, dtype=float))


def within(y: np.ndarray, s: np.ndarray, groups: np.ndarray) -> float:
    """AUROC inside each group, averaged with weights = group size (groups with one class are
    left out): a router that only tells groups apart scores 0.5 here."""
    values, weights = [], []
    for g in np.unique(groups):
        m = groups == g
        a = auroc(y[m], s[m])
        if not np.isnan(a):
            values.append(a)
            weights.append(int(m.sum()))
    return float(np.average(values, weights=weights)) if values else float("nan")


def spearman(t: np.ndarray, s: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(t, s).statistic) if np.std(t) > 0 and np.std(s) > 0 else float("nan")


def with_ci(stat: Callable[[np.ndarray], dict[str, float]], n: int, draws: int, seed: int
            ) -> dict[str, dict[str, float]]:
    """`stat(index)` on all rows and on `draws` resamples of them: value, low, high (95%)."""
    point = stat(np.arange(n))
    rng = np.random.default_rng(seed)
    boot = [stat(rng.integers(0, n, n)) for _ in range(draws)]
    return {k: {"value": v, "low": float(np.nanquantile([b[k] for b in boot], 0.025)),
                "high": float(np.nanquantile([b[k] for b in boot], 0.975))}
            for k, v in point.items()}
