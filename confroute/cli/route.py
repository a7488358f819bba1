"""confroute route: route prompts with an artifact and print one JSON line per prompt: its
index, then for a pair (two models) the two-model fields score (P(cloud needed)), route ('edge'
or 'cloud') and threshold, then for any artifact the chosen model, its position (0 =
cheapest), the reason, each model's P(adequate) and the rule's thresholds (or lambda)."""

from __future__ import annotations

import json
from typing import Any

from confroute.cli._prompts import chunks, iter_prompts, scored_texts

HELP = "route prompts to a model (edge or cloud, or one of K) with an artifact"


def add_arguments(parser: Any) -> None:
    from confroute.runtime import Variant

    parser.add_argument("artifact", help="a directory written by `confroute export`")
    parser.add_argument("prompts", nargs="*", help="prompts; else --file, else stdin")
    parser.add_argument("--file", type=str | None, help="a .txt (one prompt per line) or .jsonl "
                        "file of prompts")
    parser.add_argument("--threshold", type=float | None,
                        help="a pair, threshold rule: override the artifact's threshold (P(cloud "
                        "needed) >= it goes to the cloud)")
    parser.add_argument("--thresholds", type=dict[str, float] | None,
                        help="threshold rule: override some models' thresholds (P(adequate) >= "
                        "it clears), e.g. '{small: 0.7, medium: 0.5}'")
    parser.add_argument("--lambda_per_usd", type=float | None,
                        help="utility rule: override lambda (adequacy per USD)")
    parser.add_argument("--model", type=str | None,
                        help="force this model (the decision still lists the probabilities)")
    parser.add_argument("--variant", type=Variant, default="auto",
                        help="artifact model variant (auto: the manifest's default)")


def run(args: Any) -> int:
    from confroute.errors import InputError
    from confroute.runtime import Router, check_threshold

    threshold = None if args.threshold is None else check_threshold(args.threshold)
    router = Router.load(args.artifact, variant=args.variant)
    rule = router.policy.rule
    if threshold is not None and (len(router.models) != 2 or rule == "utility"):
        hint = "--lambda_per_usd L" if rule == "utility" else "--thresholds '{model: t}'"
        raise InputError(f"{args.artifact} routes among {len(router.models)} models "
                         f"({', '.join(router.models)}) by the {rule} rule: use {hint}")
    index = 0
    for chunk in chunks(iter_prompts(args.prompts, args.file)):
        texts = scored_texts(chunk, router.turn)
        for decision in router.decide_batch(texts, threshold, args.thresholds, args.model,
                                            args.lambda_per_usd):
            print(json.dumps({"index": index, **decision.to_dict()}), flush=False)
            index += 1
    return 0
