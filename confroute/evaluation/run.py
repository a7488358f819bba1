"""`confroute evaluate` as a function: a router's scores + real outcomes of K >= 2 models -> files.

One code path for a pair and a ladder (a pair is K = 2): the truth becomes K models' outcomes
(`confroute.evaluation.outcomes`), the router gives P(model k adequate) [n, K], and the policy's
quality-vs-cost curve (`confroute.evaluation.tradeoff`, on `evaluation.ladder`) is traced beside
the prior, random, the oracle and each model alone, pooled and within each source. For K = 2 the
report also holds the paper's figures of the two-model score (`evaluation.report`: APGR,
CPT(20/50/80%), the threshold sweep, cost in USD, bootstrap CIs) beside the same references.

Writes into the output folder: `report.json` (everything, including the curves), `report.md`
(the tables) and `curve.png` (quality vs cost, or vs cloud calls for a pair's truth).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

import numpy as np

from confroute.dataset import tables
from confroute.errors import ConfigError, ConfrouteError, DataError, require
from confroute.evaluation import ladder, outcomes, tradeoff
from confroute.evaluation import report as reporting
from confroute.evaluation.costs import CostConfig
from confroute.evaluation.groundtruth import GroundTruth, load_truth
from confroute.files import write_text

SCORE_COLUMNS = ("id", "score")


@dataclasses.dataclass
class EvaluateRequest:
    """One evaluation: where the scores come from, the real outcomes, and the report's options.
    Its fields are `confroute evaluate`'s flags (--router, --truth or --ratings, --out, ...)."""

    truth: str | None = None
    """Two models' outcomes: mt-bench, gsm8k, mmlu (RouteLLM outcomes) or a labelled
    dataset[:split] with prompt, rating_edge, rating_cloud."""
    ratings: Path | None = None
    """Instead of --truth, K models' outcomes: a ratings table (.parquet/.jsonl/.csv) with
    `prompt`, one column of outcomes per model of the artifact (named as the model), `split`,
    optional `id`, `category`, `tokens_in`, `tokens_out` (see confroute/dataset/ratings.py)."""
    out: Path = Path("evaluation")
    """Output folder for report.json, report.md and curve.png."""
    router: Path | None = None
    """A router artifact directory (from `confroute export`) that scores the prompts."""
    scores: Path | None = None
    """Instead of --router (with --truth): a scores file (.csv/.jsonl/.parquet) with columns id,
    score (P(cloud needed))."""
    routellm_dir: Path | None = None
    """RouteLLM's routellm/ folder (default: $CONFROUTE_ROUTELLM_DIR)."""
    save_scores: Path | None = None
    """Also write the per-prompt scores used, with prompt ids, to this file."""
    name: str | None = None
    """Router name in the report (default: the artifact folder's or scores file's name)."""
    variant: Literal["auto", "fp32", "int8"] = "auto"
    """Artifact model variant (auto: the manifest's default)."""
    split: str = "test"
    """--ratings: evaluate the rows of this split; the prior is fitted on the `train` rows."""
    policy: Literal["threshold", "utility"] | None = None
    """The swept rule: `threshold` (the cheapest model predicted adequate, a shared threshold
    swept) or `utility` (argmax P - lambda x cost, lambda swept); None: the artifact's rule."""
    quality_share: float = ladder.DEFAULT_QUALITY_SHARE
    """Report the cost at which this share of the best model's mean quality is reached."""
    bootstrap: int = 1000
    """Bootstrap resamples for the 95% confidence intervals; 0 = none."""
    seed: int = 0
    """Seed of the bootstrap and of the sample."""
    sample: int | None = None
    """Evaluate on a seeded sample of this many prompts, stratified by source (None = all)."""
    random_seeds: int = 20
    """Seeds of the random reference's quality-vs-cost curve (its figures are their mean)."""
    cost: CostConfig = dataclasses.field(default_factory=CostConfig)
    """--truth: prices per million tokens (a YAML file with these keys, or --cost.<key>
    flags); a ratings table is priced by the artifact."""
    prior_folds: int = 5
    """--truth: folds of the cross-validated group prior reported beside the router (0 = no
    prior)."""

    def __post_init__(self) -> None:
        if (self.truth is None) == (self.ratings is None):
            raise ConfigError("give exactly one source of outcomes: --truth (two models: "
                              "gsm8k|mmlu|mt-bench|DATASET[:SPLIT]) or --ratings (a table of "
                              "K models' outcomes)")
        if (self.router is None) == (self.scores is None):
            raise ConfigError("give exactly one source of scores: a router artifact directory "
                              "or a scores file (columns id, score)")
        if self.scores is not None and self.ratings is not None:
            raise ConfigError("a scores file holds one two-model score per prompt; evaluate a "
                              "ratings table with --router ARTIFACT")
        if self.bootstrap < 0 or self.random_seeds < 1:
            raise ConfigError(f"bootstrap samples must be >= 0 and random_seeds >= 1; found "
                              f"{self.bootstrap} and {self.random_seeds}")
        if self.prior_folds < 0 or self.prior_folds == 1:
            raise ConfigError(f"prior folds must be 0 (no prior) or >= 2; found "
                              f"{self.prior_folds}")
        if self.sample is not None and self.sample < 1:
            raise ConfigError(f"sample size must be >= 1; found {self.sample}")
        if not 0 < self.quality_share <= 1:
            raise ConfigError(f"quality_share must be in (0, 1]; found {self.quality_share}")


def evaluate(request: EvaluateRequest) -> dict[str, Any]:
    """Score, evaluate and write report.json / report.md / curve.png; returns the report.

    Raises ConfigError / DataError / ArtifactError / InputError naming what is wrong (a missing
    model column, a pair artifact on a ratings table, a file given as --out, ...); nothing is
    written then.
    """
    out = Path(request.out)
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} is a file; give a folder for the report")
    router = None
    if request.router is not None:
        from confroute.runtime import Router

        router = Router.load(request.router, variant=request.variant)
    evidence = _outcomes(request, router)
    probs, score = _scores(request, router, evidence)
    name = request.name or Path(request.router or request.scores or "router").name
    if request.scores is not None and request.name is None:
        name = Path(request.scores).stem
    result: dict[str, Any] = {"router": name, "ground_truth": evidence.name,
                              "prompts": len(evidence), "source_info": evidence.info}
    if evidence.truth is not None:  # the paper's pair figures of the two-model score
        result.update(reporting.evaluate(score, evidence.truth, name, request.cost,
                                         bootstrap=request.bootstrap, seed=request.seed,
                                         prior=_pair_prior(evidence)))
    rule = request.policy or (router.policy.rule if router is not None else "threshold")
    result.update(tradeoff.report(evidence, probs, rule, request.quality_share,
                                  request.bootstrap, request.seed, request.random_seeds))
    if router is not None and request.router is not None:
        result["operating_point"] = tradeoff.operating_point(
            evidence, _chosen(router, evidence, probs, score), router.policy)
        result["warnings"] = training_overlap(request.router, evidence.ids)
    if request.save_scores is not None:
        write_scores(request.save_scores, evidence, probs, score)
    reporting.write_json(result, out / "report.json")
    pair = reporting.markdown([result]) + "\n" if evidence.truth is not None else ""
    write_text(out / "report.md", f"# {name} on {evidence.name}\n\n{pair}"
               + tradeoff.markdown(result))
    tradeoff.plot(result, out / "curve.png")
    return result


def _outcomes(request: EvaluateRequest, router: Any) -> outcomes.Outcomes:
    """The real outcomes of the evaluated prompts (a sample when asked), as K models'."""
    if request.ratings is not None:
        if router.prices is None:
            raise DataError(f"{request.router} has no model prices, so a ratings table's cost "
                            "axis cannot be priced; evaluate a pair artifact with --truth")
        prices = {m: dataclasses.asdict(p) for m, p in zip(router.models, router.prices,
                                                           strict=True)}
        return outcomes.from_ratings(request.ratings, prices, router.models, router.manifest,
                                     request.split, request.sample, request.seed)
    truth = load_truth(str(request.truth), request.routellm_dir)
    if request.sample is not None:
        truth = truth.sample(request.sample, request.seed)
    return outcomes.from_truth(truth, prior_scores(request, truth))


def _scores(request: EvaluateRequest, router: Any, evidence: outcomes.Outcomes
            ) -> tuple[np.ndarray, np.ndarray]:
    """(P(model k adequate) [n, K], the two-model score P(cloud needed) [n]) from one
    inference of the artifact, or, from a scores file, (the pair's [1 - score, 1], score)."""
    if router is not None:
        if len(router.models) != len(evidence.models):
            raise DataError(f"{request.router} routes between {len(router.models)} models; "
                            f"the outcomes have {len(evidence.models)}")
        return router.probabilities(router.texts(evidence.prompts))
    ids, values = read_scores(Path(str(request.scores)))
    assert evidence.truth is not None  # __post_init__: a scores file goes with --truth
    score = reporting.align_scores(evidence.truth, ids, values)
    return np.stack([1.0 - score, np.ones(len(score))], axis=1), score


def _chosen(router: Any, evidence: outcomes.Outcomes, probs: np.ndarray, score: np.ndarray
            ) -> np.ndarray:
    """The model index the artifact's policy picks per prompt (USD costs for the utility rule:
    the table's, else the artifact's own estimate)."""
    costs = (evidence.costs if evidence.cost_unit == "usd"
             else router.costs(router.texts(evidence.prompts)))
    return router.policy.route(probs, costs, scores=score)


def _pair_prior(evidence: outcomes.Outcomes) -> tuple[str, np.ndarray] | None:
    """The prior as the pair report takes it: (name, P(cloud needed) scores)."""
    if evidence.prior_score is None or evidence.prior_name is None:
        return None
    return evidence.prior_name, evidence.prior_score


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


def training_overlap(router_dir: Path, ids: np.ndarray) -> list[str]:
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
    overlap = int(np.isin(np.asarray(ids).astype(str), list(seen)).sum())
    if not overlap:
        return []
    return [f"{overlap} of the {len(ids)} evaluated prompts are in the train/val split of the "
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


def write_scores(path: Path, evidence: outcomes.Outcomes, probs: np.ndarray,
                 score: np.ndarray) -> Path:
    """The per-prompt scores used, with prompt ids and outcomes, so anyone can recompute the
    figures: id, score (P(cloud needed)) and, for a pair's truth, quality_edge / quality_cloud;
    for K models also p_<model> and quality_<model>."""
    pd = require("pandas", "train")
    columns: dict[str, Any] = {"id": evidence.ids, "score": score}
    if evidence.truth is not None:
        columns.update(quality_edge=evidence.quality[:, 0], quality_cloud=evidence.quality[:, 1])
    else:
        columns.update({f"p_{m}": probs[:, k] for k, m in enumerate(evidence.models)})
        columns.update({f"quality_{m}": evidence.quality[:, k]
                        for k, m in enumerate(evidence.models)})
    return tables.write(pd.DataFrame(columns), Path(path), (".csv", ".jsonl", ".parquet"))
