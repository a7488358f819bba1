"""confroute calibrate: score sample prompts and print the threshold that routes
--cloud_fraction of them to the cloud. It holds only for traffic like these prompts."""

from __future__ import annotations

import json
import sys
from typing import Any

from confroute.cli._prompts import iter_prompts, scored_texts

HELP = "find the threshold for a target cloud-call fraction"


def add_arguments(parser: Any) -> None:
    parser.add_argument("artifact", help="a directory written by `confroute export`")
    parser.add_argument("--file", type=str | None,
                        help="prompts (.txt one per line, or .jsonl); else stdin")
    parser.add_argument("--cloud_fraction", type=float, required=True,
                        help="target share of prompts sent to the cloud, in [0, 1]")
    parser.add_argument("--write", action="store_true",
                        help="store the threshold as the artifact's default")


def run(args: Any) -> int:
    from confroute.artifact import set_threshold
    from confroute.runtime import Router, check_fraction

    check_fraction(args.cloud_fraction)
    router = Router.load(args.artifact)
    prompts = scored_texts(iter_prompts([], args.file), router.turn)
    calibration = router.calibration(prompts, args.cloud_fraction)
    threshold = calibration.threshold
    for warning in calibration.warnings:
        print(f"confroute calibrate: warning: {warning}", file=sys.stderr)
    result = {"threshold": threshold, "cloud_fraction": args.cloud_fraction,
              "achieved_cloud_fraction": calibration.achieved, "prompts": len(prompts),
              "distinct_scores": calibration.distinct_scores, "written": bool(args.write)}
    if args.write:
        set_threshold(args.artifact, threshold, source="calibrate",
                      cloud_fraction=args.cloud_fraction, prompts=len(prompts),
                      achieved_cloud_fraction=calibration.achieved)
    print(json.dumps(result))
    return 0
