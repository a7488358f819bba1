"""confroute route: score prompts with an artifact and print one JSON line per prompt: index,
score (P(cloud needed)), route ('edge' or 'cloud') and threshold. With an artifact for K models:
index, the chosen model, the reason, and each model's P(adequate) and threshold."""

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
                        help="override the artifact's default threshold (two models)")
    parser.add_argument("--thresholds", type=dict[str, float] | None,
                        help="K models: override some models' thresholds, e.g. "
                        "'{small: 0.7, medium: 0.5}'")
    parser.add_argument("--lambda_per_usd", type=float | None,
                        help="K models, utility rule: override lambda (adequacy per USD)")
    parser.add_argument("--model", type=str | None,
                        help="K models: force this model (the decision still lists the "
                        "probabilities)")
    parser.add_argument("--variant", type=Variant, default="auto",
                        help="artifact model variant (auto: the manifest's default)")


def run(args: Any) -> int:
    from confroute.errors import InputError
    from confroute.runtime import LadderRouter, Router, check_threshold

    threshold = None if args.threshold is None else check_threshold(args.threshold)
    router = Router.load(args.artifact, variant=args.variant)
    ladder = isinstance(router, LadderRouter)
    if isinstance(router, LadderRouter) and threshold is not None:
        hint = ("--lambda_per_usd L" if router.policy.rule == "utility"
                else "--thresholds '{model: t}'")
        raise InputError(f"{args.artifact} routes among {len(router.models)} models "
                         f"({', '.join(router.models)}) by the {router.policy.rule} rule: use "
                         f"{hint}")
    if not ladder and (args.thresholds or args.model or args.lambda_per_usd is not None):
        raise InputError(f"{args.artifact} routes between two models: use --threshold T "
                         "(--thresholds, --lambda_per_usd and --model are for artifacts with K "
                         "models)")
    index = 0
    for chunk in chunks(iter_prompts(args.prompts, args.file)):
        texts = scored_texts(chunk, router.turn)
        decisions = (router.decide_batch(texts, args.thresholds, args.model,
                                         args.lambda_per_usd)
                     if isinstance(router, LadderRouter) else router.route_batch(texts, threshold))
        for decision in decisions:
            print(json.dumps({"index": index, **decision.to_dict()}), flush=False)
            index += 1
    return 0
