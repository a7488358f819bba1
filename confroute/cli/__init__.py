"""The `confroute` console script: one subcommand per module in this package.

Each command module defines `add_parser(subparsers)` and `run(args) -> int`; it parses, calls one
function of the Python API, and prints. Library errors become one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from confroute import __version__
from confroute.errors import ConfrouteError

# Subcommand modules, in the order --help lists them. A new command is a new module + a name here.
COMMANDS = ["train", "export", "route", "calibrate", "datasets", "evaluate", "serve", "tune",
            "label", "judge"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="confroute",
        description="Decide per prompt whether an edge or a cloud LLM should answer it.")
    parser.add_argument("--version", action="version", version=f"confroute {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"confroute.cli.{name}").add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except ConfrouteError as exc:
        print(f"confroute {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"confroute {args.command}: interrupted", file=sys.stderr)
        return 130
