"""confroute export: turn a run directory into an ONNX router artifact."""

from __future__ import annotations

import argparse
import json
from typing import Any

from confroute.config import ExportConfig


def add_parser(sub: Any) -> None:
    p = sub.add_parser("export", help="export a run to an ONNX router artifact (fp32 + int8)",
                       description="Export RUN_DIR's best model to ONNX, check it against torch "
                       "on real prompts, quantise to int8 and check the drift on the validation "
                       "split, and write a self-describing artifact directory.")
    p.add_argument("run_dir", help="a directory written by `confroute train`")
    p.add_argument("--out", required=True, help="artifact directory to write")
    p.add_argument("--no-int8", action="store_true", help="skip the int8 model")
    p.add_argument("--threshold", type=float, help="default routing threshold in [0, 1]")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from confroute.export import export

    manifest = export(args.run_dir, args.out,
                      ExportConfig(int8=not args.no_int8, threshold=args.threshold))
    checks = manifest["metrics"]["export"]
    print(json.dumps({"artifact": args.out, "default_variant": manifest["onnx"]["default_variant"],
                      "threshold": manifest["threshold"], "validation": manifest["metrics"]["val"],
                      **checks}, indent=2))
    return 0
