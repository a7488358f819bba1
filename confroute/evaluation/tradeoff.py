"""The quality-vs-cost part of `confroute evaluate`, for any K >= 2 (a pair is K = 2).

The policy's curve (`confroute.evaluation.ladder`) is traced for the router's P(model k
adequate) [n, K] and, on the same prompts, for the prior, the oracle and random (mean over
seeds), beside every model alone; pooled and within each source. Reported per curve: the area
(0 = cheapest model alone, 1 = best alone; APGR for a pair on the cloud-calls axis) and the cost
at which `quality_share` of the best model's quality is reached, with bootstrap CIs of the
router's figures and of its paired area gap to the prior; and the artifact's own operating point
(the model its policy chooses for each prompt).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from confroute.errors import DataError
from confroute.evaluation import ladder
from confroute.evaluation.outcomes import Outcomes


def report(outcomes: Outcomes, probs: np.ndarray, rule: str, share: float, bootstrap: int,
           seed: int, random_seeds: int) -> dict[str, Any]:
    """Curves, areas and costs of the router and its references (see the module docstring).

    Raises DataError when the area is undefined on the pooled prompts (the cheapest model as
    good as the best, or no cost span)."""
    quality, costs = outcomes.quality, outcomes.costs
    references = {"oracle": ladder.oracle_probs(quality)}
    if outcomes.prior is not None:
        references = {"prior": outcomes.prior, **references}
    scored: dict[str, Any] = {}
    for name, p in {"router": probs, **references}.items():
        c = ladder.curve(p, quality, costs, policy=rule)
        scored[name] = {**ladder.summary(c, share),
                        "curve": {"cost": c.cost.tolist(), "quality": c.quality.tolist()}}
    if bootstrap:
        scored["router"]["ci"] = ladder.bootstrap(probs, quality, costs, bootstrap, seed, share,
                                                  reference=outcomes.prior, policy=rule)
    scored["random"] = ladder.random_reference(quality, costs, random_seeds, share, rule)
    out: dict[str, Any] = {"models": outcomes.models, "policy": rule, "quality_share": share,
                           "cost_unit": outcomes.cost_unit,
                           "model_quality": quality.mean(0).tolist(),
                           "model_cost": costs.mean(0).tolist(), "curves": scored}
    by_source = _by_source(outcomes, {"router": probs, **references}, rule, share)
    if by_source:
        out["curves_by_source"] = by_source
    return out


def _by_source(outcomes: Outcomes, scorers: dict[str, np.ndarray], rule: str, share: float
               ) -> dict[str, Any] | None:
    """Area and cost at the share within each source, for the router and its references."""
    if outcomes.groups is None or len(set(outcomes.groups)) < 2:
        return None
    out: dict[str, Any] = {}
    for group in sorted(set(np.asarray(outcomes.groups).astype(str))):
        rows = np.asarray(outcomes.groups).astype(str) == group
        q, c = outcomes.quality[rows], outcomes.costs[rows]
        entry: dict[str, Any] = {"prompts": int(rows.sum()), "model_quality": q.mean(0).tolist()}
        try:
            entry["curves"] = {name: ladder.summary(ladder.curve(p[rows], q, c, policy=rule),
                                                    share) for name, p in scorers.items()}
        except DataError as exc:  # e.g. every model equally good on this source
            entry["curves"], entry["note"] = None, str(exc)
        out[group] = entry
    return out


def operating_point(outcomes: Outcomes, chosen: np.ndarray, policy: Any) -> dict[str, Any]:
    """Quality, cost and each model's share where the artifact's `policy` sends the prompts
    (`chosen` [n] model indices)."""
    quality, costs = outcomes.quality, outcomes.costs
    at = np.arange(len(chosen))
    # the cost is a share of the best model's; on the cloud-calls axis, of the cloud's
    best = -1 if outcomes.cost_unit == "calls" else int(np.argmax(quality.mean(0)))
    return {"rule": policy.rule, "lambda_per_usd": policy.lambda_per_usd,
            "thresholds": dict(zip(policy.models, policy.thresholds.tolist(), strict=True)),
            "mean_quality": float(quality[at, chosen].mean()),
            "mean_cost": float(costs[at, chosen].mean()),
            "cost_share_of_best": float(costs[at, chosen].mean() / costs[:, best].mean()),
            "shares": {m: float(np.mean(chosen == k)) for k, m in enumerate(policy.models)}}


def markdown(result: dict[str, Any]) -> str:
    """The quality-vs-cost tables: each model alone, then area and cost at the quality share of
    the router (with its CIs) and its references, its gap to the prior, per source, and the
    artifact's operating point."""
    share = f"{100 * result['quality_share']:.0f}%"
    unit = "cloud calls" if result["cost_unit"] == "calls" else "USD per prompt"
    lines = [f"## {' -> '.join(result['models'])}", "",
             f"Policy {result['policy']}. Area: 0 = cheapest model alone, 1 = best alone. "
             f"Cost at {share}: the cost, as a share of the best model's, at which {share} of "
             "its quality is reached.", "",
             f"| model alone | quality | cost, {unit} |", "|---|---|---|"]
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
    for group, entry in (result.get("curves_by_source") or {}).items():
        if entry["curves"]:
            lines.append(f"\n{group} ({entry['prompts']} prompts): " + "; ".join(
                f"{name} area {res['area']:.3f}" for name, res in entry["curves"].items()))
    point = result.get("operating_point")
    if point:
        lines += ["", f"The artifact's {point['rule']} rule as calibrated: quality "
                      f"{point['mean_quality']:.3f} at "
                      f"{100 * point['cost_share_of_best']:.1f}% of the best model's cost; "
                      "shares " + ", ".join(f"{m} {100 * s:.1f}%"
                                            for m, s in point["shares"].items())]
    return "\n".join(lines) + "\n"


def _share(value: float | None) -> str:
    return "never" if value is None or not np.isfinite(value) else f"{100 * value:.1f}%"


def plot(result: dict[str, Any], path: Path) -> Path:
    """Quality vs cost (share of the best model's) for every scorer and model alone."""
    from confroute.errors import require
    from confroute.files import replacing

    matplotlib = require("matplotlib", "train")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    calls = result["cost_unit"] == "calls"
    best_cost = result["model_cost"][-1 if calls else int(np.argmax(result["model_quality"]))]
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
    ax.set_xlabel("prompts sent to the cloud model (%)" if calls
                  else "cost (% of the best model's)")
    ax.set_ylabel("mean quality")
    ax.set_title(" -> ".join(result["models"]), fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    with replacing(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return path
