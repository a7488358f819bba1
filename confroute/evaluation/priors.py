"""Priors: the router a user could write in one line, as the baseline every router must beat.

A prior scores a prompt by the rate at which the cloud was needed on *training* prompts of the
same group: the source of a labelled dataset, the subject of an MMLU question, the category of an
MT-Bench or MMLU-Pro question. The rate is smoothed toward the global training rate with
`strength` pseudo-prompts (the m-estimate of Cestnik 1990, "Estimating probabilities: a crucial
task in machine learning"):

    prior(g) = (sum of labels in g + strength * global rate) / (prompts in g + strength)

so a group seen a handful of times scores near the global rate, and a group never seen in training
scores exactly the global rate. Within one group every prompt gets the same score, so a prior's
APGR within a group is 0.5 (AUROC 0.5) by construction: a router only adds value over the prior
by ranking prompts inside a group.

Everything here is numpy; `validation_prior` takes pandas frames (the training split and the
validation split) for training's validation report.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from confroute.errors import ConfigError, DataError
from confroute.evaluation import metrics, protocols
from confroute.evaluation.groundtruth import GroundTruth, resolve_routellm_dir
from confroute.stats import binary_auroc

DEFAULT_STRENGTH = 10.0
"""Pseudo-prompts at the global rate added to every group (m of the m-estimate)."""


@dataclasses.dataclass
class GroupPrior:
    """Smoothed per-group rate of a label in [0, 1]: fit on training rows, score any rows.

    `fit(groups, labels)`: groups are any hashable values (converted to str), labels floats in
    [0, 1]; both of length n >= 1. `score(groups)` returns one float per row in [0, 1].
    Raises DataError on misaligned, empty or out-of-range input, ConfigError for strength < 0.
    """

    strength: float = DEFAULT_STRENGTH
    name: str = "prior"

    def fit(self, groups: Sequence[Any] | np.ndarray, labels: np.ndarray) -> GroupPrior:
        if not np.isfinite(self.strength) or self.strength < 0:
            raise ConfigError(f"prior strength must be a finite number >= 0; found "
                              f"{self.strength}")
        keys = _keys(groups)
        values = np.asarray(labels, dtype=float)
        if values.ndim != 1 or len(values) != len(keys) or len(keys) == 0:
            raise DataError(f"a prior needs one group per label and at least one row; found "
                            f"{len(keys)} group(s) and {values.shape} label(s)")
        if not np.isfinite(values).all() or (values < 0).any() or (values > 1).any():
            raise DataError("prior labels must be finite numbers in [0, 1]")
        self.global_rate = float(values.mean())
        names, inverse = np.unique(keys, return_inverse=True)
        sums = np.bincount(inverse, weights=values, minlength=len(names))
        counts = np.bincount(inverse, minlength=len(names))
        rates = (sums + self.strength * self.global_rate) / (counts + self.strength)
        self.rates = dict(zip(names.tolist(), rates.tolist(), strict=True))
        self.counts = dict(zip(names.tolist(), counts.tolist(), strict=True))
        return self

    def score(self, groups: Sequence[Any] | np.ndarray) -> np.ndarray:
        if not hasattr(self, "rates"):
            raise DataError("the prior has not been fitted; call fit(groups, labels) first")
        return np.array([self.rates.get(g, self.global_rate) for g in _keys(groups)],
                        dtype=float)


def _keys(groups: Sequence[Any] | np.ndarray) -> np.ndarray:
    keys = np.asarray(groups, dtype=object)
    if keys.ndim != 1:
        raise DataError(f"groups must be one value per row; found shape {keys.shape}")
    return keys.astype(str)


# --- groups of a ground truth -------------------------------------------------------------------


def truth_groups(truth: GroundTruth, routellm_dir: str | Path | None = None
                 ) -> tuple[str, np.ndarray]:
    """(kind, one group per row) for the prior of `truth`.

    MMLU (RouteLLM): the subject, from ids `mmlu/<subject>/<row>`. MT-Bench (RouteLLM): the
    question's category, read from `evals/mt_bench/question.jsonl` in `routellm_dir` (or
    $CONFROUTE_ROUTELLM_DIR). A labelled dataset with a `source` column: the source. Otherwise
    one group for all rows (kind `global`: the prior is then a constant, i.e. random routing).
    """
    if truth.name == "mmlu" and all(i.startswith("mmlu/") and i.count("/") == 2
                                    for i in truth.ids):
        return "subject", np.array([i.split("/")[1] for i in truth.ids])
    if truth.name == "mt-bench" and all(i.startswith("mt_bench/") for i in truth.ids):
        categories = mt_bench_categories(routellm_dir)
        missing = [i for i in truth.ids if int(i.split("/")[1]) not in categories]
        if missing:
            raise DataError(f"MT-Bench question(s) {missing[:3]} have no category in "
                            "question.jsonl; use the question file the judgements came from")
        return "category", np.array([categories[int(i.split("/")[1])] for i in truth.ids])
    if truth.groups is not None:
        return "source", np.asarray(truth.groups).astype(str)
    return "global", np.full(len(truth), "all")


def mt_bench_categories(routellm_dir: str | Path | None = None) -> dict[int, str]:
    """question_id -> category from RouteLLM's (FastChat's) MT-Bench question file."""
    path = resolve_routellm_dir(routellm_dir) / "evals" / "mt_bench" / "question.jsonl"
    if not path.is_file():
        raise DataError(f"{path} is missing; the MT-Bench categories come from it")
    out = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            out[int(row["question_id"])] = str(row["category"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{path}:{number}: expected a JSON object with question_id and "
                            f"category ({exc})") from exc
    return out


# --- priors inside the evaluation protocols ---------------------------------------------------


def recipe(groups_by_id: dict[str, str], strength: float = DEFAULT_STRENGTH) -> protocols.Recipe:
    """A protocol recipe: fit the prior on the fold's training rows (their groups, looked up by
    id in `groups_by_id`), score its test rows. Rows of a group the fold never trained on (e.g.
    a transfer to another benchmark) get the global training rate.

    Scores are the group rate minus the fold's global training rate: the same ranking inside a
    fold, but pooled out-of-fold scores are not ordered by the folds' base-rate noise (without
    it, a one-group prior would rank whole folds against each other instead of being constant).
    """

    def fit_score(fold: protocols.Fold) -> np.ndarray:
        def groups(ids: np.ndarray) -> list[str]:
            return [groups_by_id.get(str(i), "") for i in ids]

        prior = GroupPrior(strength).fit(groups(fold.train.ids), fold.train.labels)
        # rounded: float noise in rate - global must not order folds either
        return np.round(prior.score(groups(fold.test.ids)) - prior.global_rate, 12)

    return fit_score


def cv_scores(truth: GroundTruth, groups: np.ndarray, folds: int = 5, seed: int = 0,
              strength: float = DEFAULT_STRENGTH) -> np.ndarray:
    """Out-of-fold prior scores for every row of `truth` (k-fold CV with
    `protocols.kfold_assignment`'s seeded folds), labels = `truth.labels()`."""
    groups = np.asarray(groups).astype(str)
    if len(groups) != len(truth):
        raise DataError(f"{len(groups)} groups for {len(truth)} prompts of '{truth.name}'")
    cells, _ = protocols.cv_folds(truth, None, folds, seed)
    return protocols.run(cells, recipe(dict(zip(truth.ids, groups, strict=True)), strength),
                         len(truth))


def gap(scores: np.ndarray, prior_scores: np.ndarray, quality_edge: np.ndarray,
        quality_cloud: np.ndarray, samples: int = 1000, seed: int = 0,
        confidence: float = 0.95) -> dict[str, float]:
    """APGR(router) - APGR(prior) on the same prompts, with a paired percentile bootstrap CI
    (both routers scored on each resample of prompts, so the CI is that of the difference).

    Returns {"gap", "low", "high", "samples", "skipped"}; resamples where PGR is undefined are
    skipped and counted.
    """
    n = len(scores)
    point = (metrics.apgr(metrics.sweep(scores, quality_edge, quality_cloud))
             - metrics.apgr(metrics.sweep(prior_scores, quality_edge, quality_cloud)))
    rng = np.random.default_rng(seed)
    draws, skipped = [], 0
    for _ in range(samples):
        w = np.bincount(rng.integers(0, n, n), minlength=n).astype(float)
        try:
            draws.append(metrics.apgr(metrics.sweep(scores, quality_edge, quality_cloud, w))
                         - metrics.apgr(metrics.sweep(prior_scores, quality_edge,
                                                      quality_cloud, w)))
        except DataError:
            skipped += 1
    alpha = (1 - confidence) / 2
    low, high = (np.quantile(draws, [alpha, 1 - alpha]).tolist() if draws
                 else [float("nan")] * 2)
    return {"gap": float(point), "low": low, "high": high, "samples": samples,
            "skipped": skipped}


# --- training's validation report -----------------------------------------------------------


def validation_prior(train: Any, val: Any, column: str = "source",
                     strength: float = DEFAULT_STRENGTH) -> dict[str, Any]:
    """The prior fitted on the training split's labels per `column` value, scored on validation.

    `train` and `val` are pandas frames with `label` (in [0, 1]) and `column`; without `column`
    every row is one group (the prior is the global rate). Returns the prior's validation AUROC
    (labels >= 0.5 positive, as the router's val_auroc) pooled, the groups used and their
    training rates, so the report shows whether the router beats knowing the group.
    """
    for name, frame in (("train", train), ("val", val)):
        if "label" not in frame.columns or len(frame) == 0:
            raise DataError(f"validation prior: the {name} split needs rows with a 'label' "
                            "column")

    def groups(frame: Any) -> np.ndarray:
        if column in frame.columns:
            return frame[column].astype(str).to_numpy()
        return np.full(len(frame), "all")

    prior = GroupPrior(strength).fit(groups(train), train["label"].to_numpy(dtype=float))
    scores = prior.score(groups(val))
    positive = val["label"].to_numpy(dtype=float) >= 0.5
    auroc = binary_auroc(positive, scores)
    return {"group_column": column if column in train.columns else None,
            "strength": strength, "val_auroc": None if np.isnan(auroc) else round(auroc, 4),
            "within_group_auroc": 0.5,
            "groups": len(prior.rates), "train_rates": {k: round(v, 4) for k, v in
                                                        sorted(prior.rates.items())[:50]}}
