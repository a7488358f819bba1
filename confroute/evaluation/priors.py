"""Priors in evaluation: the group of each evaluated prompt, the prior inside the evaluation
protocols, and the paired gap between a router and the prior.

The prior itself (`GroupPrior`: a smoothed per-group rate, the m-estimate) lives in
`confroute.dataset.prior`, below training (which reports it at validation) and evaluation. Within
one group every prompt gets the same score, so a prior's APGR within a group is 0.5 (AUROC 0.5)
by construction: a router only adds value over the prior by ranking prompts inside a group.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from confroute.dataset.prior import DEFAULT_STRENGTH, GroupPrior
from confroute.errors import DataError
from confroute.evaluation import metrics, protocols
from confroute.evaluation.groundtruth import GroundTruth, resolve_routellm_dir
from confroute.stats import weighted_bootstrap

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
    def difference(w: np.ndarray) -> dict[str, float]:
        return {"gap": metrics.apgr(metrics.sweep(scores, quality_edge, quality_cloud, w))
                - metrics.apgr(metrics.sweep(prior_scores, quality_edge, quality_cloud, w))}

    point = difference(np.ones(len(scores)))["gap"]
    ci = weighted_bootstrap(len(scores), difference, samples, seed, confidence, skip=(DataError,))
    return {"gap": float(point), "low": ci["gap"]["low"], "high": ci["gap"]["high"],
            "samples": samples, "skipped": ci["_meta"]["skipped"]}
