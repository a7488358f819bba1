"""The statistics evaluation, export and the promotion gate share: AUROC (scikit-learn) and the
percentile bootstrap over prompts (scipy). Both libraries come with the `train` extra and are
imported when called, so `confroute.runtime` and `confroute.serve` never load them."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from confroute.errors import require

BOOTSTRAP_BATCH = 100
"""Resamples scipy draws at once: memory O(batch x n) indices, whatever the resample count."""


def binary_auroc(positive: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve of `scores` [n] for the labels `positive` [n] (bool): the
    Mann-Whitney U statistic with tied scores counted half (scikit-learn's `roc_auc_score`);
    NaN when only one class (or no row) is present."""
    metrics = require("sklearn.metrics", "train")
    positive = np.asarray(positive, dtype=bool)
    scores = np.asarray(scores, dtype=float)
    if positive.all() or not positive.any():
        return float("nan")
    return float(metrics.roc_auc_score(positive, scores))


def weighted_bootstrap(n: int, statistic: Callable[[np.ndarray], dict[str, float]],
                       samples: int = 1000, seed: int = 0, confidence: float = 0.95,
                       skip: tuple[type[Exception], ...] = ()) -> dict[str, Any]:
    """Percentile bootstrap CIs (Efron 1979) of each value that `statistic` returns.

    scipy.stats.bootstrap draws `samples` resamples of the n rows with replacement
    (numpy's default_rng(seed), so a seed gives the same resamples as ever); each is handed to
    `statistic` as integer weights of shape (n,), so a statistic over weighted prompts (a
    routing curve) needs no copy of its data. A resample on which `statistic` raises one of
    `skip` (e.g. a PGR undefined because edge and cloud means coincide) is skipped and counted;
    a value that is NaN on some resamples (a quality level never reached) takes its CI from the
    others. `statistic(ones(n))` fixes the keys first; if it raises, the error propagates.

    Returns {key: {"low", "high"}} at `confidence`, plus "_meta": samples, skipped, seed.
    """
    keys = list(statistic(np.ones(n)))
    skipped = 0

    def values(index: np.ndarray) -> np.ndarray:
        nonlocal skipped
        try:
            out = statistic(np.bincount(index, minlength=n).astype(float))
        except skip:
            skipped += 1
            return np.full(len(keys), np.nan)
        return np.array([out[k] for k in keys], dtype=float)

    draws = _draws(n, values, samples, seed, len(keys))
    alpha = (1 - confidence) / 2
    with warnings.catch_warnings():  # a value never finite on any resample: NaN, said below
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = (np.nanquantile(draws, q, axis=1) if samples else np.full(len(keys), np.nan)
                     for q in (alpha, 1 - alpha))
    out: dict[str, Any] = {key: {"low": float(lo), "high": float(hi)}
                           for key, lo, hi in zip(keys, low, high, strict=True)}
    out["_meta"] = {"samples": samples, "skipped": skipped, "seed": seed}
    return out


def _draws(n: int, values: Callable[[np.ndarray], np.ndarray], samples: int, seed: int,
           width: int) -> np.ndarray:
    """[width, samples]: `values` of each resample's row indices."""
    if samples == 0:
        return np.empty((width, 0))
    if n < 2:  # every resample of one row is that row (scipy wants two or more)
        return np.repeat(values(np.zeros(n, dtype=int))[:, None], samples, axis=1)
    stats = require("scipy.stats", "train")
    with warnings.catch_warnings():
        # scipy warns when its own CI is NaN (a skipped resample); the CI is taken below with
        # the NaN resamples left out, so that warning does not apply
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        result = stats.bootstrap((np.arange(n),), values, n_resamples=samples,
                                 batch=BOOTSTRAP_BATCH, vectorized=False, paired=True,
                                 method="percentile", rng=np.random.default_rng(seed))
    return np.asarray(result.bootstrap_distribution, dtype=float).reshape(width, samples)
