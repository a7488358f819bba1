"""confroute judge: add per-model ratings (correctness or an LLM judge's 1-10) to a label table."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "judge", help="rate each model's answers: correctness vs gold, or an LLM judge",
        description="Read a table made by `confroute label` and add rating_<role>: 1/0 "
        "correctness where the prompt has a gold answer (math: numeric, multiple choice: "
        "letter), otherwise the MT-Bench single-answer rating (1-10) from an OpenAI-compatible "
        "judge model. A judgment without a rating stays missing. Judgments are stored as they "
        "arrive (resumable). With rating_edge and rating_cloud the judge/combined rules apply.")
    p.add_argument("table", help="scores table from `confroute label` (.parquet or .jsonl)")
    p.add_argument("--out", required=True, help="table to write (.parquet or .jsonl)")
    p.add_argument("--role", action="append", choices=["edge", "cloud"],
                   help="whose answers to rate (repeatable; default: every role in the table)")
    p.add_argument("--judge-url", help="OpenAI-compatible base URL, e.g. https://host/v1")
    p.add_argument("--judge-model", help="judge model name at that URL")
    p.add_argument("--api-key-env", default="OPENAI_API_KEY",
                   help="environment variable with the judge's API key")
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--no-gold", action="store_true",
                   help="judge every answer, even where a gold answer exists")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from confroute.dataset.schema import read_table
    from confroute.errors import ConfigError
    from confroute.labelling.judge import RatingJudgeConfig, rate_table
    from confroute.labelling.pipeline import write_table
    from confroute.llm_client import EndpointConfig

    frame = read_table(args.table)
    roles = args.role or [r for r in ("edge", "cloud")
                          if f"samples_{r}" in frame.columns or f"greedy_{r}" in frame.columns]
    if not roles:
        raise ConfigError(f"{args.table} has no samples_edge / samples_cloud columns; make it "
                          "with `confroute label`")
    cfg = None
    if args.judge_url or args.judge_model:
        if not (args.judge_url and args.judge_model):
            raise ConfigError("give both --judge-url and --judge-model")
        cfg = RatingJudgeConfig(EndpointConfig(base_url=args.judge_url, model=args.judge_model,
                                               api_key_env=args.api_key_env,
                                               concurrency=args.concurrency))
    out = Path(args.out)
    report = {}
    for role in roles:
        frame, report[role] = rate_table(frame, role, cfg, out.with_name(f"judgments_{role}.jsonl"),
                                         use_gold=not args.no_gold, progress=not args.quiet)
    write_table(frame, out)
    print(json.dumps({"table": str(out), "rows": len(frame), "ratings": report}, indent=2))
    return 0
