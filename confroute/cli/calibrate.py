"""confroute calibrate: score sample prompts and print the threshold that routes
--cloud_fraction of them to the cloud. With an artifact for K models: the thresholds (one per
model) whose mean cost per prompt is at most --target_cost USD, or that send --shares of the
prompts to each model. It holds only for traffic like these prompts."""

from __future__ import annotations

import json
import sys
from typing import Any, Literal

from confroute.cli._prompts import iter_prompts, scored_texts

HELP = "find the threshold for a target cloud-call fraction"


def add_arguments(parser: Any) -> None:
    parser.add_argument("artifact", help="a directory written by `confroute export`")
    parser.add_argument("--file", type=str | None,
                        help="prompts (.txt one per line, or .jsonl); else stdin")
    parser.add_argument("--cloud_fraction", type=float | None,
                        help="two models: target share of prompts sent to the cloud, in [0, 1]")
    parser.add_argument("--target_cost", type=float | None,
                        help="K models: target mean cost per prompt, USD")
    parser.add_argument("--rule", type=Literal["threshold", "utility"] | None,
                        help="K models: the routing rule to calibrate and store (default: the "
                        "artifact's): threshold (cheapest model predicted adequate) or utility "
                        "(highest P - lambda x cost)")
    parser.add_argument("--shares", type=list[float] | None,
                        help="K models: target share of prompts per model, cheapest first, "
                        "summing to 1, e.g. '[0.5, 0.3, 0.2]'")
    parser.add_argument("--write", action="store_true",
                        help="store the threshold as the artifact's default")


def run(args: Any) -> int:
    from confroute.artifact import set_threshold
    from confroute.errors import ConfigError
    from confroute.runtime import LadderRouter, Router, check_fraction

    router = Router.load(args.artifact)
    if isinstance(router, LadderRouter):
        return _ladder(args, router)
    if args.cloud_fraction is None:
        raise ConfigError(f"{args.artifact} routes between two models: give --cloud_fraction F "
                          "(--target_cost and --shares are for artifacts with K models)")
    check_fraction(args.cloud_fraction)
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


def _ladder(args: Any, router: Any) -> int:
    """Calibrate a K-model artifact to a target cost (either rule) or target shares
    (threshold rule)."""
    import warnings

    import numpy as np

    from confroute.artifact import set_ladder_policy
    from confroute.errors import ConfigError

    if (args.target_cost is None) == (args.shares is None) or args.cloud_fraction is not None:
        raise ConfigError(f"{args.artifact} routes among {', '.join(router.models)}: give "
                          "exactly one of --target_cost USD or --shares '[...]'")
    if args.target_cost is not None and not (np.isfinite(args.target_cost)
                                             and args.target_cost >= 0):
        raise ConfigError(f"--target_cost must be a number >= 0 (USD per prompt); found "
                          f"{args.target_cost}")
    rule = args.rule or router.policy.rule
    if rule == "utility" and args.shares is not None:
        raise ConfigError("--shares sets thresholds (the threshold rule); the utility rule is "
                          "calibrated to a cost: give --target_cost USD, or --rule threshold")
    prompts = scored_texts(iter_prompts([], args.file), router.turn)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = router.calibrate_policy(prompts, rule, args.target_cost, args.shares)
    for warning in caught:
        print(f"confroute calibrate: warning: {warning.message}", file=sys.stderr)
    policy = result.policy
    target: dict[str, Any] = ({"target_cost": args.target_cost} if args.shares is None else
                              {"shares": dict(zip(router.models, args.shares, strict=False))})
    achieved = {"mean_cost": result.mean_cost, "shares": result.shares}
    settings = ({"lambda_per_usd": policy.lambda_per_usd} if rule == "utility" else
                {"thresholds": dict(zip(router.models, policy.thresholds.tolist(), strict=True))})
    if args.write:
        set_ladder_policy(args.artifact, rule, policy.thresholds.tolist(),
                          policy.lambda_per_usd, source="calibrate", **target,
                          prompts=result.prompts, achieved=achieved)
    print(json.dumps({"rule": rule, **settings, **target, "achieved": achieved,
                      "prompts": result.prompts, "written": bool(args.write)}))
    return 0
