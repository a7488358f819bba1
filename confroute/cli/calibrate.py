"""confroute calibrate: the threshold that sends a target share of prompts to the cloud."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from confroute.cli._prompts import iter_prompts, scored_texts


def add_parser(sub: Any) -> None:
    p = sub.add_parser("calibrate", help="find the threshold for a target cloud-call fraction",
                       description="Score sample prompts and print the threshold that routes "
                       "--cloud-fraction of them to the cloud. It holds only for traffic like "
                       "these prompts.")
    p.add_argument("artifact", help="a directory written by `confroute export`")
    p.add_argument("--file", help="prompts (.txt one per line, or .jsonl); else stdin")
    p.add_argument("--cloud-fraction", type=float, required=True, help="target share in [0, 1]")
    p.add_argument("--write", action="store_true",
                   help="store the threshold as the artifact's default")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
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
