"""confroute route: score prompts with an artifact and print one JSON object per prompt."""

from __future__ import annotations

import argparse
import json
from typing import Any

from confroute.cli._prompts import chunks, iter_prompts, scored_texts


def add_parser(sub: Any) -> None:
    p = sub.add_parser("route", help="route prompts to edge or cloud with an artifact",
                       description="Print one JSON line per prompt: index, score (P(cloud "
                       "needed)), route ('edge' or 'cloud') and threshold.")
    p.add_argument("artifact", help="a directory written by `confroute export`")
    p.add_argument("prompts", nargs="*", help="prompts; else --file, else stdin")
    p.add_argument("--file", help="a .txt (one prompt per line) or .jsonl file of prompts")
    p.add_argument("--threshold", type=float, help="override the artifact's default threshold")
    p.add_argument("--variant", choices=["auto", "fp32", "int8"], default="auto")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from confroute.runtime import Router, check_threshold

    threshold = None if args.threshold is None else check_threshold(args.threshold)
    router = Router.load(args.artifact, variant=args.variant)
    index = 0
    for chunk in chunks(iter_prompts(args.prompts, args.file)):
        for decision in router.route_batch(scored_texts(chunk, router.turn), threshold):
            print(json.dumps({"index": index, **decision.to_dict()}), flush=False)
            index += 1
    return 0
