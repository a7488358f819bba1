"""confroute label: sample your models on prompts and measure how sure each one is, in one of two
forms of one run. Edge/cloud (--edge, optionally --cloud), the ladder of the models `edge` and
`cloud`, sampled and measured as --ladder's are: answer each prompt N times with the edge model (and
the cloud model), cluster the answers by meaning, measure semantic entropy, and label each prompt;
samples are stored as they arrive (OUT/samples_<role>.jsonl), so an interrupted run resumes, and
rerunning with another --label.rule or --label.tau relabels without sampling. Writes
OUT/scores.parquet, which `confroute train --data.source` reads. K models (--ladder FILE): FILE is a
YAML/JSON list of K >= 2 models, each with `name` (its column in the output), `spec` (as --edge),
optional `model` (the name at a URL), `gguf` and `api_key_env`, and its price `input_per_mtok` and
`output_per_mtok` (USD per million tokens). Every model answers every prompt N times
(OUT/samples_<name>.jsonl, resumable) and gets a rating per prompt in [0, 1], higher is better:
correctness of its greedy answer where the prompt has a gold answer, else the judge's MT-Bench
rating r (1-10) as (r - 1) / 9 with --judge_url and --judge_model, else the semantic-entropy
confidence 1 - SE / log N (Kuhn et al. 2023). Writes OUT/ratings.parquet (one column per model named
as the model; the evidence as se:<name>, correct:<name>, greedy:<name>, rating_kind:<name>, ...),
OUT/prices.yaml and OUT/ratings_report.json, for `confroute train --data.source OUT/ratings.parquet
--data.prices OUT/prices.yaml --data.models '[a, b, c]'`. Settings: --sampling.<key>
(SamplingConfig), --measure.<key> (MeasureConfig), --label.<key> (LabelConfig, edge/cloud mode
only); --config reads them from YAML.
"""

from __future__ import annotations

import json
from typing import Any

HELP = "make a labelled dataset from prompts by sampling your models"

DEFAULT_EDGE = "smollm2"
TWO_MODEL_FLAGS = ("edge", "edge_model", "edge_gguf", "cloud", "cloud_model", "cloud_gguf")


def add_arguments(parser: Any) -> None:
    from confroute.config import LabelConfig
    from confroute.labelling.measure import MeasureConfig
    from confroute.labelling.sampling import SamplingConfig

    parser.add_argument("--config", action="config", help="YAML file of label settings")
    parser.add_argument("prompts", help="prompts: a .parquet/.jsonl/.csv file with a 'prompt' "
                        "column (optional: id, source, category, split, answer, answer_type, "
                        "choices, instruction), a bundled dataset name, or a Hugging Face dataset")
    parser.add_argument("--out", required=True, help="output folder (created; reused to resume)")
    parser.add_argument("--edge", type=str | None, help=f"edge model: '{DEFAULT_EDGE}' (the "
                        "bundled GGUF, used when neither --edge nor --ladder is given), a Hugging "
                        "Face name or folder (GGUF with --edge_gguf), or an http(s):// "
                        "OpenAI-compatible base URL (then --edge_model)")
    parser.add_argument("--edge_model", type=str | None, help="model name at the edge URL")
    parser.add_argument("--edge_gguf", type=str | None, help="GGUF file inside the --edge folder")
    parser.add_argument("--cloud", type=str | None,
                        help="cloud model, as --edge (optional: without it, edge-only SE)")
    parser.add_argument("--cloud_model", type=str | None, help="model name at the cloud URL")
    parser.add_argument("--cloud_gguf", type=str | None, help="GGUF file inside the --cloud folder")
    parser.add_argument("--ladder", type=str | None,
                        help="K-model mode instead of --edge/--cloud: a YAML or JSON list of K >= "
                        "2 models (name, spec, model, gguf, api_key_env, input_per_mtok, "
                        "output_per_mtok); writes OUT/ratings.parquet and OUT/prices.yaml")
    parser.add_argument("--judge_url", type=str | None,
                        help="--ladder mode: OpenAI-compatible base URL of an LLM judge that "
                        "rates answers to prompts without a gold answer (MT-Bench, 1-10)")
    parser.add_argument("--judge_model", type=str | None, help="judge model name at that URL")
    parser.add_argument("--judge_api_key_env", default="OPENAI_API_KEY",
                        help="environment variable with the judge's API key")
    parser.add_argument("--judge_concurrency", type=int, default=4,
                        help="parallel judge requests")
    parser.add_argument("--api_key_env", default="OPENAI_API_KEY",
                        help="environment variable with the API key for http(s) models (a "
                        "ladder entry's api_key_env overrides it)")
    parser.add_argument("--concurrency", type=int, default=8, help="parallel HTTP requests")
    parser.add_argument("--device", default="cpu", help="local models: cpu, cuda, cuda:1, ...")
    parser.add_argument("--threads", type=int | None, help="local models: torch CPU threads")
    parser.add_argument("--limit", type=int | None, help="only the first N prompts")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_class_arguments(SamplingConfig, "sampling", sub_configs=True)
    parser.add_class_arguments(MeasureConfig, "measure", sub_configs=True)
    parser.add_class_arguments(LabelConfig, "label", sub_configs=True)


def _factory(args: Any, spec: str, model: str | None, gguf: str | None,
             api_key_env: str | None = None) -> tuple[str, Any]:
    """(model name, backend factory): the model loads only when something is left to sample."""
    import functools

    from confroute.labelling.backends import backend_name, make_backend

    return backend_name(spec, model), functools.partial(
        make_backend, spec, model,
        local={"gguf_file": gguf, "device": args.device, "threads": args.threads},
        endpoint={"api_key_env": api_key_env or args.api_key_env,
                  "concurrency": args.concurrency})


def _backend(args: Any, role: str) -> tuple[str, Any]:
    spec = getattr(args, role) or DEFAULT_EDGE
    return _factory(args, spec, getattr(args, f"{role}_model"), getattr(args, f"{role}_gguf"))


def run(args: Any) -> int:
    from confroute.errors import ConfigError

    if args.judge_url or args.judge_model:
        if not args.ladder:
            raise ConfigError("--judge_url/--judge_model rate answers in the --ladder mode; for "
                              "an edge/cloud table run `confroute judge` on OUT/scores.parquet")
        if not (args.judge_url and args.judge_model):
            raise ConfigError("give both --judge_url and --judge_model")
    if args.ladder:
        return _run_ladder(args)
    from confroute.labelling.pair import label

    label_cfg = args.label  # `auto`: tau with a cloud model, edge_wrong with gold, else edge_se
    backends = {"edge": _backend(args, "edge")}
    if args.cloud:
        backends["cloud"] = _backend(args, "cloud")
    result = label(args.prompts, args.out, backends, args.sampling, args.measure, label_cfg,
                   limit=args.limit, progress=not args.quiet)
    print(json.dumps({"table": str(result.table), "rows": result.rows,
                      "sampling": result.sampling, "labels": result.labels,
                      "quality": {role: q.get("all") for role, q in result.quality.items()}},
                     indent=2, default=str))
    return 0


def _run_ladder(args: Any) -> int:
    from confroute.config import LabelConfig
    from confroute.errors import ConfigError
    from confroute.labelling.judge import RatingJudgeConfig
    from confroute.labelling.kmodel import label_ladder
    from confroute.labelling.ladder import prices, read_ladder
    from confroute.llm_client import EndpointConfig

    given = [f"--{flag}" for flag in TWO_MODEL_FLAGS if getattr(args, flag) is not None]
    if given:
        raise ConfigError(f"--ladder names every model; drop {', '.join(given)} (or drop "
                          "--ladder for the edge/cloud mode)")
    if args.label != LabelConfig():
        raise ConfigError("--label.* settings choose the edge/cloud label rule; the --ladder "
                          "mode writes a rating per model instead, so drop them")
    models = read_ladder(args.ladder)
    backends = {m.name: _factory(args, m.spec, m.model, m.gguf, m.api_key_env) for m in models}
    judge = None
    if args.judge_url:
        judge = RatingJudgeConfig(EndpointConfig(
            base_url=args.judge_url, model=args.judge_model, api_key_env=args.judge_api_key_env,
            concurrency=args.judge_concurrency))
    result = label_ladder(args.prompts, args.out, backends, prices(models), args.sampling,
                          args.measure, judge, limit=args.limit, progress=not args.quiet)
    report = result.report
    print(json.dumps({
        "table": report["table"], "prices": report["prices"], "rows": report["rows"],
        "models": report["models"], "dropped": report["dropped"]["count"],
        "sampling": report["sampling"],
        "ratings": {name: {"mean": m["rating_mean"], "kinds": m["kinds"]}
                    for name, m in report["per_model"].items()},
        "train": f"--data.source {report['table']} --data.prices {report['prices']} "
                 f"--data.models '[{', '.join(report['models'])}]'"}, indent=2, default=str))
    return 0
