"""`confroute evaluate` as a function: scores (from an artifact or a file) + ground truth -> files.

Writes into the output folder: `report.json` (everything, including the curve), `report.md` (the
table) and `curve.png` (quality vs cloud calls with random / oracle / edge / cloud references).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

import numpy as np

from confroute.dataset import tables
from confroute.errors import ConfigError, ConfrouteError, DataError, require
from confroute.evaluation import report as reporting
from confroute.evaluation.costs import CostConfig
from confroute.evaluation.groundtruth import GroundTruth, load_truth
from confroute.files import write_text

SCORE_COLUMNS = ("id", "score")


@dataclasses.dataclass
class EvaluateRequest:
    """One evaluation: where the scores come from, the ground truth, and the report's options.
    Its fields are `confroute evaluate`'s flags (--router, --truth, --out, ...)."""

    truth: str
    """mt-bench, gsm8k, mmlu (RouteLLM outcomes) or a labelled dataset[:split] with prompt,
    rating_edge, rating_cloud."""
    out: Path = Path("evaluation")
    """Output folder for report.json, report.md and curve.png."""
    router: Path | None = None
    """A router artifact directory (from `confroute export`) that scores the prompts."""
    scores: Path | None = None
    """Instead of --router: a scores file (.csv/.jsonl/.parquet) with columns id, score."""
    routellm_dir: Path | None = None
    """RouteLLM's routellm/ folder (default: $CONFROUTE_ROUTELLM_DIR)."""
    save_scores: Path | None = None
    """Also write the per-prompt scores used, with prompt ids, to this file."""
    name: str | None = None
    """Router name in the report (default: the artifact folder's or scores file's name)."""
    variant: Literal["auto", "fp32", "int8"] = "auto"
    """Artifact model variant (auto: the manifest's default)."""
    bootstrap: int = 1000
    """Bootstrap resamples for the 95% confidence intervals; 0 = none."""
    seed: int = 0
    """Seed of the bootstrap and of the sample."""
    sample: int | None = None
    """Evaluate on a seeded sample of this many prompts, stratified by source (None = all)."""
    cost: CostConfig = dataclasses.field(default_factory=CostConfig)
    """Prices per million tokens (a YAML file with these keys, or --cost.<key> flags)."""
    prior_folds: int = 5
    """Folds of the cross-validated group prior reported beside the router (0 = no prior)."""

    def __post_init__(self) -> None:
        if (self.router is None) == (self.scores is None):
            raise ConfigError("give exactly one source of scores: a router artifact directory "
                              "or a scores file (columns id, score)")
        if self.bootstrap < 0:
            raise ConfigError(f"bootstrap samples must be >= 0; found {self.bootstrap}")
        if self.prior_folds < 0 or self.prior_folds == 1:
            raise ConfigError(f"prior folds must be 0 (no prior) or >= 2; found "
                              f"{self.prior_folds}")
        if self.sample is not None and self.sample < 1:
            raise ConfigError(f"sample size must be >= 1; found {self.sample}")


def evaluate(request: EvaluateRequest) -> dict[str, Any]:
    """Score, evaluate and write report.json / report.md / curve.png; returns the report."""
    truth = load_truth(request.truth, request.routellm_dir)
    if request.sample is not None:
        truth = truth.sample(request.sample, request.seed)
    if request.router is not None:
        scores = score_with_router(request.router, truth, request.variant)
        name = request.name or Path(request.router).name
    elif request.scores is not None:
        ids, values = read_scores(request.scores)
        scores = reporting.align_scores(truth, ids, values)
        name = request.name or Path(request.scores).stem
    else:  # __post_init__ guarantees one source; this keeps the type checker informed
        raise ConfigError("no source of scores")
    if request.save_scores is not None:
        write_scores(request.save_scores, truth, scores)
    result = reporting.evaluate(scores, truth, name, request.cost, bootstrap=request.bootstrap,
                                seed=request.seed, prior=prior_scores(request, truth))
    if request.router is not None:
        result["warnings"] = training_overlap(request.router, truth)
    out = Path(request.out)
    reporting.write_json(result, out / "report.json")
    write_text(out / "report.md", reporting.markdown([result]))
    reporting.plot([result], out / "curve.png")
    return result


def prior_scores(request: EvaluateRequest, truth: GroundTruth
                 ) -> tuple[str, np.ndarray] | None:
    """The group prior's out-of-fold scores on the evaluated prompts (subject for MMLU,
    category for MT-Bench, source for a labelled dataset), or None when there is no grouping,
    too few prompts, or `prior_folds` is 0. Cross-validated on the evaluated prompts because a
    router artifact does not carry its training rows' groups: the prior sees the benchmark's own
    outcomes, which only makes it a stronger baseline."""
    from confroute.evaluation import priors

    kind, groups = priors.truth_groups(truth, request.routellm_dir)
    folds = min(request.prior_folds, len(truth))
    if kind == "global" or folds < 2:
        return None
    scores = priors.cv_scores(truth, groups, folds, request.seed)
    return f"prior ({kind}, {folds}-fold CV)", scores


def score_with_router(router_dir: Path, truth: GroundTruth,
                      variant: Literal["auto", "fp32", "int8"] = "auto") -> np.ndarray:
    """Scores of the ground truth's prompts from an exported router artifact."""
    from confroute.runtime import Router

    return Router.load(router_dir, variant=variant).score(truth.prompts)


def training_overlap(router_dir: Path, truth: GroundTruth) -> list[str]:
    """Warnings when evaluated prompts are in the train/val split of the router's training data
    (as named in its manifest): their outcomes may have been learnt, so figures are optimistic."""
    from confroute.artifact import read_manifest
    from confroute.dataset.tables import read_table

    source = read_manifest(Path(router_dir)).get("training_data", {}).get("source")
    if not source:
        return []
    try:
        frame = read_table(str(source))
    except ConfrouteError:  # training data not available here: nothing to compare against
        return [f"could not read the router's training data '{source}' to check that the "
                "evaluated prompts were not trained on"]
    if not {"id", "split"} <= set(frame.columns):
        return []
    seen = set(frame.loc[frame["split"].astype(str) != "test", "id"].astype(str))
    overlap = int(np.isin(truth.ids, list(seen)).sum())
    if not overlap:
        return []
    return [f"{overlap} of the {len(truth)} evaluated prompts are in the train/val split of the "
            f"router's training data '{source}': their outcomes may have been learnt, so these "
            f"figures are optimistic. Evaluate on held-out prompts (e.g. {source}:test)"]


def read_scores(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(ids, scores) from a .csv / .jsonl / .parquet file with columns `id` and `score`."""
    pd = require("pandas", "train")
    frame = tables.read(path, (".csv", ".jsonl", ".parquet"), what="scores file")
    missing = [c for c in SCORE_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: needs columns id and score; missing {', '.join(missing)} "
                        f"(found {', '.join(map(str, frame.columns))})")
    try:
        values = pd.to_numeric(frame["score"]).to_numpy(dtype=float)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: column score must be numbers: {exc}") from exc
    return frame["id"].astype(str).to_numpy(), values


def write_scores(path: Path, truth: GroundTruth, scores: np.ndarray) -> Path:
    """The per-prompt scores used, with prompt ids, so anyone can recompute the metrics."""
    pd = require("pandas", "train")
    path = Path(path)
    frame = pd.DataFrame({"id": truth.ids, "score": scores, "quality_edge": truth.quality_edge,
                          "quality_cloud": truth.quality_cloud})
    return tables.write(frame, path, (".csv", ".jsonl", ".parquet"))
