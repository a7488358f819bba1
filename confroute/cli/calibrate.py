"""confroute calibrate: score sample prompts and print the threshold that routes
--cloud_fraction of them to the cloud. It holds only for traffic like these prompts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from confroute.cli._prompts import iter_prompts

HELP = "find the threshold for a target cloud-call fraction"


def add_arguments(parser: Any) -> None:
    parser.add_argument("artifact", help="a directory written by `confroute export`")
    parser.add_argument("--file", type=str | None,
                        help="prompts (.txt one per line, or .jsonl); else stdin")
    parser.add_argument("--cloud_fraction", type=float, required=True,
                        help="target share of prompts sent to the cloud, in [0, 1]")
    parser.add_argument("--write", action="store_true",
                        help="store the threshold as the artifact's default")


def run(args: Any) -> int:
    from confroute.runtime import MANIFEST, Router

    router = Router.load(args.artifact)
    prompts = [p for _, p in iter_prompts([], args.file)]
    threshold = router.calibrate(prompts, args.cloud_fraction)
    result = {"threshold": threshold, "cloud_fraction": args.cloud_fraction,
              "prompts": len(prompts), "written": bool(args.write)}
    if args.write:
        path = Path(args.artifact) / MANIFEST
        manifest = router.manifest
        manifest["threshold"] = {"default": threshold, "source": "calibrate",
                                 "cloud_fraction": args.cloud_fraction, "prompts": len(prompts)}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
        tmp.replace(path)  # atomic: a crash never leaves a half-written manifest
    print(json.dumps(result))
    return 0
