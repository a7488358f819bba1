"""confroute label: sample answers from the edge (and cloud) model, measure SE, write labels."""

from __future__ import annotations

import argparse
import json
from typing import Any

from confroute.config import LabelConfig


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "label", help="make a labelled dataset from prompts by sampling your models",
        description="Answer each prompt N times with the edge model (and optionally the cloud "
        "model), cluster the answers by meaning, measure semantic entropy, and label each "
        "prompt. Samples are stored as they arrive (OUT/samples_<role>.jsonl): an interrupted "
        "run resumes, and rerunning with another --rule or --tau relabels without sampling. "
        "Writes OUT/scores.parquet, which `confroute train --data` reads.")
    p.add_argument("prompts", help="prompts: a .parquet/.jsonl/.csv file with a 'prompt' column "
                   "(optional: id, source, split, answer, answer_type, choices, instruction), a "
                   "bundled dataset name, or a Hugging Face dataset")
    p.add_argument("--out", required=True, help="output folder (created; reused to resume)")
    p.add_argument("--edge", default="smollm2", help="edge model: 'smollm2' (bundled GGUF), a "
                   "Hugging Face name or folder (GGUF with --edge-gguf), or an http(s):// "
                   "OpenAI-compatible base URL (then --edge-model)")
    p.add_argument("--edge-model", help="model name at the edge URL")
    p.add_argument("--edge-gguf", help="GGUF file inside the --edge folder")
    p.add_argument("--cloud", help="cloud model, as --edge (optional: without it, edge-only SE)")
    p.add_argument("--cloud-model", help="model name at the cloud URL")
    p.add_argument("--cloud-gguf", help="GGUF file inside the --cloud folder")
    p.add_argument("--api-key-env", default="OPENAI_API_KEY",
                   help="environment variable with the API key for http(s) models")
    p.add_argument("--concurrency", type=int, default=8, help="parallel HTTP requests")
    p.add_argument("--device", default="cpu", help="local models: cpu, cuda, cuda:1, ...")
    p.add_argument("--threads", type=int, help="local models: torch CPU threads")
    g = p.add_argument_group("sampling")
    g.add_argument("-n", "--samples", type=int, default=5, help="answers per prompt")
    g.add_argument("--temperature", type=float, default=0.5)
    g.add_argument("--top-p", type=float, default=1.0)
    g.add_argument("--top-k", type=int, default=50, help="0 = whole vocabulary")
    g.add_argument("--max-tokens", type=int, default=32)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--batch-size", type=int, default=8, help="prompts per local forward pass")
    g.add_argument("--system", help="system message (default: the chat template's)")
    g.add_argument("--answer-prefix", default="",
                   help="text that starts each answer, e.g. 'The answer is'")
    g.add_argument("--one-line", action="store_true", help="stop each answer at its first newline")
    g.add_argument("--limit", type=int, help="only the first N prompts")
    m = p.add_argument_group("semantic entropy")
    m.add_argument("--equivalence", default="exact",
                   help="'exact' (numbers, option letters, normalised text), 'nli:<model>' or "
                        "'llm:<model>@<base_url>' (LLM-judged entailment, cached)")
    m.add_argument("--invalid", choices=["drop", "cluster"], default="drop",
                   help="unparseable answers: left out, or one shared cluster")
    m.add_argument("--se", choices=["discrete", "weighted", "paper"], default="paper",
                   help="the variant used for labels (all are stored; paper: see "
                        "bench/results/labels.md)")
    m.add_argument("--choice-se", choices=["samples", "letters"], default="samples",
                   help="multiple choice: SE of the samples or of the option letters' probs")
    m.add_argument("--no-length-norm", action="store_true",
                   help="sequence likelihood = summed (not mean) token log-probs")
    r = p.add_argument_group("label rule")
    r.add_argument("--rule", choices=["auto", "tau", "edge_se", "judge", "combined"],
                   default="auto", help="auto: tau with a cloud model, else edge_se")
    r.add_argument("--tau", type=float, default=0.1)
    r.add_argument("--epsilon", type=float, default=1e-6)
    r.add_argument("--ties", choices=["edge", "soft", "drop"], default="edge")
    r.add_argument("--edge-threshold", type=float)
    r.add_argument("--edge-quantile", type=float, default=0.7)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def _backend(args: argparse.Namespace, role: str) -> tuple[str, Any]:
    """(model name, backend factory): the model loads only when something is left to sample."""
    import functools

    from confroute.labelling.sampling import backend_name, make_backend

    spec, model = getattr(args, role), getattr(args, f"{role}_model")
    return backend_name(spec, model), functools.partial(
        make_backend, spec, model,
        local={"gguf_file": getattr(args, f"{role}_gguf"), "device": args.device,
               "threads": args.threads},
        endpoint={"api_key_env": args.api_key_env, "concurrency": args.concurrency})


def run(args: argparse.Namespace) -> int:
    from confroute.config import from_dict
    from confroute.labelling.pipeline import MeasureConfig, label
    from confroute.labelling.sampling import SamplingConfig

    sampling = SamplingConfig(n=args.samples, temperature=args.temperature, top_p=args.top_p,
                              top_k=args.top_k, max_new_tokens=args.max_tokens, seed=args.seed,
                              batch_size=args.batch_size, system=args.system,
                              answer_prefix=args.answer_prefix, stop_at_newline=args.one_line)
    measure = MeasureConfig(equivalence=args.equivalence, invalid=args.invalid, se=args.se,
                            choice_se=args.choice_se, normalise_length=not args.no_length_norm)
    rule = args.rule if args.rule != "auto" else ("tau" if args.cloud else "edge_se")
    label_cfg = from_dict(LabelConfig, {"rule": rule, "tau": args.tau, "epsilon": args.epsilon,
                                        "ties": args.ties, "edge_threshold": args.edge_threshold,
                                        "edge_quantile": args.edge_quantile})
    backends = {"edge": _backend(args, "edge")}
    if args.cloud:
        backends["cloud"] = _backend(args, "cloud")
    result = label(args.prompts, args.out, backends, sampling, measure, label_cfg,
                   limit=args.limit, progress=not args.quiet)
    print(json.dumps({"table": str(result.table), "rows": result.rows,
                      "sampling": result.sampling, "labels": result.labels,
                      "quality": {role: q.get("all") for role, q in result.quality.items()}},
                     indent=2, default=str))
    return 0
