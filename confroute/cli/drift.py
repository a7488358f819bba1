"""confroute drift: how the traffic an artifact served has moved from its calibration: the
realised cloud share against the calibrated target over time (with a band), the score
distribution's shift from the calibration prompts (PSI, KS), feedback and retry rates, and the
estimated savings against always-cloud. Writes OUT/drift.json and OUT/drift.png."""

from __future__ import annotations

import json
from typing import Any

from confroute.config import build

HELP = "drift of served traffic from the router's calibration (report)"


def add_arguments(parser: Any) -> None:
    from confroute.traffic.drift import DriftSettings

    parser.add_argument("--config", action="config", help="YAML file of these settings")
    parser.add_argument("--db", required=True, help="SQLAlchemy URL of the decision log")
    parser.add_argument("--artifact", required=True,
                        help="the served artifact (its logged decisions are read)")
    parser.add_argument("--out", required=True, help="folder for drift.json and drift.png")
    parser.add_argument("--reference", type=str | None, default=None,
                        help="the calibration prompts (.txt, one per line, or .jsonl); default: "
                             "the first bucket of logged traffic")
    parser.add_argument("--bucket_s", type=float, default=3600.0,
                        help="seconds per point of the time series (> 0)")
    # window and min_decisions shape the service's in-memory /metrics numbers, not this report
    parser.add_class_arguments(DriftSettings, skip={"window", "min_decisions"})


def run(args: Any) -> int:
    from confroute.cli._prompts import iter_prompts, scored_texts
    from confroute.runtime import Router
    from confroute.traffic.drift import DriftSettings
    from confroute.traffic.report import report

    texts = None
    if args.reference:
        texts = scored_texts(iter_prompts([], args.reference), Router.load(args.artifact).turn)
    result = report(args.db, args.artifact, args.out, build(DriftSettings, args), args.bucket_s,
                    texts)
    target = result["target_cloud_share"]
    shift, reference = result["shift"], result["reference"]
    print(f"{result['requests']} requests: cloud share {result['cloud_share']:.1%} (target "
          f"{'unknown' if target is None else f'{target:.1%}'} +- {result['band']:.1%}; "
          f"{result['out_of_band_buckets']} of {len(result['buckets'])} buckets outside); score "
          f"shift PSI {shift['psi']:.3f}, KS {shift['ks']:.3f} against {reference['scores']} "
          f"scores of {reference['source']}; savings vs always-cloud "
          f"{result['savings_usd'] if result['savings_usd'] is not None else 'unknown'} USD")
    print(json.dumps({k: result[k] for k in ("cloud_share", "target_cloud_share", "shift",
                                             "savings_usd", "feedback_rate")}))
    return 0
