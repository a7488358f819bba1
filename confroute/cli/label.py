"""confroute label: answer each prompt N times with the edge model (and optionally the cloud
model), cluster the answers by meaning, measure semantic entropy, and label each prompt. Samples
are stored as they arrive (OUT/samples_<role>.jsonl): an interrupted run resumes, and rerunning
with another --label.rule or --label.tau relabels without sampling. Writes OUT/scores.parquet,
which `confroute train --data.source` reads. Settings: --sampling.<key> (SamplingConfig),
--measure.<key> (MeasureConfig), --label.<key> (LabelConfig); --config reads them from YAML.
"""

from __future__ import annotations

import json
from typing import Any

from confroute.config import LabelConfig

HELP = "make a labelled dataset from prompts by sampling your models"


def add_arguments(parser: Any) -> None:
    from confroute.labelling.measure import MeasureConfig
    from confroute.labelling.sampling import SamplingConfig

    parser.add_argument("--config", action="config", help="YAML file of label settings")
    parser.add_argument("prompts", help="prompts: a .parquet/.jsonl/.csv file with a 'prompt' "
                        "column (optional: id, source, split, answer, answer_type, choices, "
                        "instruction), a bundled dataset name, or a Hugging Face dataset")
    parser.add_argument("--out", required=True, help="output folder (created; reused to resume)")
    parser.add_argument("--edge", default="smollm2", help="edge model: 'smollm2' (bundled GGUF), "
                        "a Hugging Face name or folder (GGUF with --edge_gguf), or an http(s):// "
                        "OpenAI-compatible base URL (then --edge_model)")
    parser.add_argument("--edge_model", type=str | None, help="model name at the edge URL")
    parser.add_argument("--edge_gguf", type=str | None, help="GGUF file inside the --edge folder")
    parser.add_argument("--cloud", type=str | None,
                        help="cloud model, as --edge (optional: without it, edge-only SE)")
    parser.add_argument("--cloud_model", type=str | None, help="model name at the cloud URL")
    parser.add_argument("--cloud_gguf", type=str | None, help="GGUF file inside the --cloud folder")
    parser.add_argument("--api_key_env", default="OPENAI_API_KEY",
                        help="environment variable with the API key for http(s) models")
    parser.add_argument("--concurrency", type=int, default=8, help="parallel HTTP requests")
    parser.add_argument("--device", default="cpu", help="local models: cpu, cuda, cuda:1, ...")
    parser.add_argument("--threads", type=int | None, help="local models: torch CPU threads")
    parser.add_argument("--limit", type=int | None, help="only the first N prompts")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_class_arguments(SamplingConfig, "sampling", sub_configs=True)
    parser.add_class_arguments(MeasureConfig, "measure", sub_configs=True)
    parser.add_class_arguments(LabelConfig, "label", sub_configs=True)


def _backend(args: Any, role: str) -> tuple[str, Any]:
    """(model name, backend factory): the model loads only when something is left to sample."""
    import functools

    from confroute.labelling.backends import backend_name, make_backend

    spec, model = getattr(args, role), getattr(args, f"{role}_model")
    return backend_name(spec, model), functools.partial(
        make_backend, spec, model,
        local={"gguf_file": getattr(args, f"{role}_gguf"), "device": args.device,
               "threads": args.threads},
        endpoint={"api_key_env": args.api_key_env, "concurrency": args.concurrency})


def run(args: Any) -> int:

    from confroute.labelling.pipeline import label

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
