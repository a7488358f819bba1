"""Figures of bench/irt.py: the pair scores, and each router's curve statistics with paired
bootstrap CIs, pooled and within category (numpy; confroute.evaluation's curves underneath).

Within category: each category is routed on its own and its area above the cheapest model's
quality is summed over categories, divided by the summed quality gap (cloud minus edge, or best
minus cheapest on a ladder), categories weighted by their size. For a pair this is the APGR of
the within-category curves weighted by each category's share of the available gain, so a tiny
gap does not blow a category's term up; a per-category prior scores exactly 0.5 on it (one tie
per category), so `within - prior` is what a router ranks inside categories.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from confroute.errors import DataError
from confroute.evaluation import ladder, metrics
from confroute.stats import weighted_bootstrap

Score = Callable[[np.ndarray], np.ndarray]
CHOICES: dict[str, Score] = {
    "edge failure": lambda p: 1.0 - p[:, 0],
    "gain": lambda p: (p[:, 1] - p[:, 0] + 1.0) / 2.0,
    "joint": lambda p: p[:, 1] * (1.0 - p[:, 0]),
}
"""Pair scores from P [n, 2] = (P(edge adequate), P(cloud adequate)), higher = send up first."""
CHOICE_NOTE = {
    "edge failure": "1 - P(edge): the edge's failure (the threshold rule)",
    "gain": "(P(cloud) - P(edge) + 1) / 2: what the cloud adds",
    "joint": "P(cloud) (1 - P(edge)): P(cloud adequate and edge not), outcomes independent "
             "given the prompt",
}
FIRST_SHARE = 0.2


def groups_of(categories: np.ndarray) -> list[np.ndarray]:
    return [np.flatnonzero(categories == c) for c in np.unique(categories)]


def pair_stats(s: np.ndarray, references: dict[str, np.ndarray], q: np.ndarray,
               costs: np.ndarray, categories: np.ndarray, samples: int, seed: int
               ) -> dict[str, Any]:
    """APGR, within-category APGR and cost at 95% of the cloud's accuracy (share of its cost)
    of the pair score `s` [n] on outcomes `q` [n, 2] and `costs` [n, 2] (USD), their gaps to
    each reference score, paired bootstrap CIs over questions (`samples` = 0: none), and what
    the first 20% sent up are."""
    groups = groups_of(categories)

    def values(w: np.ndarray | None) -> dict[str, float]:
        out = _pair_values(s, q, costs, groups, w)
        for name, ref in references.items():
            other = _pair_values(ref, q, costs, groups, w)
            out.update({f"{k} - {name}": out[k] - other[k] for k in other})
        return out

    out: dict[str, Any] = {**values(None), "first_sent": first_sent(s, q)}
    if samples:
        out["ci"] = weighted_bootstrap(len(s), values, samples, seed, skip=(DataError,))
    return out


def _pair_values(s: np.ndarray, q: np.ndarray, costs: np.ndarray, groups: list[np.ndarray],
                 w: np.ndarray | None) -> dict[str, float]:
    w = np.ones(len(s)) if w is None else w
    return {"apgr": metrics.apgr(metrics.sweep(s, q[:, 0], q[:, 1], w)),
            "within": _within(groups, w, lambda i, wi: _pair_area(s[i], q[i], wi)),
            "cost_at_95": _pair_cost_at_95(s, q, costs, w)}


def _pair_area(s: np.ndarray, q: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    curve = metrics.sweep(s, q[:, 0], q[:, 1], w)
    return (float(np.trapezoid(curve.quality - curve.quality_edge, curve.fraction)),
            curve.quality_cloud - curve.quality_edge)


def _pair_cost_at_95(s: np.ndarray, q: np.ndarray, costs: np.ndarray, w: np.ndarray) -> float:
    """The threshold rule on probabilities (1 - s, 1) sends the highest scores up first."""
    curve = ladder.curve(np.c_[1.0 - s, np.ones(len(s))], q, costs, w)
    return ladder.cost_at_quality(curve)["of_best"]


def _within(groups: list[np.ndarray], w: np.ndarray,
            area: Callable[[np.ndarray, np.ndarray], tuple[float, float]]) -> float:
    """sum_c n_c area_c / sum_c n_c gap_c over the categories with weight (module docstring)."""
    num = den = 0.0
    for index in groups:
        weight = w[index]
        total = weight.sum()
        if total <= 0:
            continue
        a, gap = area(index, weight)
        num, den = num + total * a, den + total * gap
    if den <= 0:
        raise DataError("no category has a positive quality gap")
    return num / den


def first_sent(s: np.ndarray, q: np.ndarray, share: float = FIRST_SHARE) -> dict[str, float]:
    """Outcomes of the `share` of questions with the highest score (sent up first; ties in
    question order): shares where both models fail, only the costlier one is right, only the
    cheaper one, both."""
    top = np.argsort(-s, kind="stable")[:max(1, round(share * len(s)))]
    edge, cloud = q[top, 0] >= 0.5, q[top, -1] >= 0.5
    return {"both fail": float(np.mean(~edge & ~cloud)),
            "cloud only": float(np.mean(~edge & cloud)),
            "edge only": float(np.mean(edge & ~cloud)), "both right": float(np.mean(edge & cloud))}


def random_pair(q: np.ndarray, costs: np.ndarray, categories: np.ndarray, seeds: int
                ) -> dict[str, float]:
    """Mean over `seeds` of the pair figures of uniform random scores."""
    groups = groups_of(categories)
    runs = [_pair_values(np.random.default_rng(seed).random(len(q)), q, costs, groups, None)
            for seed in range(seeds)]
    return {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}


def ladder_stats(p: np.ndarray, reference: np.ndarray | None, q: np.ndarray, costs: np.ndarray,
                 categories: np.ndarray, policy: str, samples: int, seed: int) -> dict[str, Any]:
    """Normalised area, cost at 95% of the best model's accuracy (share of its cost) and
    within-category area of probabilities `p` [n, K] under `policy`, their gaps to `reference`
    probabilities and paired bootstrap CIs (`samples` = 0: none)."""
    groups = groups_of(categories)

    def values(w: np.ndarray | None) -> dict[str, float]:
        out = _ladder_values(p, q, costs, groups, w, policy)
        if reference is not None:
            other = _ladder_values(reference, q, costs, groups, w, policy)
            out.update({f"{k} - prior": out[k] - other[k] for k in other})
        return out

    out: dict[str, Any] = values(None)
    if samples:
        out["ci"] = weighted_bootstrap(len(p), values, samples, seed, skip=(DataError,))
    return out


def _ladder_values(p: np.ndarray, q: np.ndarray, costs: np.ndarray, groups: list[np.ndarray],
                   w: np.ndarray | None, policy: str) -> dict[str, float]:
    w = np.ones(len(p)) if w is None else w
    curve = ladder.curve(p, q, costs, w, policy)

    def area(index: np.ndarray, weight: np.ndarray) -> tuple[float, float]:
        c = ladder.curve(p[index], q[index], costs[index], weight, policy)
        base = c.model_quality[0]
        return float(np.trapezoid(c.quality - base, c.x)), float(c.model_quality[c.best] - base)

    return {"area": ladder.area(curve), "cost_at_95": ladder.cost_at_quality(curve)["of_best"],
            "within": _within(groups, w, area)}
