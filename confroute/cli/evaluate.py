"""confroute evaluate: score the prompts of real outcomes with a router artifact (or read scores
from a file) and write report.json, report.md and curve.png. Outcomes of two models (--truth)
or of K models (--ratings, a table with prices from the artifact) go through one evaluation:
the policy's quality-vs-cost curve, its area and the cost at 95% of the best model's quality,
beside the prior, random, the oracle and each model alone; for two models also APGR,
CPT(20/50/80%) with bootstrap CIs and USD cost. The flags are EvaluateRequest's fields; --cost
takes a YAML file of prices (or --cost.<key> flags)."""

from __future__ import annotations

from typing import Any

from confroute.config import build

HELP = "quality vs cost (APGR, CPT, area, cost at 95%) on real outcomes of 2 or K models"


def add_arguments(parser: Any) -> None:
    from confroute.evaluation.run import EvaluateRequest

    parser.add_argument("--config", action="config", help="YAML file of evaluate settings")
    parser.add_class_arguments(EvaluateRequest, sub_configs=True)
    parser.add_argument("--cascade", type=bool, default=False, help="the cascade instead: "
                        "edge-failure AUROC and quality vs cost, before and after the edge "
                        "answers (--truth: smollm2-uncertainty and/or broad-smollm2)")


def run(args: Any) -> int:
    from confroute.evaluation.run import EvaluateRequest, evaluate

    request = build(EvaluateRequest, args)
    if args.cascade:
        from confroute.evaluation.cascade import evaluate_request, markdown

        print(markdown(evaluate_request(request)))
        return 0
    report = evaluate(request)
    if "metrics" in report:
        _print_pair(report)
    _print_curves(report)
    for warning in report.get("warnings", []):
        print(f"warning: {warning}")
    print(f"wrote {request.out / 'report.json'}, report.md, curve.png")
    return 0


def _print_pair(report: dict[str, Any]) -> None:
    """The paper's two-model figures: APGR and CPT, and the prior's with the paired gap."""
    m = report["metrics"]
    cpts = ", ".join(f"CPT({k[4:]}%) {100 * v:.1f}%" for k, v in m.items() if k.startswith("cpt_"))
    of = report.get("ground_truth_info", {}).get("subset_of")
    count = f"a sample of {report['prompts']} of {of}" if of else report["prompts"]
    print(f"{report['router']} on {report['ground_truth']} ({count} prompts): "
          f"APGR {m['apgr']:.3f}, {cpts}")
    prior = report["references"].get("prior")
    if prior:
        gap = prior.get("router_minus_prior_apgr")
        vs = (f"; router - prior {gap['gap']:+.3f} [{gap['low']:+.3f}, {gap['high']:+.3f}]"
              if gap else "")
        print(f"{prior['name']}: APGR {prior['metrics']['apgr']:.3f}{vs}")


def _print_curves(report: dict[str, Any]) -> None:
    """The quality-vs-cost curve's figures for every scorer, and the artifact's own point."""
    share = f"{100 * report['quality_share']:.0f}%"

    def cost(value: float | None) -> str:
        return "never" if value is None or value != value else f"{100 * value:.1f}%"

    print(f"{' -> '.join(report['models'])} on {report['prompts']} prompts: " + "; ".join(
        f"{name} area {res['area']:.3f}, cost at {share} {cost(res['cost_at_95'])}"
        for name, res in report["curves"].items()))
    gap = report["curves"]["router"].get("ci", {}).get("area_minus_reference")
    if gap:
        print(f"router area - prior area, 95% CI [{gap['low']:+.3f}, {gap['high']:+.3f}]")
    point = report.get("operating_point")
    if point:
        print(f"the artifact's {point['rule']} rule as calibrated: quality "
              f"{point['mean_quality']:.3f} at {100 * point['cost_share_of_best']:.1f}% of "
              "the best model's cost")
