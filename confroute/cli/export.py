"""confroute export: export RUN_DIR's best model to ONNX, check it against torch on real
prompts, quantise to int8 and check the drift on the validation split, and write a
self-describing artifact directory (its `routing`: the models, how the heads map to them, the
rule and its parameters). Every ExportConfig setting is a flag (--int8 false, --threshold 0.4,
--prices prices.yaml, ...)."""

from __future__ import annotations

import json
from typing import Any

from confroute.config import ExportConfig, build

HELP = "export a run to an ONNX router artifact (fp32 + int8)"


def add_arguments(parser: Any) -> None:
    parser.add_argument("--config", action="config", help="YAML file of export settings")
    parser.add_argument("run_dir", help="a directory written by `confroute train`")
    parser.add_argument("--out", required=True, help="artifact directory to write")
    parser.add_class_arguments(ExportConfig)


def run(args: Any) -> int:
    from confroute.export import export

    manifest = export(args.run_dir, args.out, build(ExportConfig, args))
    checks = manifest["metrics"]["export"]
    print(json.dumps({"artifact": args.out, "default_variant": manifest["onnx"]["default_variant"],
                      "routing": manifest["routing"], "validation": manifest["metrics"]["val"],
                      **checks}, indent=2))
    return 0
