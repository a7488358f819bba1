"""confroute gate: score a candidate artifact against the served one on recent held-out logged
traffic with outcomes (quality at the current cloud share with a paired bootstrap CI, each
router's cloud share at its calibrated thresholds, beside the prior, random and the oracle) and,
when the gain's CI is above the margin, point the served link at the candidate atomically.
Exit 0: promoted (or passed, with --promote false); 1: not promoted, with the reasons."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from confroute.config import build

HELP = "promote a candidate router only on a measured gain over the served one"


def add_arguments(parser: Any) -> None:
    from confroute.traffic.gate import GateSettings

    parser.add_argument("--config", action="config", help="YAML file of these settings")
    parser.add_argument("--candidate", required=True, help="the candidate artifact directory")
    parser.add_argument("--served", required=True,
                        help="the served artifact: the symbolic link `confroute serve` loads, "
                             "re-pointed atomically on promotion")
    parser.add_argument("--db", required=True, help="SQLAlchemy URL of the decision log")
    parser.add_argument("--out", type=str | None, default=None,
                        help="also write the report here (JSON, replaced atomically)")
    parser.add_class_arguments(GateSettings, sub_configs=True)


def run(args: Any) -> int:
    from confroute.files import write_json
    from confroute.traffic.gate import GateSettings, gate

    settings = build(GateSettings, args)
    report = gate(args.candidate, args.served, args.db, settings)
    if args.out:
        write_json(Path(args.out), report)
    quality = report["quality_at_current_share"]
    ci = report["gain_ci"]
    print(f"{report['rows']} held-out logged requests, current cloud share "
          f"{report['current_cloud_share']:.1%}; quality there: " + ", ".join(
              f"{name} {value:.4f}" for name, value in quality.items()))
    print(f"gain {report['gain']:+.4f}, {100 * ci['confidence']:.0f}% CI "
          f"[{ci['low']:+.4f}, {ci['high']:+.4f}]; as calibrated: " + ", ".join(
              f"{name} sends {r['cloud_share']:.1%} up, quality {r['quality']:.4f}"
              for name, r in report["as_calibrated"].items()))
    for message in report["log"]["messages"]:  # rows the log could not give, and how to get them
        print(f"note: {message}")
    if report["promoted"]:
        print(f"promoted: {args.served} -> {Path(args.candidate).resolve()} (was "
              f"{report['previous']}); reload the service (SIGHUP or the admin call)")
    elif report["reasons"]:
        print("not promoted: " + "; ".join(report["reasons"]))
    else:
        print("the gate passed (not promoted: --promote false)")
    print(json.dumps({k: report[k] for k in ("promoted", "gain", "gain_ci", "reasons")}))
    return 0 if not report["reasons"] else 1
