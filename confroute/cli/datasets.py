"""confroute datasets: list the bundled datasets, or print one's card."""

from __future__ import annotations

import argparse
from typing import Any

from confroute.dataset.builtin import BUILTIN, card
from confroute.errors import DataError


def add_parser(sub: Any) -> None:
    p = sub.add_parser("datasets", help="list bundled datasets or show a dataset card")
    p.add_argument("name", nargs="?", help="show this dataset's card")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.name is None:
        for name in BUILTIN:
            first = card(name).splitlines()[0].lstrip("# ")
            print(f"{name}\t{first}")
        return 0
    if args.name not in BUILTIN:
        raise DataError(f"no bundled dataset '{args.name}'; bundled: {', '.join(BUILTIN)}")
    print(card(args.name))
    return 0
