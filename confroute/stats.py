"""Small numpy statistics shared by export, runtime checks and evaluation (no torch)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def binary_auroc(positive: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties); NaN if one class."""
    positive = np.asarray(positive, dtype=bool)
    scores = np.asarray(scores, dtype=float)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    # average ranks over runs of equal scores (vectorised: bootstraps call this many times)
    _, run_of, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = ((ends - counts + ends + 1) / 2.0)[run_of]
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def weighted_bootstrap(n: int, statistic: Callable[[np.ndarray], dict[str, float]],
                       samples: int = 1000, seed: int = 0, confidence: float = 0.95,
                       skip: tuple[type[Exception], ...] = ()) -> dict[str, Any]:
    """Percentile bootstrap CIs (Efron 1979) of each value that `statistic` returns.

    Each of `samples` resamples draws n rows with replacement, handed to `statistic` as integer
    weights of shape (n,). Resamples on which `statistic` raises one of `skip` (e.g. a PGR
    undefined because edge and cloud means coincide) are skipped and counted.

    Returns {key: {"low", "high"}} at `confidence`, plus "_meta": samples, skipped, seed.
    """
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    skipped = 0
    for _ in range(samples):
        weights = np.bincount(rng.integers(0, n, n), minlength=n).astype(float)
        try:
            values = statistic(weights)
        except skip:
            skipped += 1
            continue
        for key, value in values.items():
            draws.setdefault(key, []).append(value)
    alpha = (1 - confidence) / 2
    out: dict[str, Any] = {
        key: {"low": float(np.nanquantile(v, alpha)), "high": float(np.nanquantile(v, 1 - alpha))}
        for key, v in draws.items()}
    out["_meta"] = {"samples": samples, "skipped": skipped, "seed": seed}
    return out
