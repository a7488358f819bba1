"""confroute logs: the decision log of `confroute serve`. `logs export --db URL --out TABLE`
writes its labelled table (logged outcomes joined to logged text, one rating column per model,
split by time) for `confroute train --data.source TABLE` or any other tool; `confroute train
--data.source URL` reads the log the same way without the file."""

from __future__ import annotations

import json
from typing import Any

from confroute.config import build

HELP = "export the decision log's labelled table"
DB_HELP = ("SQLAlchemy URL of the decision log, e.g. sqlite:///confroute-decisions.db or "
           "postgresql://user@host/db")


def add_arguments(parser: Any) -> None:
    from jsonargparse import ArgumentParser

    from confroute.traffic.dataset import LogTableSettings

    export = ArgumentParser(prog="confroute logs export", exit_on_error=False,
                            description="Write the log's labelled table (.parquet/.jsonl/.csv).")
    export.add_argument("--config", action="config", help="YAML file of these settings")
    export.add_argument("--db", required=True, help=DB_HELP)
    export.add_argument("--out", required=True, help="table file to write (.parquet, .jsonl, "
                                                     ".csv; replaced atomically)")
    export.add_class_arguments(LogTableSettings)
    commands = parser.add_subcommands(dest="action")
    commands.add_subcommand("export", export, help="write the log's labelled table")


def run(args: Any) -> int:
    from confroute.traffic.dataset import LogTableSettings, export

    options = args[args.action]
    report = export(options.db, options.out, build(LogTableSettings, options))
    print(json.dumps(report, indent=2))
    return 0
