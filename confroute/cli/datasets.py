"""confroute datasets: list the bundled datasets, or print one's card."""

from __future__ import annotations

from typing import Any

from confroute.dataset.builtin import BUILTIN, card
from confroute.errors import DataError

HELP = "list bundled datasets or show a dataset card"


def add_arguments(parser: Any) -> None:
    parser.add_argument("name", nargs="?", help="show this dataset's card")


def run(args: Any) -> int:
    if args.name is None:
        for name in BUILTIN:
            first = card(name).splitlines()[0].lstrip("# ")
            print(f"{name}\t{first}")
        return 0
    if args.name not in BUILTIN:
        raise DataError(f"no bundled dataset '{args.name}'; bundled: {', '.join(BUILTIN)}")
    print(card(args.name))
    return 0
