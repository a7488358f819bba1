"""confroute evaluate-ladder: score a ratings table's test prompts with an artifact for K models
and write report.json, report.md and curve.png: the quality-vs-cost curve of the policy, its
normalised area and the cost at 95% of the best model's quality, with bootstrap CIs, against a
per-category prior, random, the oracle and every model alone."""

from __future__ import annotations

from typing import Any

from confroute.config import build

HELP = "quality vs cost among K models (area, cost at 95%) on real outcomes"


def add_arguments(parser: Any) -> None:
    from confroute.evaluation.ladder_run import LadderEvaluateRequest

    parser.add_argument("--config", action="config", help="YAML file of these settings")
    parser.add_class_arguments(LadderEvaluateRequest)


def run(args: Any) -> int:
    from confroute.evaluation.ladder_run import LadderEvaluateRequest, evaluate_ladder

    request = build(LadderEvaluateRequest, args)
    report = evaluate_ladder(request)
    curves, point = report["curves"], report["operating_point"]
    share = f"{100 * request.quality_share:.0f}%"

    def cost(value: float) -> str:
        return "never" if value != value else f"{100 * value:.1f}%"

    print(f"{' -> '.join(report['models'])} on {report['prompts']} prompts: " + "; ".join(
        f"{name} area {res['area']:.3f}, cost at {share} {cost(res['cost_at_95'])}"
        for name, res in curves.items()))
    gap = curves["router"].get("ci", {}).get("area_minus_reference")
    if gap:
        print(f"router area - prior area, 95% CI [{gap['low']:+.3f}, {gap['high']:+.3f}]")
    print(f"the artifact's {point['rule']} rule as calibrated: quality "
          f"{point['mean_quality']:.3f} at "
          f"{100 * point['cost_share_of_best']:.1f}% of the best model's cost")
    print(f"wrote {request.out / 'report.json'}, report.md, curve.png")
    return 0
