"""What the bench results files (irt, ladders, quality) share: the stamp of a run (when, by
which command, how long, on which CPU) at the top of the JSON and of the markdown, and the
head of each markdown table.

    stamp = report_io.stamp(args.command, seconds)  # {"date", "command", "seconds", "cpu"}
    reporting.write_json({**stamp, ...}, args.out / "irt.json")
    text = f"... Generated {report_io.generated(stamp)}. ..."
    lines = report_io.table_head("(a) Pairs: ...", ["edge -> cloud", "APGR", ...])
    lines.append(f"| ... |"); return report_io.text(lines)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from gemm import cpu_summary  # the CPU line every bench table prints


def stamp(command: str, seconds: float) -> dict[str, Any]:
    """{"date": now, UTC to the minute, "command", "seconds" (wall time, rounded), "cpu"
    (gemm.cpu_summary: the model name and the ISA features that matter)}."""
    return {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), "command": command,
            "seconds": round(seconds), "cpu": cpu_summary()}


def generated(run: dict[str, Any]) -> str:
    """`<date> by \\`<command>\\` in <minutes> min on <cpu>`, from a `stamp`."""
    return (f"{run['date']} by `{run['command']}` in {run['seconds'] / 60:.1f} min on "
            f"{run['cpu']}")


def table_head(caption: str, columns: Sequence[str]) -> list[str]:
    """The caption, a blank line, the header row and the separator of a markdown table."""
    return [caption, "", "| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]


def text(lines: Sequence[str]) -> str:
    """The lines of a section, one per line, ending with a newline."""
    return "\n".join(lines) + "\n"
