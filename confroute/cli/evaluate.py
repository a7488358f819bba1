"""confroute evaluate: score a ground truth's prompts with a router artifact (or read scores
from a file) and write report.json, report.md and curve.png: the quality-vs-cloud-fraction
curve, APGR, CPT(20/50/80%) with bootstrap CIs and USD cost. The flags are EvaluateRequest's
fields; --cost takes a YAML file of prices (or --cost.<key> flags)."""

from __future__ import annotations

from typing import Any

from confroute.config import build

HELP = "quality vs cloud calls (APGR, CPT, cost) on real outcomes"


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
    for warning in report.get("warnings", []):
        print(f"warning: {warning}")
    print(f"wrote {request.out / 'report.json'}, report.md, curve.png")
    return 0
