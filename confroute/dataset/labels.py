"""Label rules: per-model evidence -> P(cloud model needed | prompt). Pure numpy.

Every rule returns a `Labels` with one float per row in [0, 1] (NaN = row dropped, e.g. a tie
under `ties="drop"`) and counts that say what happened, so callers report drops instead of
hiding them. Conventions (see ../docs in the README): label 1 = the cloud model is needed.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np

from confroute.errors import DataError

Ties = Literal["edge", "soft", "drop"]
TIE_VALUE = {"edge": 0.0, "soft": 0.5, "drop": np.nan}


@dataclasses.dataclass
class Labels:
    values: np.ndarray
    """float64, one per row; NaN marks a dropped row."""
    counts: dict[str, int]
    rule: str
    params: dict[str, float | str | None]

    @property
    def kept(self) -> np.ndarray:
        return ~np.isnan(self.values)


def tau_rule(se_edge: np.ndarray, se_cloud: np.ndarray, tau: float = 0.1,
             epsilon: float = 1e-6, ties: Ties = "edge") -> Labels:
    """Paper Eq. 3/4: delta = |SE_cloud - SE_edge| / SE_cloud; above tau the lower SE wins.

    SE_cloud below `epsilon` is replaced by epsilon (counted as `epsilon_hits`): a cloud model
    that is certain makes any edge uncertainty a large relative gap, which is the intent.
    """
    se_edge, se_cloud = _finite("se_edge", se_edge), _finite("se_cloud", se_cloud)
    denom = np.maximum(se_cloud, epsilon)
    delta = np.abs(se_cloud - se_edge) / denom
    decided = delta > tau
    values = np.where(decided, (se_cloud < se_edge).astype(float), TIE_VALUE[ties])
    counts = {
        "cloud_wins": int(np.sum(decided & (se_cloud < se_edge))),
        "edge_wins": int(np.sum(decided & (se_cloud >= se_edge))),
        "ties": int(np.sum(~decided)),
        "epsilon_hits": int(np.sum(se_cloud < epsilon)),
    }
    return Labels(values, counts, "tau", {"tau": tau, "epsilon": epsilon, "ties": ties})


def edge_se_rule(se_edge: np.ndarray, threshold: float | None = None,
                 quantile: float | None = 0.7) -> Labels:
    """Edge-only: the edge model is unsure (label 1) when its SE exceeds a threshold.

    With no absolute threshold, the threshold is the `quantile` of SE_edge over these rows.
    """
    se_edge = _finite("se_edge", se_edge)
    if threshold is None:
        if quantile is None:
            raise DataError("edge_se rule needs label.edge_threshold or label.edge_quantile")
        threshold = float(np.quantile(se_edge, quantile))
    values = (se_edge > threshold).astype(float)
    counts = {"cloud": int(values.sum()), "edge": int(len(values) - values.sum())}
    return Labels(values, counts, "edge_se", {"threshold": threshold, "quantile": quantile})


def edge_wrong_rule(correct_edge: np.ndarray) -> Labels:
    """Edge-only with gold answers: label 1 (cloud) where the edge model's greedy answer is wrong.

    `correct_edge` is 1 for a right answer and 0 for a wrong one, one per row. In the label
    study (bench/results/labels.md, 7,335 SmolLM2 prompts) this raw outcome trained the router
    that best predicted held-out failures: AUROC 0.796 against 0.713 for the best SE label.
    Raises DataError for values other than 0/1 (NaN: no gold answer for that row).
    """
    correct = _finite("correct_edge", correct_edge)
    if not np.isin(correct, (0.0, 1.0)).all():
        raise DataError("correct_edge must be 0 or 1 on every row for the edge_wrong rule")
    values = 1.0 - correct
    counts = {"cloud": int(values.sum()), "edge": int(len(values) - values.sum())}
    return Labels(values, counts, "edge_wrong", {})


def judge_rule(rating_edge: np.ndarray, rating_cloud: np.ndarray, margin: float = 0.0,
               ties: Ties = "edge") -> Labels:
    """Ratings (judge 1-10 or correctness 0/1): cloud needed when it is rated higher by > margin.

    Edge rated higher by > margin -> 0; anything in between is a tie.
    """
    rating_edge = _finite("rating_edge", rating_edge)
    rating_cloud = _finite("rating_cloud", rating_cloud)
    gap = rating_cloud - rating_edge
    cloud, edge = gap > margin, gap < -margin
    values = np.where(cloud, 1.0, np.where(edge, 0.0, TIE_VALUE[ties]))
    counts = {"cloud_better": int(cloud.sum()), "edge_better": int(edge.sum()),
              "ties": int((~cloud & ~edge).sum())}
    return Labels(values, counts, "judge", {"margin": margin, "ties": ties})


def combined_rule(judge: Labels, se: Labels, judge_weight: float = 0.5) -> Labels:
    """Soft label = w * judge label + (1 - w) * SE label; a row dropped by either is dropped.

    Agreement gives a hard 0 or 1; disagreement gives w or 1 - w, so the router learns that such
    prompts are uncertain rather than being forced to pick a side.
    """
    values = judge_weight * judge.values + (1 - judge_weight) * se.values
    counts = {f"judge_{k}": v for k, v in judge.counts.items()}
    counts |= {f"se_{k}": v for k, v in se.counts.items()}
    counts["agree"] = int(np.sum(judge.values == se.values))
    params = {"judge_weight": judge_weight, **{f"judge_{k}": v for k, v in judge.params.items()},
              **{f"se_{k}": v for k, v in se.params.items()}, "se_rule": se.rule}
    return Labels(values, counts, "combined", params)


def _finite(name: str, values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise DataError(f"column '{name}' has {bad.size} missing or non-finite value(s), first at "
                        f"row {int(bad[0])}; fill or remove those rows, or choose a label rule "
                        "that does not need this column")
    return values
