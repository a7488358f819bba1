"""`confroute evaluate-ladder`: a router for K models on a ratings table with real outcomes.

The artifact scores the table's evaluation rows (`split`, default `test`); the policy's curve
(confroute.evaluation.ladder) is traced for the router, a per-category prior fitted on the
table's `train` rows (the simplest prior: P(model k adequate | category)), random, the oracle and
every model alone; with the area (0 = cheapest alone, 1 = best alone), the cost at which
`quality_share` of the best model's quality is reached, bootstrap CIs, the paired area gap to the
prior, and the artifact's own operating point (its calibrated thresholds). Writes report.json,
report.md and curve.png (atomically) into `out`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

import numpy as np

from confroute.dataset.ratings import Ratings, read_ratings
from confroute.errors import ConfigError, DataError
from confroute.evaluation import ladder
from confroute.evaluation.priors import GroupPrior
from confroute.files import write_text


@dataclasses.dataclass
class LadderEvaluateRequest:
    """What `confroute evaluate-ladder` evaluates, on which rows, and how."""

    router: Path
    """A K-model artifact written by `confroute export` (its manifest has a `ladder`)."""
    ratings: Path
    """A ratings table (.parquet/.jsonl/.csv): `prompt`, one column of real outcomes per model
    of the artifact (named as the model), optional `id`, `category`, `split`, `tokens_in`,
    `tokens_out` (see confroute/dataset/ratings.py)."""
    out: Path
    """Folder for report.json, report.md and curve.png (created)."""
    split: str = "test"
    """Evaluate the rows of this split; the prior is fitted on the table's `train` rows."""
    policy: Literal["threshold", "utility"] | None = None
    """The swept rule: `threshold` (the cheapest model predicted adequate, a shared threshold
    swept) or `utility` (argmax P - lambda x cost, lambda swept); None: the artifact's rule."""
    quality_share: float = ladder.DEFAULT_QUALITY_SHARE
    """Report the cost at which this share of the best model's mean quality is reached."""
    bootstrap: int = 1000
    """Bootstrap resamples of the evaluated prompts for the CIs (0: none)."""
    seed: int = 0
    random_seeds: int = 20

    def __post_init__(self) -> None:
        if not 0 < self.quality_share <= 1:
            raise ConfigError(f"quality_share must be in (0, 1]; found {self.quality_share}")
        if self.bootstrap < 0 or self.random_seeds < 1:
            raise ConfigError("bootstrap must be >= 0 and random_seeds >= 1")


def evaluate_ladder(request: LadderEvaluateRequest) -> dict[str, Any]:
    """Score, sweep and compare (see the module docstring); returns the report written.

    Raises ArtifactError (not a K-model artifact), DataError (a model column missing from the
    table, NaN outcomes, no rows in the split, no training rows for the prior), InputError (a
    bad prompt).
    """
    from confroute.runtime import Router

    router = Router.load(request.router)
    if router.prices is None:
        raise DataError(f"{request.router} routes between two models; evaluate it with "
                        "`confroute evaluate`")
    prices = {m: dataclasses.asdict(p) for m, p in zip(router.models, router.prices,
                                                       strict=True)}
    if request.out.exists() and not request.out.is_dir():
        raise DataError(f"--out {request.out} is a file; give a folder for the report")
    table = read_ratings(request.ratings, prices, router.models)
    table.ratings = _quality(table, router.manifest)
    if table.models != router.models:
        raise DataError(f"the table's price order {table.models} differs from the artifact's "
                        f"ladder {router.models}")
    rule = request.policy or router.policy.rule
    rows, train = _rows(table, request.split)
    test = table.subset(rows)
    probs = router.adequacy(test.prompts)
    quality, costs = test.ratings, test.costs()
    references = {"prior": _prior(table, train, rows), "oracle": ladder.oracle_probs(quality)}
    result: dict[str, Any] = {
        "router": str(request.router), "ratings": str(request.ratings), "split": request.split,
        "prompts": len(rows), "models": router.models, "policy": rule,
        "quality_share": request.quality_share, "prices_per_mtok": prices,
        "tokens": table.info.get("tokens"),
        "model_quality": quality.mean(0).tolist(), "model_cost": costs.mean(0).tolist()}
    curves = {"router": probs, **references}
    scored: dict[str, Any] = {}
    for name, p in curves.items():
        c = ladder.curve(p, quality, costs, policy=rule)
        scored[name] = {**ladder.summary(c, request.quality_share),
                        "curve": {"cost": c.cost.tolist(), "quality": c.quality.tolist()}}
    if request.bootstrap:
        scored["router"]["ci"] = ladder.bootstrap(
            probs, quality, costs, request.bootstrap, request.seed, request.quality_share,
            reference=references["prior"], policy=rule)
    scored["random"] = ladder.random_reference(quality, costs, request.random_seeds,
                                               request.quality_share, rule)
    result["curves"] = scored
    chosen = router.policy.route(probs, costs)
    at = np.arange(len(rows))
    result["operating_point"] = {
        "rule": router.policy.rule, "lambda_per_usd": router.policy.lambda_per_usd,
        "thresholds": dict(zip(router.models, router.policy.thresholds.tolist(), strict=True)),
        "mean_quality": float(quality[at, chosen].mean()),
        "mean_cost_usd": float(costs[at, chosen].mean()),
        "cost_share_of_best": float(costs[at, chosen].mean() / costs[:, _best(quality)].mean()),
        "shares": {m: float(np.mean(chosen == k)) for k, m in enumerate(router.models)}}
    request.out.mkdir(parents=True, exist_ok=True)
    from confroute.evaluation.report import write_json

    write_json(result, request.out / "report.json")
    write_text(request.out / "report.md", markdown(result))
    plot(result, request.out / "curve.png")
    return result


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


def _quality(table: Ratings, manifest: dict[str, Any]) -> np.ndarray:
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


def _best(quality: np.ndarray) -> int:
    return int(np.argmax(quality.mean(0)))


def markdown(result: dict[str, Any]) -> str:
    """The report as a Markdown table: area and cost at the quality share, router and
    references, with the router's CIs and its gap to the prior."""
    share = f"{100 * result['quality_share']:.0f}%"
    lines = [f"# {' -> '.join(result['models'])}", "",
             f"{result['prompts']} prompts of {result['ratings']} (split {result['split']}); "
             f"policy {result['policy']}. Area: 0 = cheapest model alone, 1 = best alone. "
             f"Cost at {share}: the cost, as a share of the best model's, at which {share} of "
             "its quality is reached.", "",
             "| model alone | quality | cost, USD per prompt |", "|---|---|---|"]
    for m, q, c in zip(result["models"], result["model_quality"], result["model_cost"],
                       strict=True):
        lines.append(f"| {m} | {q:.3f} | {c:.3g} |")
    lines += ["", f"| scorer | area | cost at {share} |", "|---|---|---|"]
    for name, res in result["curves"].items():
        ci = res.get("ci", {})
        area = f"{res['area']:.3f}" + (f" [{ci['area']['low']:.3f}, {ci['area']['high']:.3f}]"
                                       if "area" in ci else "")
        lines.append(f"| {name} | {area} | {_share(res['cost_at_95'])} |")
    gap = result["curves"]["router"].get("ci", {}).get("area_minus_reference")
    if gap:
        lines += ["", f"router area - prior area: [{gap['low']:+.3f}, {gap['high']:+.3f}] "
                      "(95% paired bootstrap CI)"]
    point = result["operating_point"]
    lines += ["", f"The artifact's {point['rule']} rule as calibrated: quality "
                  f"{point['mean_quality']:.3f} at "
                  f"{100 * point['cost_share_of_best']:.1f}% of the best model's cost; shares "
              + ", ".join(f"{m} {100 * s:.1f}%" for m, s in point["shares"].items()), ""]
    return "\n".join(lines)


def _share(value: float) -> str:
    return "never" if value is None or not np.isfinite(value) else f"{100 * value:.1f}%"


def plot(result: dict[str, Any], path: Path) -> Path:
    """Quality vs cost (share of the best model's) for every scorer and model alone."""
    from confroute.errors import require
    from confroute.files import replacing

    matplotlib = require("matplotlib", "train")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    best_cost = result["model_cost"][int(np.argmax(result["model_quality"]))]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, res in result["curves"].items():
        if "curve" in res:
            ax.plot(np.array(res["curve"]["cost"]) / best_cost * 100, res["curve"]["quality"],
                    "-" if name == "router" else "--", label=f"{name} (area {res['area']:.3f})")
    for model, q, c in zip(result["models"], result["model_quality"], result["model_cost"],
                           strict=True):
        ax.plot(c / best_cost * 100, q, "o", label=f"always {model}")
    ax.axhline(result["quality_share"] * max(result["model_quality"]), color="grey",
               linewidth=0.8, linestyle="-.", label=f"{result['quality_share']:.0%} of the best")
    ax.set_xlabel("cost (% of the best model's)")
    ax.set_ylabel("mean quality")
    ax.set_title(" -> ".join(result["models"]), fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    with replacing(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return path
