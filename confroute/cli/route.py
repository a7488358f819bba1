"""confroute route: score prompts with an artifact and print one JSON line per prompt: index,
score (P(cloud needed)), route ('edge' or 'cloud') and threshold."""

from __future__ import annotations

import json
from typing import Any

from confroute.cli._prompts import chunks, iter_prompts, scored_texts

HELP = "route prompts to edge or cloud with an artifact"


def add_arguments(parser: Any) -> None:
    from confroute.runtime import Variant

    parser.add_argument("artifact", help="a directory written by `confroute export`")
    parser.add_argument("prompts", nargs="*", help="prompts; else --file, else stdin")
    parser.add_argument("--file", type=str | None, help="a .txt (one prompt per line) or .jsonl "
                        "file of prompts")
    parser.add_argument("--threshold", type=float | None,
                        help="override the artifact's default threshold")
    parser.add_argument("--variant", type=Variant, default="auto",
                        help="artifact model variant (auto: the manifest's default)")


def run(args: Any) -> int:
    from confroute.runtime import Router, check_threshold

    threshold = None if args.threshold is None else check_threshold(args.threshold)
    router = Router.load(args.artifact, variant=args.variant)
    index = 0
    for chunk in chunks(iter_prompts(args.prompts, args.file)):
        for decision in router.route_batch(scored_texts(chunk, router.turn), threshold):
            print(json.dumps({"index": index, **decision.to_dict()}), flush=False)
            index += 1
    return 0
