"""confroute route: score prompts with an artifact and print one JSON object per prompt."""

from __future__ import annotations

import argparse
import json
from typing import Any

from confroute.cli._prompts import chunks, iter_prompts
from confroute.errors import InputError


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
    from confroute.runtime import Router

    router = Router.load(args.artifact, variant=args.variant)
    index = 0
    for chunk in chunks(iter_prompts(args.prompts, args.file)):
        try:
            decisions = router.route_batch([p for _, p in chunk], args.threshold)
        except InputError as exc:
            # Name the input line rather than the position inside this chunk.
            wheres = [w for w, p in chunk if not _scorable(router, p)]
            raise InputError(f"{wheres[0] if wheres else 'input'}: {exc}") from exc
        for decision in decisions:
            print(json.dumps({"index": index, **decision.to_dict()}), flush=False)
            index += 1
    return 0


def _scorable(router: Any, prompt: Any) -> bool:
    try:
        router.texts([prompt])
        return True
    except InputError:
        return False
