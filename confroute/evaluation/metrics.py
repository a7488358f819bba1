"""Routing quality vs cloud spend: the threshold sweep, PGR, APGR, CPT and their bootstrap CIs.

Conventions (RouteLLM's, made exact; see docs in the evaluation package `__init__`):

- A router gives each prompt a score; it sends the prompt to the cloud iff score >= threshold.
  Sweeping the threshold from +inf down through every distinct score gives the curve of mean
  quality vs the fraction of prompts sent to the cloud. Prompts with equal scores cross the
  threshold together; between two such points the curve is a straight line, which is exactly the
  expected quality when ties are broken at random. So constant scores give the straight line from
  all-edge to all-cloud, the curve of a random router.
- PGR(f) = (q(f) - q_edge) / (q_cloud - q_edge): the share of the edge-to-cloud quality gap
  recovered at cloud fraction f. PGR(0) = 0 and PGR(1) = 1 by construction.
- APGR = the area under PGR over f in [0, 1] (trapezoids on the exact piecewise-linear curve).
  Random routing gives 0.5.
- CPT(x) = the smallest cloud fraction at which PGR reaches x, interpolated linearly inside the
  segment where the curve first crosses x. Random routing gives CPT(x) = x. Lower is better.

RouteLLM evaluates 10 quantile thresholds and calls `np.interp` on the (possibly non-monotone)
quality curve; the full sweep and first-crossing rule here agree with it on monotone curves and
remove the dependence on the bin count.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from confroute.errors import DataError
from confroute.stats import weighted_bootstrap

DEFAULT_CPT_LEVELS = (0.2, 0.5, 0.8)


@dataclasses.dataclass
class Curve:
    """Quality (and cost) at every distinct threshold, from all-edge to all-cloud."""

    fraction: np.ndarray
    """Weighted share of prompts sent to the cloud at each point; 0 first, 1 last."""
    quality: np.ndarray
    """Mean quality of the routed answers at each point."""
    threshold: np.ndarray
    """Route cloud iff score >= this gives the point (+inf for the all-edge point)."""
    quality_edge: float
    quality_cloud: float
    cost: np.ndarray | None = None
    """Total USD for the routed prompts at each point, when token costs were given."""

    @property
    def pgr(self) -> np.ndarray:
        return (self.quality - self.quality_edge) / self.gap

    @property
    def gap(self) -> float:
        gap = self.quality_cloud - self.quality_edge
        if gap == 0:
            raise DataError(f"the edge and cloud models have the same mean quality "
                            f"({self.quality_edge:.6g}) on these prompts, so PGR, APGR and CPT are "
                            "undefined; evaluate on prompts where their outcomes differ")
        return gap


def sweep(scores: np.ndarray, quality_edge: np.ndarray, quality_cloud: np.ndarray,
          weights: np.ndarray | None = None, cost_edge: np.ndarray | None = None,
          cost_cloud: np.ndarray | None = None) -> Curve:
    """The exact quality-vs-cloud-fraction curve of `scores` (one point per distinct score).

    `weights` (non-negative, e.g. bootstrap counts) weight the prompts; `cost_*` are per-prompt
    USD for answering with each model and give the curve's cost column.
    """
    scores = _vector("scores", scores)
    n = len(scores)
    quality_edge = _vector("quality_edge", quality_edge, n)
    quality_cloud = _vector("quality_cloud", quality_cloud, n)
    w = np.ones(n) if weights is None else _vector("weights", weights, n)
    keep = w > 0
    if not keep.any():
        raise DataError("no prompt has a positive weight; nothing to evaluate")
    order = np.argsort(-scores[keep], kind="stable")
    s, w = scores[keep][order], w[keep][order]
    qe, qc = quality_edge[keep][order], quality_cloud[keep][order]
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])  # last index of each tie group
    total = w.sum()
    fraction = np.r_[0.0, np.cumsum(w)[ends] / total]
    fraction[-1] = 1.0  # exact, whatever the float rounding of the cumulative sum
    base = float(np.dot(w, qe) / total)
    quality = base + np.r_[0.0, np.cumsum(w * (qc - qe))[ends]] / total
    cost = None
    if cost_edge is not None and cost_cloud is not None:
        ce = _vector("cost_edge", cost_edge, n)[keep][order]
        cc = _vector("cost_cloud", cost_cloud, n)[keep][order]
        cost = float(np.dot(w, ce)) + np.r_[0.0, np.cumsum(w * (cc - ce))[ends]]
    return Curve(fraction, quality, np.r_[np.inf, s[ends]], base,
                 float(np.dot(w, qc) / total), cost)


def apgr(curve: Curve) -> float:
    """Area under PGR vs cloud fraction on [0, 1]."""
    return float(np.trapezoid(curve.pgr, curve.fraction))


def cpt(curve: Curve, level: float) -> float:
    """Smallest cloud fraction at which PGR first reaches `level` (linear inside a segment).

    NaN when the curve never reaches it (only possible for levels above 1).
    """
    pgr = curve.pgr
    hit = np.flatnonzero(pgr >= level - 1e-12)
    if hit.size == 0:
        return float("nan")
    i = int(hit[0])
    if i == 0:
        return 0.0
    f0, f1, p0, p1 = curve.fraction[i - 1], curve.fraction[i], pgr[i - 1], pgr[i]
    return float(f0 + (level - p0) / (p1 - p0) * (f1 - f0))


def at_fraction(curve: Curve, fraction: float) -> dict[str, float]:
    """Quality, PGR, threshold and cost where the curve is at `fraction` cloud calls."""
    quality = float(np.interp(fraction, curve.fraction, curve.quality))
    # the threshold that reaches at least this fraction: the first sweep point at or beyond it
    i = min(int(np.searchsorted(curve.fraction, fraction - 1e-12)), len(curve.fraction) - 1)
    out = {"fraction": float(fraction), "quality": quality,
           "pgr": (quality - curve.quality_edge) / curve.gap,
           "threshold": float(curve.threshold[i])}
    if curve.cost is not None:
        out["cost_usd"] = float(np.interp(fraction, curve.fraction, curve.cost))
    return out


def summary(curve: Curve, levels: Sequence[float] = DEFAULT_CPT_LEVELS) -> dict[str, float]:
    """APGR and CPT(level) for each level, as floats keyed `apgr`, `cpt_20`, ..."""
    out = {"apgr": apgr(curve)}
    for level in levels:
        out[cpt_key(level)] = cpt(curve, level)
    return out


def cpt_key(level: float) -> str:
    return f"cpt_{round(level * 100):d}"


def oracle_scores(quality_edge: np.ndarray, quality_cloud: np.ndarray) -> np.ndarray:
    """The scores of a router that knows the outcomes: the cloud's quality gain per prompt."""
    return np.asarray(quality_cloud, dtype=float) - np.asarray(quality_edge, dtype=float)


def bootstrap(scores: np.ndarray, quality_edge: np.ndarray, quality_cloud: np.ndarray,
              samples: int = 1000, seed: int = 0, levels: Sequence[float] = DEFAULT_CPT_LEVELS,
              confidence: float = 0.95) -> dict[str, dict[str, float]]:
    """Percentile bootstrap CIs over prompts (resampled with replacement) for `summary`.

    Resamples where the edge and cloud means coincide (PGR undefined) are skipped and counted.
    """
    scores = _vector("scores", scores)
    out = weighted_bootstrap(
        len(scores), lambda w: summary(sweep(scores, quality_edge, quality_cloud, w), levels),
        samples, seed, confidence, skip=(DataError,))
    out["_meta"]["confidence"] = confidence
    return out


def _vector(name: str, values: np.ndarray, length: int | None = None) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name} must be numbers; {exc}") from exc
    if array.ndim != 1:
        raise DataError(f"{name} must be one number per prompt; found shape {array.shape}")
    if length is not None and len(array) != length:
        raise DataError(f"{name} has {len(array)} values but there are {length} prompts; "
                        "they must align one to one")
    if len(array) == 0:
        raise DataError(f"{name} is empty; need at least one prompt")
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise DataError(f"{name} has {bad.size} NaN or infinite value(s), first at position "
                        f"{int(bad[0])}; every prompt needs a finite value")
    if name == "weights" and (array < 0).any():
        raise DataError("weights must be non-negative")
    return array


def random_average(quality_edge: np.ndarray, quality_cloud: np.ndarray, seeds: int = 20,
                   levels: Sequence[float] = DEFAULT_CPT_LEVELS,
                   ) -> tuple[dict[str, float], dict[str, float]]:
    """Mean and standard deviation of `summary` over `seeds` uniform random score draws."""
    runs = [summary(sweep(np.random.default_rng(seed).random(len(quality_edge)), quality_edge,
                          quality_cloud), levels) for seed in range(seeds)]
    keys = runs[0].keys()
    return ({k: float(np.mean([r[k] for r in runs])) for k in keys},
            {k: float(np.std([r[k] for r in runs])) for k in keys})
