"""`confroute evaluate`: routing quality vs cloud calls and cost of a router on real outcomes."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from confroute.config import load_yaml


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="quality vs cloud calls (APGR, CPT, cost) on real outcomes",
        description="Score a ground truth's prompts with a router artifact (or read scores from "
                    "a file) and write report.json, report.md and curve.png: the quality-vs-"
                    "cloud-fraction curve, APGR, CPT(20/50/80%) with bootstrap CIs and USD cost.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--router", type=Path, metavar="DIR", help="router artifact directory")
    source.add_argument("--scores", type=Path, metavar="FILE",
                        help="scores file (.csv/.jsonl/.parquet) with columns id, score")
    parser.add_argument("--truth", required=True, metavar="NAME_OR_FILE",
                        help="mt-bench, gsm8k, mmlu (RouteLLM outcomes) or a labelled "
                             "dataset[:split] with prompt, rating_edge, rating_cloud")
    parser.add_argument("--routellm-dir", type=Path, metavar="DIR",
                        help="RouteLLM's routellm/ folder (default: $CONFROUTE_ROUTELLM_DIR)")
    parser.add_argument("--out", type=Path, default=Path("evaluation"), metavar="DIR",
                        help="output folder (default: ./evaluation)")
    parser.add_argument("--save-scores", type=Path, metavar="FILE",
                        help="also write the per-prompt scores used, with prompt ids")
    parser.add_argument("--name", help="router name in the report (default: folder/file name)")
    parser.add_argument("--variant", default="auto", choices=("auto", "fp32", "int8"),
                        help="artifact model variant (default: the manifest's)")
    parser.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                        help="bootstrap resamples for the 95%% CIs; 0 = none (default 1000)")
    parser.add_argument("--sample", type=int, metavar="N",
                        help="evaluate a seeded random sample of N prompts, stratified by "
                             "source, for a quick look (default: every prompt)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap and sample")
    parser.add_argument("--cost", type=Path, metavar="YAML",
                        help="prices per million tokens: edge_input_per_mtok, "
                             "edge_output_per_mtok, cloud_input_per_mtok, cloud_output_per_mtok")
    parser.add_argument("--prior-folds", type=int, default=5, metavar="K",
                        help="folds of the cross-validated group prior (subject / category / "
                             "source) reported beside the router; 0 = none (default 5)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from confroute.evaluation.costs import CostConfig
    from confroute.evaluation.run import EvaluateRequest, evaluate

    request = EvaluateRequest(
        truth=args.truth, out_dir=args.out, router_dir=args.router, scores_file=args.scores,
        routellm_dir=args.routellm_dir, save_scores=args.save_scores, name=args.name,
        variant=args.variant, bootstrap=args.bootstrap, seed=args.seed, sample=args.sample,
        cost=load_yaml(CostConfig, args.cost) if args.cost else CostConfig(),
        prior_folds=args.prior_folds)
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
    print(f"wrote {args.out / 'report.json'}, report.md, curve.png")
    return 0
