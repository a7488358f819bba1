"""What `confroute evaluate` measures a router against: K models' real outcomes per prompt.

Every truth becomes the same K-model view (`Outcomes`), so one code path evaluates a pair and a
ladder alike (a pair is K = 2):

- A pair's ground truth (`--truth`: RouteLLM outcomes `gsm8k|mmlu|mt-bench`, or a labelled
  dataset `DATASET[:SPLIT]` with rating_edge / rating_cloud; `groundtruth.load_truth`): models
  edge then cloud, quality [n, 2] = the two outcomes. The cost axis counts cloud calls (the edge
  costs 0, the cloud 1 per prompt), so the curve's area is APGR and its cost at PGR level x is
  CPT(x) (`confroute.evaluation.ladder`). The prior is the group prior cross-validated on the
  evaluated prompts (`priors.cv_scores`), since a pair's truth carries no training rows.
- A ratings table (`--ratings`, K >= 2 priced models, `confroute.dataset.ratings`): quality =
  the outcomes as the router was trained to predict them, cost = USD per prompt from the table's
  token counts and the artifact's prices; the rows of one split are evaluated and the prior
  (P(model k adequate | category), `GroupPrior`) is fitted on the table's `train` rows.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from confroute.dataset.prior import GroupPrior
from confroute.dataset.ratings import Ratings, read_ratings
from confroute.errors import DataError
from confroute.evaluation.groundtruth import GroundTruth, stratified_sample


@dataclasses.dataclass
class Outcomes:
    """K models' outcomes on the evaluated prompts, models cheapest first.

    quality [n, K] and costs [n, K] (`cost_unit`: "usd", or "calls" for a pair's truth);
    groups [n] the source / category of each prompt (None: one pool); prior [n, K] the simplest
    prior's P(model k adequate) (None: no grouping to fit one on); `truth` the pair's ground
    truth when the outcomes came from one (the paper's pair figures are computed on it).
    """

    name: str
    ids: np.ndarray
    prompts: list[str]
    models: list[str]
    quality: np.ndarray
    costs: np.ndarray
    cost_unit: str
    groups: np.ndarray | None = None
    prior: np.ndarray | None = None
    prior_name: str | None = None
    truth: GroundTruth | None = None
    info: dict[str, Any] = dataclasses.field(default_factory=dict)
    prior_score: np.ndarray | None = None
    """A pair's truth: the prior's P(cloud needed) [n] as fitted (prior[:, 0] is 1 - it), so
    the pair figures see the prior's own scores, without a 1 - (1 - s) round trip."""

    def __len__(self) -> int:
        return len(self.ids)


def from_truth(truth: GroundTruth, prior: tuple[str, np.ndarray] | None) -> Outcomes:
    """A pair's ground truth as K = 2 outcomes; `prior` = (name, P(cloud needed) scores [n]),
    e.g. `priors.cv_scores`."""
    n = len(truth)
    probs = None if prior is None else np.stack([1.0 - prior[1], np.ones(n)], axis=1)
    return Outcomes(truth.name, truth.ids, truth.prompts, [truth.edge_model, truth.cloud_model],
                    np.stack([truth.quality_edge, truth.quality_cloud], axis=1),
                    np.stack([np.zeros(n), np.ones(n)], axis=1), "calls", truth.groups, probs,
                    None if prior is None else prior[0], truth, dict(truth.info),
                    None if prior is None else prior[1])


def from_ratings(path: Path, prices: dict[str, dict[str, float]], models: list[str],
                 manifest: dict[str, Any], split: str = "test", sample: int | None = None,
                 seed: int = 0) -> Outcomes:
    """The `split` rows of a ratings table (optionally a seeded `sample` of them, stratified by
    category) with the prior fitted on its `train` rows.

    Raises DataError: a model column missing, NaN or out-of-range outcomes, no `split` column,
    no rows in the split, no training rows for the prior, a price order unlike the artifact's.
    """
    table = read_ratings(path, prices, models)
    table.ratings = adequacy_targets(table, manifest)
    if table.models != models:
        raise DataError(f"the table's price order {table.models} differs from the artifact's "
                        f"models {models}")
    rows, train = _rows(table, split)
    info: dict[str, Any] = {"source": str(path), "split": split, "prices_per_mtok": prices,
                            "tokens": table.info.get("tokens")}
    if sample is not None and sample < len(rows):
        groups = table.categories[rows] if table.categories is not None else None
        info.update(subset_of=len(rows), sample_seed=seed)
        rows = rows[stratified_sample(groups, len(rows), sample, seed)]
    test = table.subset(rows)
    return Outcomes(Path(path).name, test.ids, test.prompts, table.models, test.ratings,
                    test.costs(), "usd", test.categories, _prior(table, train, rows),
                    "prior (category, fitted on train rows)", None, info)


def _rows(table: Ratings, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(evaluated rows, training rows of the prior)."""
    if table.splits is None:
        raise DataError(f"the table has no `split` column, so split '{split}' cannot be chosen "
                        "and no prior can be fitted; add one (train rows for the prior, "
                        f"'{split}' rows to evaluate)")
    evaluated = np.flatnonzero(table.splits == split)
    if len(evaluated) == 0:
        raise DataError(f"no rows in split '{split}' to evaluate")
    train = np.flatnonzero(table.splits == "train")
    if split == "train" or len(train) == 0:
        raise DataError("the per-category prior needs `train` rows in the table's `split` "
                        "column, apart from the evaluated rows")
    return evaluated, train


def adequacy_targets(table: Ratings, manifest: dict[str, Any]) -> np.ndarray:
    """The outcomes as the router was trained to predict them, [n, K] in [0, 1]: ratings >= the
    run's `data.adequate_rating` as 1/0 when it set one, else the ratings themselves, which must
    then lie in [0, 1]. Raises DataError naming a model and prompt with a rating outside."""
    params = (manifest.get("label_rule") or {}).get("params") or {}
    threshold = params.get("adequate_rating")
    if threshold is not None:
        return (table.ratings >= float(threshold)).astype(float)
    bad = np.argwhere((table.ratings < 0) | (table.ratings > 1))
    if bad.size:
        row, col = (int(v) for v in bad[0])
        raise DataError(f"ratings of model '{table.models[col]}' must be in [0, 1] (the router "
                        f"was trained on such targets); prompt {table.ids[row]} has "
                        f"{float(table.ratings[row, col])}")
    return table.ratings


def _prior(table: Ratings, train: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """P(model k adequate | category) from the training rows [n_eval, K] (global rate without
    categories), smoothed toward the global rate (GroupPrior)."""
    groups = (table.categories if table.categories is not None
              else np.full(len(table), "all"))
    return np.stack([GroupPrior().fit(groups[train], table.ratings[train, k].astype(float))
                     .score(groups[rows]) for k in range(len(table.models))], axis=1)
