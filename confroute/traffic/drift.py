"""Drift: is the traffic still like the prompts the router was calibrated on?

A calibrated threshold holds only for traffic like its calibration prompts. Two views of the
same question, in numbers the service's /metrics shows (`DriftMonitor`, in memory, over the
last `window` decisions) and in a report over the log's history (`report`):

- the realised cloud share (requests sent above the cheapest model) against the calibrated
  target (the share recorded in the artifact when its policy was set), and a warning (a log
  line and `cloud_share_out_of_band` = 1) when it leaves target +- `band`;
- the shift of the score distribution (P(cloud needed)) from the calibration set: the
  population stability index over the reference's deciles, PSI = sum (a - e) ln(a / e)
  (Siddiqi 2006, "Credit Risk Scorecards"; its sampling behaviour: Yurdakul 2018, "Statistical
  properties of population stability index"; below 0.1 is usually read as stable, above 0.25 as
  a shift), and the two-sample Kolmogorov-Smirnov statistic, the largest gap between the two
  empirical CDFs (Smirnov 1948; the report adds scipy.stats.ks_2samp's p-value);
- feedback rates (requests with feedback, thumbs-down share, retries) and the estimated
  savings against always-cloud (the logged usage at the top model's price minus its cost).

The reference is the artifact's calibration prompts scored by it (`reference` scores), else the
first window of logged scores (the report says which).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
from typing import Any

import numpy as np

from confroute.errors import ConfigError

LOG = logging.getLogger("confroute.traffic")
PSI_EPSILON = 1e-4
"""Share given to an empty bin, so that ln(a / e) stays finite (the usual PSI convention)."""


# Bounds that keep memory small: the window is held in memory, each PSI bin is a quantile.
MAX_WINDOW = 10_000_000
MAX_BINS = 1_000


@dataclasses.dataclass
class DriftSettings:
    """What counts as drift of the traffic from the router's calibration."""

    band: float = 0.05
    """Warn when the realised cloud share leaves the calibrated target +- this (absolute)."""
    target_share: float | None = None
    """The cloud share the deployment should give; None: the one recorded in the artifact."""
    window: int = 1000
    """Recent decisions the in-memory numbers (/metrics) are computed over."""
    min_decisions: int = 200
    """Fewest decisions in the window before the share can raise a warning."""
    bins: int = 10
    """PSI bins: quantiles of the reference scores (10 = deciles)."""

    def __post_init__(self) -> None:
        if not 0.0 < self.band < 1.0:
            raise ConfigError(f"drift.band must be in (0, 1); found {self.band!r}")
        if self.target_share is not None and not 0.0 <= self.target_share <= 1.0:
            raise ConfigError(f"drift.target_share must be in [0, 1]; found "
                              f"{self.target_share!r}")
        for name, least, most in (("window", 2, MAX_WINDOW), ("min_decisions", 1, MAX_WINDOW),
                                  ("bins", 2, MAX_BINS)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= most:
                raise ConfigError(f"drift.{name} must be an integer in [{least}, {most:,}]; "
                                  f"found {value!r}")


def psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """Population stability index of `current` [m] against `reference` [n] over the
    reference's `bins` quantile bins (see the module docstring); NaN when either is empty."""
    reference, current = np.asarray(reference, float), np.asarray(current, float)
    if len(reference) == 0 or len(current) == 0:
        return float("nan")
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))

    def shares(values: np.ndarray) -> np.ndarray:
        counts = np.bincount(np.searchsorted(edges, values, side="right"),
                             minlength=len(edges) + 1)
        return np.maximum(counts / len(values), PSI_EPSILON)

    expected, actual = shares(reference), shares(current)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def ks_statistic(reference: np.ndarray, current: np.ndarray) -> float:
    """The two-sample Kolmogorov-Smirnov statistic sup |F_ref - F_cur|; NaN when empty."""
    reference = np.sort(np.asarray(reference, float))
    current = np.sort(np.asarray(current, float))
    if len(reference) == 0 or len(current) == 0:
        return float("nan")
    points = np.concatenate([reference, current])
    gap = (np.searchsorted(reference, points, side="right") / len(reference)
           - np.searchsorted(current, points, side="right") / len(current))
    return float(np.max(np.abs(gap)))


class DriftMonitor:
    """The service's drift numbers over its last `settings.window` decisions.

    `observe` is called once per routed request (any thread; microseconds plus, every
    `window // 10` requests, a PSI/KS recomputation over the window). `stats()` gives the
    /metrics values. `reference` are the calibration prompts' scores (None: the first full
    window of observed scores becomes the reference).
    """

    def __init__(self, settings: DriftSettings, target_share: float | None,
                 reference: np.ndarray | None = None) -> None:
        self.settings = settings
        self.target = settings.target_share if settings.target_share is not None \
            else target_share
        self.reference = None if reference is None else np.asarray(reference, float)
        self.reference_source = "calibration prompts" if reference is not None else \
            "first window of traffic"
        self._scores: collections.deque[float] = collections.deque(maxlen=settings.window)
        self._up: collections.deque[bool] = collections.deque(maxlen=settings.window)
        self._lock = threading.Lock()
        self._seen = 0
        self._psi = self._ks = float("nan")
        self.out_of_band = False
        self.savings_usd = 0.0
        self.feedback = 0

    def observe(self, score: float | None, up: bool, cost_usd: float | None = None,
                top_cost_usd: float | None = None) -> None:
        """One decision: its P(cloud needed), whether it went above the cheapest model, and
        its cost and always-cloud cost (USD) when known."""
        with self._lock:
            self._seen += 1
            self._up.append(bool(up))
            if score is not None:
                self._scores.append(float(score))
            if cost_usd is not None and top_cost_usd is not None:
                self.savings_usd += top_cost_usd - cost_usd
            refresh = self._seen % max(1, self.settings.window // 10) == 0
            scores = np.array(self._scores) if refresh else None
        if scores is not None:
            self._refresh(scores)

    def note_feedback(self) -> None:
        with self._lock:
            self.feedback += 1

    def stats(self) -> dict[str, float]:
        """realised_cloud_share (window), target_cloud_share (NaN: unknown),
        cloud_share_out_of_band (0/1), score_psi and score_ks (vs the reference; NaN until
        there is one), savings_usd_total, feedback_rate (feedback per decision), decisions."""
        with self._lock:
            share = float(np.mean(self._up)) if self._up else float("nan")
            return {"realised_cloud_share": share,
                    "target_cloud_share": float("nan") if self.target is None else self.target,
                    "cloud_share_out_of_band": float(self.out_of_band),
                    "score_psi": self._psi, "score_ks": self._ks,
                    "savings_usd_total": self.savings_usd,
                    "feedback_rate": self.feedback / self._seen if self._seen else 0.0,
                    "decisions": float(self._seen)}

    def _refresh(self, scores: np.ndarray) -> None:
        if self.reference is None and len(scores) >= self.settings.window:
            self.reference = scores
        if self.reference is not None:
            self._psi = psi(self.reference, scores, self.settings.bins)
            self._ks = ks_statistic(self.reference, scores)
        self._check_band()

    def _check_band(self) -> None:
        with self._lock:
            if self.target is None or len(self._up) < self.settings.min_decisions:
                return
            share = float(np.mean(self._up))
            outside = abs(share - self.target) > self.settings.band
            changed, self.out_of_band = outside != self.out_of_band, outside
        if changed and outside:
            LOG.warning("drift: the realised cloud share %.1f%% over the last %d requests is "
                        "outside the calibrated %.1f%% +- %.1f%%: the traffic no longer looks "
                        "like the calibration prompts; recalibrate (confroute calibrate) or "
                        "retrain from the log", 100 * share, len(self._up), 100 * self.target,
                        100 * self.settings.band)
        elif changed:
            LOG.warning("drift: the realised cloud share %.1f%% is back within the calibrated "
                        "%.1f%% +- %.1f%%", 100 * share, 100 * self.target,
                        100 * self.settings.band)


def series(decisions: Any, outcomes: Any, bucket_s: float, reference: np.ndarray,
           target: float | None, settings: DriftSettings) -> list[dict[str, Any]]:
    """One entry per `bucket_s` window of `decisions` (a DataFrame of the log's decisions:
    time, score, chosen_model, models, request_id, cost_usd, top_cost_usd) with `outcomes`
    (request_id, kind, rating): requests, realised cloud share, its band check, score PSI and
    KS against `reference`, feedback and retry rates, cost and savings in USD."""
    out = []
    start = float(decisions["time"].min())
    index = ((decisions["time"] - start) // bucket_s).astype(int)
    by_request = outcomes.groupby("request_id")["kind"].agg(set) if len(outcomes) else {}
    feedback = outcomes[outcomes["kind"] == "feedback"] if len(outcomes) else outcomes
    for bucket, rows in decisions.groupby(index, sort=True):
        ids = rows["request_id"]
        kinds = [by_request.get(i, set()) for i in ids] if len(outcomes) else [set()] * len(ids)
        up = rows["chosen_model"] != rows["models"].map(lambda m: m[0])
        share = float(up.mean())
        scores = rows["score"].dropna().to_numpy(float)
        rated = feedback[feedback["request_id"].isin(ids)] if len(feedback) else feedback
        cost, top = rows["cost_usd"].sum(min_count=1), rows["top_cost_usd"].sum(min_count=1)
        out.append({
            "start": start + bucket * bucket_s, "requests": len(rows), "cloud_share": share,
            "out_of_band": bool(target is not None and abs(share - target) > settings.band),
            "score_mean": float(scores.mean()) if len(scores) else None,
            "psi": psi(reference, scores, settings.bins), "ks": ks_statistic(reference, scores),
            "feedback_rate": float(np.mean(["feedback" in k for k in kinds])),
            "thumbs_down_share": float((rated["rating"] < 0.5).mean()) if len(rated) else None,
            "retry_rate": float(np.mean(["retry" in k for k in kinds])),
            "cost_usd": None if cost != cost else float(cost),
            "savings_usd": None if top != top or cost != cost else float(top - cost)})
    return out
