"""Regenerate the routing-quality table: every router, every protocol, all three benchmarks.

Edge = Mixtral-8x7B-Instruct, cloud = gpt-4-1106-preview, outcomes from RouteLLM's evaluation
files (decontaminated as RouteLLM does). Routers: random (mean over seeds), kNN, MLP, matrix
factorisation and SW ranking over frozen all-MiniLM-L6-v2 embeddings, and confroute's fine-tuned
encoder router (fit -> ONNX export -> runtime), beside the prior that knows only the prompt's group
(MMLU subject, MT-Bench category; GSM8K has none, so its prior is a constant), fitted on the same
training rows of each fold (confroute.evaluation.priors); every router's APGR gap over the prior
has a paired bootstrap CI. Protocols: 5-fold cross-validation inside each
benchmark (out-of-fold scores) and transfer (MMLU + GSM8K -> MT-Bench, GSM8K -> MMLU,
MMLU -> GSM8K). Labels: 1 when the cloud model's outcome beats the edge model's.

Writes bench/results/quality.{json,md}, one plot per protocol cell, and the per-prompt scores
(bench/results/scores/<cell>.csv.gz, prompt ids + every router's score) so anyone can recompute
the metrics. Embeddings and fine-tuned scores are cached under bench/.cache (git-ignored).

    python bench/quality.py --quick   # CI size: 2,000 MMLU prompts, 3 fits of 20 steps,
                                      # 3 folds, fine-tuned router in the transfer cells only
    python bench/quality.py           # full: all rows, 5 folds, fine-tuned in every cell
                                      # (18 fits of 150 steps: hours on CPU; use a GPU)

Any size can be set alone (--folds, --max-rows, --ft-steps, ...); the table header records the
sizes and the exact command.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bench_args  # noqa: E402
import report_io  # noqa: E402

from confroute.evaluation import baselines, metrics, priors, protocols  # noqa: E402
from confroute.evaluation import report as reporting  # noqa: E402
from confroute.evaluation.costs import CostConfig  # noqa: E402
from confroute.evaluation.embeddings import DEFAULT_MAX_LENGTH, cached, embed  # noqa: E402
from confroute.evaluation.finetuned import FineTuneSettings, recipe  # noqa: E402
from confroute.evaluation.groundtruth import BENCHMARKS, GroundTruth, load_benchmark  # noqa: E402

PRICES = CostConfig()  # the defaults confroute evaluate uses too
TRANSFERS = ((("mmlu", "gsm8k"), "mt-bench"), (("gsm8k",), "mmlu"), (("mmlu",), "gsm8k"))
LEARNED = ("knn", "mlp", "mf", "sw")
ALL_ROUTERS = ("random", "prior", *LEARNED, "finetuned")
# --quick is sized for CI on 2 CPU cores: the fine-tuned router runs in the 3 transfer cells
# only (3 fits); the full run fine-tunes in every cell (18 fits: hours on CPU, minutes on a GPU).
QUICK = {"folds": 3, "max_rows": 2000, "bootstrap": 200, "random_seeds": 10,
         "ft_train_rows": 640, "ft_steps": 20, "ft_max_length": 64, "ft_cells": "transfer"}
FULL = {"folds": 5, "max_rows": None, "bootstrap": 1000, "random_seeds": 20,
        "ft_train_rows": 2000, "ft_steps": 150, "ft_max_length": 128, "ft_cells": "all"}


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    started = time.time()
    full = {name: load_benchmark(name, args.routellm_dir) for name in BENCHMARKS}
    keep = {name: _rows(len(t), args.max_rows, args.seed) for name, t in full.items()}
    truths = {name: _subsample(full[name], keep[name], args.seed) for name in BENCHMARKS}
    frozen = set(LEARNED) & set(args.routers)  # only these read the frozen embeddings
    emb = {name: _embeddings(full[name], keep[name], args.cache / "embeddings") if frozen
           else None for name in BENCHMARKS}
    _log(f"ground truth and embeddings ready ({time.time() - started:.0f} s)")
    ft_log: dict[str, Any] = {}
    settings = FineTuneSettings(max_train_rows=args.ft_train_rows, max_steps=args.ft_steps,
                                max_length=args.ft_max_length, seed=args.seed)
    recipes = _recipes(args, settings, ft_log)
    if "prior" in args.routers:  # first, so every other router's report carries its gap
        recipes = {"prior": priors.recipe(_groups(truths, args.routellm_dir)), **recipes}
    cells, fold_records = [], {}
    for name, truth in truths.items():
        folds, assignment = protocols.cv_folds(truth, emb[name], args.folds, args.seed)
        fold_records[name] = protocols.assignment_record(truth, assignment, args.seed)
        cells.append((f"cv{args.folds}", name, truth, folds))
    for train_names, test_name in TRANSFERS:
        fold = protocols.transfer_fold([(truths[n], emb[n]) for n in train_names],
                                       (truths[test_name], emb[test_name]))
        cells.append(("transfer from " + "+".join(train_names), test_name, truths[test_name],
                      [fold]))
    rows, reports, judged = [], [], {}
    for protocol, name, truth, folds in cells:
        kind = "cv" if protocol.startswith("cv") else "transfer"
        cell_recipes = {k: v for k, v in recipes.items()
                        if k != "finetuned" or args.ft_cells in ("all", kind)}
        cell_reports, cell_scores = _run_cell(args, protocol, truth, folds, cell_recipes)
        if args.judge_url and protocol.startswith("cv") and name == args.judge_benchmark:
            judged = _judge(args, truth, cell_scores)
        reports += cell_reports
        rows += [_row(protocol, r) for r in cell_reports]
        _save_scores(args.out, protocol, truth, cell_scores)
        reporting.plot([r for r in cell_reports if r["router"] not in ("random", "oracle")],
                       args.out / "plots" / f"{_slug(protocol)}-{name}.png",
                       f"{name}: {protocol}")
    _write(args, rows, reports, fold_records, ft_log, settings, truths, judged,
           time.time() - started)
    _log(f"done in {time.time() - started:.0f} s; wrote {args.out / 'quality.md'}")
    return 0


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = bench_args.parser(__doc__, QUICK)
    bench_args.add_data_dir(parser, "--routellm-dir", "CONFROUTE_ROUTELLM_DIR", "routellm")
    parser.add_argument("--routers", default=",".join(ALL_ROUTERS),
                        help=f"comma-separated subset of {','.join(ALL_ROUTERS)}")
    parser.add_argument("--folds", type=int)
    parser.add_argument("--max-rows", type=int,
                        help="evaluate at most this many prompts per benchmark (fixed subsample)")
    parser.add_argument("--bootstrap", type=int)
    parser.add_argument("--random-seeds", type=int)
    parser.add_argument("--ft-train-rows", type=int,
                        help="fine-tuning rows per fold (fixed subsample of the fold's training)")
    parser.add_argument("--ft-steps", type=int, help="fine-tuning optimiser steps per fold")
    parser.add_argument("--ft-max-length", type=int, help="fine-tuning max tokens per prompt")
    parser.add_argument("--ft-cells", choices=("all", "cv", "transfer"),
                        help="protocol cells that include the fine-tuned router (CPU budget)")
    parser.add_argument("--judge-url", help="OpenAI-compatible API root for the optional "
                        "LLM-as-a-judge comparison (key in $OPENAI_API_KEY); off when unset")
    parser.add_argument("--judge-model", default="gpt-4o")
    parser.add_argument("--judge-benchmark", default="gsm8k", choices=("gsm8k", "mt-bench"))
    bench_args.add_seed_cache_out(parser)
    args = bench_args.parse(parser, argv, "quality.py", QUICK, FULL)
    args.routers = [r for r in args.routers.split(",") if r]
    unknown = set(args.routers) - set(ALL_ROUTERS)
    if unknown:
        parser.error(f"unknown router(s) {sorted(unknown)}; choose from {ALL_ROUTERS}")
    return args


def _recipes(args: argparse.Namespace, settings: FineTuneSettings,
             ft_log: dict[str, Any]) -> dict[str, protocols.Recipe]:
    def frozen(name: str) -> protocols.Recipe:
        def fit_score(fold: protocols.Fold) -> np.ndarray:
            return baselines.make(name).fit(fold.train.emb, fold.train.labels).score(fold.test.emb)

        # the key names the router, all its settings and the embedding model
        key = f"{baselines.make(name)!r} on minilm-{DEFAULT_MAX_LENGTH} embeddings"
        return protocols.cached(fit_score, key, args.cache / "baselines")

    out = {name: frozen(name) for name in LEARNED if name in args.routers}
    if "finetuned" in args.routers:
        out["finetuned"] = recipe(settings, args.cache / "finetuned", ft_log)
    return out


def _run_cell(args: argparse.Namespace, protocol: str, truth: GroundTruth,
              folds: list[protocols.Fold], recipes: dict[str, protocols.Recipe]
              ) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    reports, scores = [], {}
    if "random" in args.routers:
        reports.append(_random_report(truth, args.random_seeds))
    for name, make in recipes.items():
        started = time.time()
        scores[name] = protocols.run(folds, make, len(truth))
        prior = ("prior", scores["prior"]) if "prior" in scores and name != "prior" else None
        report = reporting.evaluate(scores[name], truth, name, bootstrap=args.bootstrap,
                                    seed=args.seed, prior=prior)
        report["seconds"] = round(time.time() - started, 1)
        reports.append(report)
        m = report["metrics"]
        _log(f"{protocol:>24} {truth.name:>8} {name:>9}: APGR {m['apgr']:.3f} "
             f"CPT50 {m['cpt_50']:.3f} CPT80 {m['cpt_80']:.3f} ({report['seconds']} s)")
    oracle = metrics.oracle_scores(truth.quality_edge, truth.quality_cloud)
    reports.append(reporting.evaluate(oracle, truth, "oracle", bootstrap=0))
    for r in reports:
        r["protocol"] = protocol
    return reports, scores


def _groups(truths: dict[str, GroundTruth], routellm_dir: Path) -> dict[str, str]:
    """Prompt id -> its benchmark and group (MMLU subject, MT-Bench category, else one group),
    the only thing the prior knows about a prompt."""
    out = {}
    for name, truth in truths.items():
        _, groups = priors.truth_groups(truth, routellm_dir)
        out.update({i: f"{name}:{g}" for i, g in zip(truth.ids, groups, strict=True)})
    return out


def _random_report(truth: GroundTruth, seeds: int) -> dict[str, Any]:
    """Uniform random scores: metrics are the mean (and sd) over `seeds` draws."""
    report = reporting.evaluate(np.zeros(len(truth)), truth, "random", bootstrap=0)
    mean, sd = metrics.random_average(truth.quality_edge, truth.quality_cloud, seeds)
    report["metrics"], report["sd_over_seeds"], report["seeds"] = mean, sd, seeds
    return report


def _judge(args: argparse.Namespace, truth: GroundTruth, scores: dict[str, np.ndarray]
           ) -> dict[str, Any]:
    """The paper's judge comparison at CPT(50%) and CPT(80%) on the CV scores of one benchmark."""
    from confroute.evaluation import judge
    from confroute.llm_client import EndpointConfig

    ask = judge.http_judge(judge.PairwiseJudgeConfig(EndpointConfig(args.judge_url,
                                                                    args.judge_model)))
    scores = {"random": np.random.default_rng(args.seed).random(len(truth)), **scores}
    out = {f"cpt_{round(100 * level)}": judge.compare(truth, scores, level, ask, args.seed)
           for level in (0.5, 0.8)}
    return {"benchmark": truth.name, "judge_model": args.judge_model, **out}


def _row(protocol: str, r: dict[str, Any]) -> dict[str, Any]:
    point = r.get("operating_points", {}).get("cpt_80", {})
    return {"protocol": protocol, "benchmark": r["ground_truth"], "router": r["router"],
            "prompts": r["prompts"], **r["metrics"], "ci": r.get("ci"),
            "sd_over_seeds": r.get("sd_over_seeds"), "cost_at_cpt_80": point.get("cost_usd"),
            "minus_prior": (r["references"].get("prior") or {}).get("router_minus_prior_apgr"),
            "cost_all_edge": r.get("cost_usd", {}).get("all_edge"),
            "cost_all_cloud": r.get("cost_usd", {}).get("all_cloud")}


def _rows(n: int, max_rows: int | None, seed: int) -> np.ndarray | None:
    """The evaluated rows: all (None), or a fixed sorted random subset of `max_rows`."""
    if max_rows is None or n <= max_rows:
        return None
    return np.sort(np.random.default_rng(seed).permutation(n)[:max_rows])


def _subsample(truth: GroundTruth, rows: np.ndarray | None, seed: int) -> GroundTruth:
    if rows is None:
        return truth
    sub = truth.subset(rows)
    sub.info = {**truth.info, "subsample": f"{len(rows)} of {len(truth)} rows: sorted first "
                                           f"rows of numpy default_rng({seed}).permutation"}
    return sub


def _embeddings(truth: GroundTruth, rows: np.ndarray | None, cache: Path) -> np.ndarray:
    """Embeddings of the evaluated rows; reuses the whole benchmark's if they are cached."""
    if rows is not None:
        whole = cached(truth.prompts, cache)
        if whole is not None:
            return whole[rows]
        return embed([truth.prompts[i] for i in rows], cache_dir=cache)
    return embed(truth.prompts, cache_dir=cache)


def _save_scores(out: Path, protocol: str, truth: GroundTruth, scores: dict[str, np.ndarray]
                 ) -> None:
    import pandas as pd

    path = out / "scores" / f"{_slug(protocol)}-{truth.name}.csv.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame({"id": truth.ids, "quality_edge": truth.quality_edge,
                          "quality_cloud": truth.quality_cloud, **scores})
    frame.to_csv(path, index=False, float_format="%.6g")


def _write(args: argparse.Namespace, rows: list[dict[str, Any]], reports: list[dict[str, Any]],
           folds: dict[str, Any], ft_log: dict[str, Any], settings: FineTuneSettings,
           truths: dict[str, GroundTruth], judged: dict[str, Any], seconds: float) -> None:
    import dataclasses

    run = report_io.stamp(args.command, seconds)
    sizes = {k: getattr(args, k) for k in QUICK}
    payload = {**run, "sizes": sizes, "finetune": dataclasses.asdict(settings),
               "ground_truth": {n: t.info for n, t in truths.items()}, "rows": rows,
               "folds": folds, "finetune_fits": ft_log, "judge": judged or None,
               "curves": {f"{r['protocol']}|{r['ground_truth']}|{r['router']}": r["curve"]
                          for r in reports}}
    reporting.write_json(payload, args.out / "quality.json")
    text = _markdown(rows, run, args) + "\n" + _truth_markdown(truths)
    if judged:
        text += "\n" + _judge_markdown(judged)
    (args.out / "quality.md").write_text(text)


def _markdown(rows: list[dict[str, Any]], run: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [f"Routing quality, edge = Mixtral-8x7B-Instruct, cloud = gpt-4-1106-preview "
             f"(RouteLLM outcomes). Generated {report_io.generated(run)}.",
             f"Sizes: {args.folds}-fold CV, at most {args.max_rows or 'all'} prompts per "
             f"benchmark; {_ft_sizes(args)}. CPT lower is better, APGR "
             "higher is better; [95% bootstrap CI over prompts]; random = mean over "
             f"{args.random_seeds} seeds.", "",
             f"Protocols: cv{args.folds} = {args.folds}-fold cross-validation inside the benchmark "
             "(fixed seeded folds, recorded in quality.json; out-of-fold scores pooled into one "
             "curve); transfer = trained on the named benchmarks, scored on every prompt of this "
             "one. Labels: 1 when the cloud model's outcome beats the edge model's. Quality: "
             "correctness (GSM8K, MMLU); MT-Bench: mean GPT-4 judge score of both turns, routed "
             "on turn 1. Contaminated prompts dropped as RouteLLM does. USD: list prices per "
             f"million tokens (edge ${PRICES.edge_input_per_mtok:g}/"
             f"${PRICES.edge_output_per_mtok:g}, cloud ${PRICES.cloud_input_per_mtok:g}/"
             f"${PRICES.cloud_output_per_mtok:g} in/out) x tokens estimated as "
             "characters / 4 (MMLU: input only, no responses published). Full-size run: "
             "`python bench/quality.py` (all rows, 5 folds, fine-tuned in all 18 fits with "
             "2,000 rows x 150 steps x 128 tokens: hours on 2 CPU cores; minutes on a GPU).", "",
             "APGR - prior: the router's APGR minus the prior's on the same prompts [paired "
             "bootstrap 95% CI].", "",
             "| protocol | benchmark | router | APGR | APGR - prior | CPT(50%) | CPT(80%) | "
             "USD at CPT(80%) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ci, sd = r.get("ci") or {}, r.get("sd_over_seeds") or {}
        cells = [reporting.format_cell(r[k], ci.get(k), k != "apgr") + _sd(sd, k)
                 for k in ("apgr", "cpt_50", "cpt_80")]
        cells.insert(1, _gap(r.get("minus_prior")))
        lines.append(f"| {r['protocol']} | {r['benchmark']} | {r['router']} | "
                     f"{' | '.join(cells)} | {_usd(r['cost_at_cpt_80'])} |")
    return report_io.text(lines)


def _ft_sizes(args: argparse.Namespace) -> str:
    if "finetuned" not in args.routers:
        return "fine-tuned router not run"
    return (f"fine-tuned router: {args.ft_train_rows} training rows per fold, {args.ft_steps} "
            f"steps of {FineTuneSettings.batch_size} x "
            f"{args.ft_max_length} tokens, in the {args.ft_cells} protocol cells")


def _gap(gap: dict[str, float] | None) -> str:
    if not gap:
        return "-"
    return f"{gap['gap']:+.3f} [{gap['low']:+.3f}, {gap['high']:+.3f}]"


def _sd(sd: dict[str, float], key: str) -> str:
    if key not in sd:
        return ""
    return f" (sd {sd[key]:.3f})" if key == "apgr" else f" (sd {100 * sd[key]:.1f})"


def _truth_markdown(truths: dict[str, GroundTruth]) -> str:
    lines = ["| benchmark | prompts | edge quality | cloud quality | cloud better on | dropped "
             "as contaminated |", "|---|---|---|---|---|---|"]
    for name, t in truths.items():
        lines.append(f"| {name} | {len(t)} | {t.quality_edge.mean():.4f} | "
                     f"{t.quality_cloud.mean():.4f} | {100 * t.labels().mean():.1f}% | "
                     f"{t.info.get('dropped_contaminated', 0)} |")
    return report_io.text(lines)


def _judge_markdown(judged: dict[str, Any]) -> str:
    lines = report_io.table_head(
        f"LLM-as-a-judge ({judged['judge_model']}) on {judged['benchmark']}: % of prompts where "
        "the router's answer was judged best, each router at its own CPT point.",
        ["router", "best @CPT(50%)", "best @CPT(80%)"])
    for name, r50 in judged["cpt_50"]["routers"].items():
        r80 = judged["cpt_80"]["routers"][name]
        lines.append(f"| {name} | {r50['best_pct']:.2f}% | {r80['best_pct']:.2f}% |")
    return report_io.text(lines)


def _usd(value: float | None) -> str:
    return "-" if value is None else f"${value:.2f}"


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text).strip("-")


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


if __name__ == "__main__":
    bench_args.run(main, "quality.py")
