"""Quality vs cost for K models: the curve traced by sweeping the policy, its area and CIs.

The policy (`confroute.policy`) with one threshold t shared by every model below the top sends a
prompt to the cheapest model k with P(k adequate) >= t, else to the top model. Sweeping t from
+inf (every prompt to the top model) down to -inf (every prompt to the cheapest) moves prompts to
cheaper models one event at a time: prompt i moves to model k when t passes probs[i, k], if
probs[i, k] is above the probabilities of every cheaper model (otherwise a cheaper model already
took it). Events at equal t happen together (ties cross together, as in `metrics.sweep`), so the
curve is exact, with one point per distinct threshold.

Normalised axes (0 = the cheapest model alone, 1 = the best model alone; the best model is the
one with the highest mean quality, the top of a ladder in practice):

    x = (C - C_cheapest) / (C_top - C_cheapest)      C = mean cost per prompt
    y = (Q - Q_cheapest) / (Q_best - Q_cheapest)     Q = mean quality

- area = the area under y over x in [0, 1] (trapezoids on the exact curve). With K = 2 and every
  prompt costing the same per model it is exactly APGR (and `cost_at_level` is CPT), since x is
  then the cloud fraction and y the PGR.
- cost at 95%: the smallest cost at which Q reaches 0.95 x Q_best (linear inside the segment where
  the curve first crosses), as a share of the best model's cost and in USD.

References on the same prompts: random (uniform random probabilities through the same policy,
mean over seeds), oracle (the true outcomes as probabilities: each prompt to the cheapest model
with its best outcome, the cheapest if none was adequate), always model k, and any other scorer
(e.g. a per-category prior) as another curve.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from confroute.errors import DataError
from confroute.stats import weighted_bootstrap

DEFAULT_QUALITY_SHARE = 0.95


@dataclasses.dataclass
class LadderCurve:
    """Points of the policy sweep in ascending cost, with every model alone as reference.

    cost [m] and quality [m]: mean USD and mean quality per prompt at each point; threshold [m]:
    the shared threshold giving the point (+inf = all to the top); model_cost [K],
    model_quality [K]: each model alone on the same (weighted) prompts.
    """

    cost: np.ndarray
    quality: np.ndarray
    threshold: np.ndarray
    model_cost: np.ndarray
    model_quality: np.ndarray

    @property
    def best(self) -> int:
        return int(np.argmax(self.model_quality))

    @property
    def x(self) -> np.ndarray:
        span = self.model_cost[-1] - self.model_cost[0]
        if span <= 0:
            raise DataError("the top model costs no more than the cheapest on these prompts, so "
                            "a cost axis cannot be normalised; check the prices")
        return (self.cost - self.model_cost[0]) / span

    @property
    def y(self) -> np.ndarray:
        gap = self.model_quality[self.best] - self.model_quality[0]
        if gap <= 0:
            raise DataError(f"the cheapest model is as good as the best on these prompts "
                            f"(mean quality {self.model_quality[0]:.6g}), so the normalised "
                            "area is undefined; evaluate where their outcomes differ")
        return (self.quality - self.model_quality[0]) / gap


POLICIES = ("threshold", "utility")


def curve(probs: np.ndarray, quality: np.ndarray, costs: np.ndarray,
          weights: np.ndarray | None = None, policy: str = "threshold") -> LadderCurve:
    """The exact sweep of `probs` [n, K] given true `quality` [n, K] and `costs` [n, K] (USD),
    models cheapest first; `weights` [n] (e.g. bootstrap counts) weight the prompts.

    `policy`: `threshold` (cheapest model with P >= a shared t, else the top; see the module
    docstring) or `utility` (argmax_k P_k - lambda x cost_k, lambda swept from -inf to +inf: the
    "willingness to pay" router of RouterBench, Hu et al. 2024; with K = 2 and equal per-prompt
    costs it ranks prompts by P(cloud) - P(edge)). `threshold` in the result holds t or lambda.

    Raises DataError on misaligned or non-finite input, an unknown policy, or a prompt whose
    costs do not rise along the ladder (the sweep would not be monotone in cost).
    """
    probs, quality, costs = (_matrix(name, v) for name, v in
                             (("probs", probs), ("quality", quality), ("costs", costs)))
    n, k = probs.shape
    if quality.shape != (n, k) or costs.shape != (n, k):
        raise DataError(f"probs {probs.shape}, quality {quality.shape} and costs {costs.shape} "
                        "must all be [prompts, models]")
    if (np.diff(costs, axis=1) < -1e-12).any():
        bad = int(np.flatnonzero((np.diff(costs, axis=1) < -1e-12).any(axis=1))[0])
        raise DataError(f"prompt {bad}: model costs {costs[bad].tolist()} do not rise along the "
                        "ladder; order the models cheapest first")
    if policy not in POLICIES:
        raise DataError(f"unknown policy '{policy}'; choose from {', '.join(POLICIES)}")
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != (n,) or (w < 0).any() or w.sum() <= 0:
        raise DataError("weights must be [n] non-negative with a positive sum")
    key, row, src, dst = (_threshold_events(probs) if policy == "threshold"
                          else _utility_events(probs, costs))
    keep = w[row] > 0
    key, row, src, dst = key[keep], row[keep], src[keep], dst[keep]
    order = np.argsort(key, kind="stable")  # the sweep: from all-top to all-cheapest
    key, row, src, dst = key[order], row[order], src[order], dst[order]
    dq = w[row] * (quality[row, dst] - quality[row, src])
    dc = w[row] * (costs[row, dst] - costs[row, src])
    ends = np.flatnonzero(np.r_[key[1:] != key[:-1], True]) if len(key) else np.array([], int)
    total = w.sum()
    model_quality, model_cost = w @ quality / total, w @ costs / total
    q = model_quality[-1] + np.r_[0.0, np.cumsum(dq)[ends]] / total
    c = model_cost[-1] + np.r_[0.0, np.cumsum(dc)[ends]] / total
    if len(ends):  # exact end point: every prompt on the cheapest model
        c[-1], q[-1] = model_cost[0], model_quality[0]
    param = np.r_[-np.inf, key[ends]]
    if policy == "threshold":
        param = -param  # the key is -t, so that the sweep runs in ascending key
    return LadderCurve(c[::-1], q[::-1], param[::-1], model_cost, model_quality)


def _threshold_events(probs: np.ndarray) -> tuple[np.ndarray, ...]:
    """(key = -t, prompt, from, to): prompt i moves from `from` to model j when t passes
    probs[i, j], if probs[i, j] beats every cheaper model's (a running maximum from the cheap
    end); otherwise a cheaper model already took it."""
    n, k = probs.shape
    before = np.maximum.accumulate(np.c_[np.full(n, -np.inf), probs[:, :-2]], axis=1)
    record = probs[:, :-1] > before
    prev = np.full(n, k - 1)
    parts = []
    for j in range(k - 2, -1, -1):
        i = np.flatnonzero(record[:, j])
        parts.append((-probs[i, j], i, prev[i].copy(), np.full(len(i), j)))
        prev[i] = j
    return tuple(np.concatenate([p[f] for p in parts]) for f in range(4))


def _utility_events(probs: np.ndarray, costs: np.ndarray) -> tuple[np.ndarray, ...]:
    """(key = lambda, prompt, from, to): as lambda rises from -inf (every prompt on the top
    model) the choice argmax_k P_k - lambda c_k walks down the upper hull of the points
    (c_k, P_k): from model m to the cheaper j with the smallest crossing lambda
    (P_m - P_j) / (c_m - c_j) (ties: the cheapest j)."""
    n, k = probs.shape
    rows = np.arange(n)
    cur = np.full(n, k - 1)
    parts = []
    for _ in range(k - 1):
        active = np.flatnonzero(cur > 0)
        if not active.size:
            break
        m = cur[active]
        dp = probs[active, m][:, None] - probs[active]
        dc = costs[active, m][:, None] - costs[active]
        with np.errstate(divide="ignore", invalid="ignore"):
            lam = np.where(dc > 0, dp / np.where(dc > 0, dc, 1), np.where(dp <= 0, -np.inf,
                                                                          np.inf))
        lam[np.arange(k)[None, :] >= m[:, None]] = np.inf  # only cheaper models
        j = lam.argmin(axis=1)
        parts.append((lam[np.arange(len(active)), j], rows[active], m, j))
        cur[active] = j
    return tuple(np.concatenate([p[f] for p in parts]) for f in range(4))


def area(c: LadderCurve) -> float:
    """Normalised area under quality over cost on [0, 1] (see the module docstring)."""
    return float(np.trapezoid(c.y, c.x))


def cost_at_level(c: LadderCurve, level: float) -> float:
    """Smallest normalised cost x at which y first reaches `level` (CPT for K = 2); NaN if
    never."""
    return _first_crossing(c.x, c.y, level)


def cost_at_quality(c: LadderCurve, share: float = DEFAULT_QUALITY_SHARE) -> dict[str, float]:
    """Smallest cost at which mean quality reaches `share` x the best model's, as a share of the
    best model's cost (`of_best`) and in USD per prompt (`usd`); NaN when never reached."""
    target = share * c.model_quality[c.best]
    usd = _first_crossing(c.cost, c.quality, target)
    return {"usd": usd, "of_best": usd / c.model_cost[c.best], "target_quality": target}


def summary(c: LadderCurve, share: float = DEFAULT_QUALITY_SHARE) -> dict[str, float]:
    """area, cost at `share` of the best model's quality (share of its cost), cost at y = 0.5."""
    return {"area": area(c), "cost_at_95": cost_at_quality(c, share)["of_best"],
            "cost_at_level_50": cost_at_level(c, 0.5)}


def bootstrap(probs: np.ndarray, quality: np.ndarray, costs: np.ndarray, samples: int = 1000,
              seed: int = 0, share: float = DEFAULT_QUALITY_SHARE,
              reference: np.ndarray | None = None, confidence: float = 0.95,
              policy: str = "threshold") -> dict[str, dict[str, float]]:
    """Percentile bootstrap CIs over prompts for `summary`, and, given `reference` probs (e.g. a
    prior), for the paired difference of areas (`area_minus_reference`). Resamples where the
    area is undefined are skipped and counted in `_meta`."""
    def statistic(w: np.ndarray) -> dict[str, float]:
        values = summary(curve(probs, quality, costs, w, policy), share)
        if reference is not None:
            values["area_minus_reference"] = values["area"] - area(
                curve(reference, quality, costs, w, policy))
        return values

    return weighted_bootstrap(len(probs), statistic, samples, seed, confidence,
                              skip=(DataError,))


def random_reference(quality: np.ndarray, costs: np.ndarray, seeds: int = 20,
                     share: float = DEFAULT_QUALITY_SHARE, policy: str = "threshold"
                     ) -> dict[str, float]:
    """Mean over `seeds` of `summary` for uniform random probabilities through the policy."""
    runs = [summary(curve(np.random.default_rng(s).random(np.shape(quality)), quality, costs,
                          policy=policy), share) for s in range(seeds)]
    return {key: float(np.nanmean([r[key] for r in runs])) for key in runs[0]}


def oracle_probs(quality: np.ndarray) -> np.ndarray:
    """The oracle's probabilities [n, K]: 1 for the models with the prompt's best outcome, else 0,
    so the policy (any threshold in (0, 1]) sends each prompt to the cheapest model with the best
    outcome, which is the cheapest model if none was adequate."""
    quality = _matrix("quality", quality)
    return (quality >= quality.max(axis=1, keepdims=True)).astype(float)


def _first_crossing(x: np.ndarray, y: np.ndarray, level: float) -> float:
    hit = np.flatnonzero(y >= level - 1e-12)
    if hit.size == 0:
        return float("nan")
    i = int(hit[0])
    if i == 0:
        return float(x[0])
    return float(x[i - 1] + (level - y[i - 1]) / (y[i] - y[i - 1]) * (x[i] - x[i - 1]))


def _matrix(name: str, values: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 2 or array.shape[1] < 2 or array.shape[0] == 0:
        raise DataError(f"{name} must be [prompts, models >= 2]; found {array.shape}")
    if not np.isfinite(array).all():
        raise DataError(f"{name} has NaN or infinite values; every prompt needs finite values "
                        "for every model")
    return array
