"""confroute judge: read a table made by `confroute label` and add rating_<role>: 1/0
correctness where the prompt has a gold answer (math: numeric, multiple choice: letter),
otherwise the MT-Bench single-answer rating (1-10) from an OpenAI-compatible judge model. A
judgment without a rating stays missing. Judgments are stored as they arrive (resumable). With
rating_edge and rating_cloud the judge/combined label rules apply."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

HELP = "rate each model's answers: correctness vs gold, or an LLM judge"


def add_arguments(parser: Any) -> None:
    parser.add_argument("table", help="scores table from `confroute label` (.parquet or .jsonl)")
    parser.add_argument("--out", required=True, help="table to write (.parquet or .jsonl)")
    parser.add_argument("--role", type=list[Literal["edge", "cloud"]] | None,
                        help="whose answers to rate, e.g. [edge] (default: every role in the "
                        "table)")
    parser.add_argument("--judge_url", type=str | None,
                        help="OpenAI-compatible base URL, e.g. https://host/v1")
    parser.add_argument("--judge_model", type=str | None, help="judge model name at that URL")
    parser.add_argument("--api_key_env", default="OPENAI_API_KEY",
                        help="environment variable with the judge's API key")
    parser.add_argument("--concurrency", type=int, default=4, help="parallel judge requests")
    parser.add_argument("--gold", type=bool, default=True,
                        help="false: judge every answer, even where a gold answer exists")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: Any) -> int:
    from confroute.dataset.tables import read_table
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
            raise ConfigError("give both --judge_url and --judge_model")
        cfg = RatingJudgeConfig(EndpointConfig(base_url=args.judge_url, model=args.judge_model,
                                               api_key_env=args.api_key_env,
                                               concurrency=args.concurrency))
    out = Path(args.out)
    report = {}
    for role in roles:
        frame, report[role] = rate_table(frame, role, cfg, out.with_name(f"judgments_{role}.jsonl"),
                                         use_gold=args.gold, progress=not args.quiet)
    write_table(frame, out)
    print(json.dumps({"table": str(out), "rows": len(frame), "ratings": report}, indent=2))
    return 0
