"""confroute calibrate: score sample prompts and print the routing policy that sends a target
share of them to each model (--shares, cheapest first; for a pair --cloud_fraction F is shares
[1 - F, F]: the threshold that routes F of them to the cloud), or whose mean cost per prompt is
at most --target_cost USD (models with prices). --write stores it in the artifact. It holds
only for traffic like these prompts."""

from __future__ import annotations

import json
import sys
from typing import Any, Literal

from confroute.cli._prompts import iter_prompts, scored_texts

HELP = "calibrate the routing policy to a cloud fraction, shares per model or a cost"


def add_arguments(parser: Any) -> None:
    parser.add_argument("artifact", help="a directory written by `confroute export`")
    parser.add_argument("--file", type=str | None,
                        help="prompts (.txt one per line, or .jsonl); else stdin")
    parser.add_argument("--cloud_fraction", type=float | None,
                        help="a pair: target share of prompts sent to the cloud, in [0, 1]")
    parser.add_argument("--shares", type=list[float] | None,
                        help="target share of prompts per model, cheapest first, summing to 1, "
                        "e.g. '[0.5, 0.3, 0.2]' (threshold rule)")
    parser.add_argument("--target_cost", type=float | None,
                        help="target mean cost per prompt, USD (needs the models' prices)")
    parser.add_argument("--rule", type=Literal["threshold", "utility"] | None,
                        help="the routing rule to calibrate and store (default: the "
                        "artifact's): threshold (cheapest model predicted adequate) or utility "
                        "(highest P - lambda x cost)")
    parser.add_argument("--write", action="store_true",
                        help="store the calibrated policy in the artifact")


def run(args: Any) -> int:
    from confroute.artifact import set_policy
    from confroute.runtime import Router

    router = Router.load(args.artifact)
    _check_targets(args, router)
    prompts = scored_texts(iter_prompts([], args.file), router.turn)
    result = router.calibration(prompts, args.cloud_fraction, shares=args.shares,
                                target_cost=args.target_cost, rule=args.rule)
    for warning in result.warnings:
        print(f"confroute calibrate: warning: {warning}", file=sys.stderr)
    policy, pair = result.policy, len(router.models) == 2
    achieved: dict[str, Any] = {"shares": result.shares}
    if result.mean_cost is not None:
        achieved["mean_cost"] = result.mean_cost
    view: dict[str, Any] = {}
    if pair and policy.rule == "threshold":
        view["threshold"] = policy.threshold
    if args.cloud_fraction is not None:
        view["cloud_fraction"] = args.cloud_fraction
    if pair:
        view["achieved_cloud_fraction"] = result.achieved
    settings = ({"lambda_per_usd": policy.lambda_per_usd} if policy.rule == "utility" else
                {"thresholds": dict(zip(router.models, policy.thresholds.tolist(), strict=True))})
    if args.write:
        set_policy(args.artifact, policy, source="calibrate", **view, **result.requested,
                   prompts=result.prompts, achieved=achieved)
    print(json.dumps({**view, "rule": policy.rule, **settings, **result.requested,
                      "achieved": achieved, "prompts": result.prompts,
                      "distinct_scores": result.distinct_scores, "written": bool(args.write)}))
    return 0


def _check_targets(args: Any, router: Any) -> None:
    """One target, of the kind the artifact and the rule take; ConfigError naming the flags."""
    import math

    from confroute.errors import ConfigError
    from confroute.runtime import check_fraction

    given = [f for f in ("cloud_fraction", "shares", "target_cost") if getattr(args, f) is not None]
    if len(router.models) == 2:
        if len(given) != 1:
            raise ConfigError(f"{args.artifact} routes between two models "
                              f"({', '.join(router.models)}): give --cloud_fraction F, or one of "
                              "--shares '[...]' or --target_cost USD")
    elif given != ["shares"] and given != ["target_cost"]:
        raise ConfigError(f"{args.artifact} routes among {', '.join(router.models)}: give "
                          "exactly one of --target_cost USD or --shares '[...]'")
    if args.cloud_fraction is not None:
        check_fraction(args.cloud_fraction)
    if args.target_cost is not None and not (math.isfinite(args.target_cost)
                                             and args.target_cost >= 0):
        raise ConfigError(f"--target_cost must be a number >= 0 (USD per prompt); found "
                          f"{args.target_cost}")
    if (args.rule or router.policy.rule) == "utility" and args.target_cost is None:
        raise ConfigError("--shares sets thresholds (the threshold rule); the utility rule is "
                          "calibrated to a cost: give --target_cost USD, or --rule threshold")
