"""The label study: which label trains the router that best predicts the edge model's real outcome
on held-out prompts. One command, one table (bench/results/labels.{md,json}).

Every label trains the same router, on the same rows, with the same budget: frozen
all-MiniLM-L6-v2 mean-pooled embeddings (cached under bench/.cache) + standardisation + logistic
regression, its inverse regularisation C picked from one fixed grid by seeded 3-fold
cross-validated log-loss against the label itself (the router never sees the target). Soft
labels are fitted as cross-entropy targets (each row twice, weights p and 1 - p).

1. smollm2-uncertainty (or any table with its columns, e.g. a rebuilt one: --data): train on the
   train split, judge on the held-out (val) split against the edge model's real outcome: its
   greedy answer wrong (AUROC, pooled and within each source) and the share of its samples wrong
   (Spearman rho). Labels: SE discrete / weighted / paper and the greedy answer's mean log-prob,
   each by confroute's edge_se rule (top 30% = cloud); the tau rule where the table has
   `se_cloud`; greedy correctness; the share of samples wrong (soft).
2. MMLU-Pro model pairs (correctness only, 5-shot CoT outcomes of the upstream evaluation): judge
   by the pair's routing quality on held-out questions (APGR; AUROC of "cloud strictly better",
   pooled and within each category). Labels: edge wrong, cloud better, soft quality gap.

Every row stands beside the source (category) prior of the same label (a router that knows only
which source a prompt came from), and its delta is taken against the strongest such bar: the
source prior of the outcome itself (training share of wrong greedy answers per source; for a
pair, the mean quality gain per category). CIs: 95% percentile bootstrap over held-out prompts,
paired across rows (the same draws), so each delta has its own CI.

    python bench/labels.py --quick    # 3,000 MMLU-Pro questions per pair, 200 bootstrap draws
    python bench/labels.py            # every row, 1,000 draws
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from confroute.dataset import labels as rules  # noqa: E402
from confroute.dataset.mmlu_pro import ROOT_ENV  # noqa: E402
from confroute.dataset.tables import read_table  # noqa: E402
from confroute.errors import DataError  # noqa: E402
from confroute.evaluation import metrics  # noqa: E402
from confroute.evaluation.embeddings import DEFAULT_MAX_LENGTH, cached, embed  # noqa: E402
from confroute.labelling.pipeline import split_of  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
import bench_args  # noqa: E402
from gemm import cpu_summary  # noqa: E402
from labels_lib import auroc, fit_score, group_prior, spearman, with_ci, within  # noqa: E402

PAIRS = ("Meta-Llama-3.1-8B-Instruct->Meta-Llama-3.1-70B-Instruct",
         "Phi-3-mini-4k-instruct->gemini-1.5-pro-002",
         "Mistral-7B-Instruct-v0.2->Mixtral-8x7B-Instruct-v0.1")
QUICK = {"bootstrap": 200, "mmlu_pro_rows": 3000}
FULL = {"bootstrap": 1000, "mmlu_pro_rows": None}
LETTERS = "ABCDEFGHIJKLMNOP"
PRIOR = "source prior of the outcome"
GAIN_PRIOR = "category prior of the quality gain"
OUTCOME = "greedy wrong"


# --- study 1: smollm2-uncertainty -----------------------------------------------------------


def smollm2_labels(train: Any, quantile: float) -> dict[str, np.ndarray | str]:
    """Each candidate label on the training rows (1 = send to the cloud), or why it is absent."""
    def col(name: str) -> np.ndarray:
        return train[name].to_numpy(dtype=float)

    def edge_se(values: np.ndarray) -> np.ndarray:
        return rules.edge_se_rule(values, quantile=quantile).values

    out: dict[str, np.ndarray | str] = {}
    for variant in ("discrete", "weighted", "paper"):
        name = f"SE {variant} (edge_se, top {1 - quantile:.0%})"
        column = f"se_edge_{variant}"
        out[name] = edge_se(col(column)) if column in train else f"no column {column}"
    out["tau rule (SE edge vs cloud)"] = (
        rules.tau_rule(col("se_edge"), col("se_cloud")).values if "se_cloud" in train
        else "n/a: edge-only table (no se_cloud)")
    out["greedy log-prob (edge_se on -logprob)"] = edge_se(-col("greedy_logprob_edge"))
    out[OUTCOME] = 1.0 - col("correct_edge")
    out["share of samples wrong (soft)"] = 1.0 - col("sample_accuracy_edge")
    return out


def smollm2_study(args: argparse.Namespace) -> dict[str, Any]:
    frame = read_table(args.data)
    missing = {"prompt", "source", "split", "correct_edge", "sample_accuracy_edge",
               "greedy_logprob_edge"} - set(frame.columns)
    if missing:
        raise DataError(f"{args.data}: the label study needs column(s) {sorted(missing)}")
    frame = frame[frame["correct_edge"].notna() & frame["sample_accuracy_edge"].notna()]
    if args.max_rows:
        frame = frame.sort_values("id", key=lambda s: s.astype(str).map(_order_key)).head(
            args.max_rows)
    frame = frame.reset_index(drop=True)
    x = embed([str(p) for p in frame["prompt"]], args.encoder, args.max_length,
              cache_dir=args.cache / "embeddings")
    is_train = (frame["split"] == "train").to_numpy()
    train, test = frame[is_train], frame[~is_train]
    y = 1.0 - test["correct_edge"].to_numpy(dtype=float)
    share = 1.0 - test["sample_accuracy_edge"].to_numpy(dtype=float)
    src_tr, src_te = train["source"].astype(str).to_numpy(), test["source"].astype(str).to_numpy()
    rows, scores = [], {}
    for name, label in smollm2_labels(train, args.quantile).items():
        if isinstance(label, str):
            rows.append({"label": name, "skipped": label})
            continue
        scores[name] = fit_score(x[is_train], label, x[~is_train], args.seed)
        scores[f"{name} | prior"] = group_prior(src_tr, label, src_te)
        rows.append({"label": name, "train_rows": int((~np.isnan(label)).sum()),
                     "cloud_share": round(float(np.nanmean(label)), 3)})
    # the bar: the outcome's own source prior; and the edge model's own confidence on the
    # held-out prompts (not a router: it needs the edge model's answer)
    scores[PRIOR] = group_prior(src_tr, 1.0 - train["correct_edge"].to_numpy(dtype=float),
                                src_te)
    scores["edge's greedy log-prob itself"] = -test["greedy_logprob_edge"].to_numpy(dtype=float)

    cis = with_ci(_smollm2_stat(scores, y, share, src_te), len(y), args.bootstrap, args.seed)
    per_source = {g: {"n": int(m.sum()), "wrong": round(float(y[m].mean()), 3),
                      "auroc": {k: round(auroc(y[m], v[m]), 3) for k, v in scores.items()
                                if " | prior" not in k}}
                  for g, m in ((g, src_te == g) for g in np.unique(src_te))}
    return {"data": str(args.data), "train": int(is_train.sum()), "test": int((~is_train).sum()),
            "test_wrong": round(float(y.mean()), 3), "per_source": per_source, "rows": rows,
            "metrics": cis}


def _smollm2_stat(scores: dict[str, np.ndarray], y: np.ndarray, share: np.ndarray,
                  src: np.ndarray) -> Callable[[np.ndarray], dict[str, float]]:
    """The statistic the bootstrap redraws: per score AUROC (pooled, within source), rho; per
    label the paired deltas vs the outcome's source prior and vs the raw-outcome label."""
    def stat(i: np.ndarray) -> dict[str, float]:
        out = {}
        for key, s in scores.items():
            out[f"{key}|auroc"] = auroc(y[i], s[i])
            out[f"{key}|within"] = within(y[i], s[i], src[i])
            out[f"{key}|rho"] = spearman(share[i], s[i])
        for key in [k for k in scores if f"{k} | prior" in scores]:
            out[f"{key}|delta"] = out[f"{key}|auroc"] - out[f"{PRIOR}|auroc"]
            if OUTCOME in scores:
                out[f"{key}|vs_outcome"] = out[f"{key}|auroc"] - out[f"{OUTCOME}|auroc"]
        return out

    return stat


def _order_key(prompt_id: str) -> str:
    """A stable pseudo-random order of ids (for --max-rows slices that keep both splits)."""
    import hashlib

    return hashlib.sha256(f"order:{prompt_id}".encode()).hexdigest()


# --- study 2: MMLU-Pro model pairs ----------------------------------------------------------


def mmlu_pro_table(folder: Path) -> tuple[Any, list[str]]:
    """Questions joined with per-model outcomes, sorted by question_id; the prompt texts."""
    import pandas as pd

    for name in ("questions.parquet", "outcomes.parquet"):
        if not (folder / name).is_file():
            raise DataError(f"{folder / name} is missing; pass --mmlu-pro-dir")
    questions = pd.read_parquet(folder / "questions.parquet")
    outcomes = pd.read_parquet(folder / "outcomes.parquet")
    frame = questions.merge(outcomes, on="question_id").sort_values("question_id")
    texts = [f"{q}\n" + "\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(opts))
             for q, opts in zip(frame["question"], frame["options"], strict=True)]
    return frame.reset_index(drop=True), texts


def pair_study(frame: Any, x_all: np.ndarray, pair: str, args: argparse.Namespace
               ) -> dict[str, Any]:
    edge, _, cloud = pair.partition("->")
    for model in (edge, cloud):
        if model not in frame.columns:
            raise DataError(f"model {model!r} is not a column of outcomes.parquet")
    ok = (frame[edge].notna() & frame[cloud].notna()).to_numpy()
    sub, x = frame[ok].reset_index(drop=True), x_all[ok]
    is_train = np.array([split_of(str(q)) == "train" for q in sub["question_id"]])
    e, c = sub[edge].to_numpy(dtype=float), sub[cloud].to_numpy(dtype=float)
    cat = sub["category"].astype(str).to_numpy()
    labels = {"edge wrong": 1 - e, "cloud better": (c > e).astype(float),
              "soft quality gap": (c - e + 1) / 2}
    qe, qc, cat_te = e[~is_train], c[~is_train], cat[~is_train]
    better = qc > qe
    scores = {"oracle": metrics.oracle_scores(qe, qc),
              GAIN_PRIOR: group_prior(cat[is_train], (c - e)[is_train], cat_te)}
    for name, label in labels.items():
        scores[name] = fit_score(x[is_train], label[is_train], x[~is_train], args.seed)
        scores[f"{name} | prior"] = group_prior(cat[is_train], label[is_train], cat_te)

    def stat(i: np.ndarray) -> dict[str, float]:
        out = {}
        for key, s in scores.items():
            try:
                out[f"{key}|apgr"] = metrics.apgr(metrics.sweep(s[i], qe[i], qc[i]))
            except DataError:  # a resample where edge and cloud tie: PGR undefined
                out[f"{key}|apgr"] = float("nan")
            out[f"{key}|auroc"] = auroc(better[i], s[i])
            out[f"{key}|within"] = within(better[i], s[i], cat_te[i])
        for key in labels:
            out[f"{key}|delta"] = out[f"{key}|apgr"] - out[f"{GAIN_PRIOR}|apgr"]
        return out

    random_mean, random_sd = metrics.random_average(qe, qc, seeds=20)
    return {"pair": pair, "train": int(is_train.sum()), "test": int((~is_train).sum()),
            "edge_acc": round(float(qe.mean()), 3), "cloud_acc": round(float(qc.mean()), 3),
            "cloud_better_share": round(float(better.mean()), 3),
            "random_apgr": {"mean": random_mean["apgr"], "sd": random_sd["apgr"]},
            "labels": list(labels), "metrics": with_ci(stat, len(qe), args.bootstrap, args.seed)}


def mmlu_pro_study(args: argparse.Namespace) -> list[dict[str, Any]]:
    frame, texts = mmlu_pro_table(args.mmlu_pro_dir)
    if args.mmlu_pro_rows and args.mmlu_pro_rows < len(frame):
        keep = np.sort(np.random.default_rng(args.seed).permutation(len(frame))[
            :args.mmlu_pro_rows])
        frame, texts = frame.iloc[keep].reset_index(drop=True), [texts[i] for i in keep]
    cache = args.cache / "embeddings"
    x = cached(texts, cache, args.encoder, args.max_length)
    if x is None:
        x = embed(texts, args.encoder, args.max_length, cache_dir=cache)
    return [pair_study(frame, x, pair, args) for pair in args.pairs]


# --- the table -------------------------------------------------------------------------------


def cell(m: dict[str, dict[str, float]], key: str, signed: bool = False) -> str:
    if key not in m or np.isnan(m[key]["value"]):
        return "-"
    v = m[key]
    fmt = "{:+.3f}" if signed else "{:.3f}"
    return f"{fmt.format(v['value'])} [{fmt.format(v['low'])}, {fmt.format(v['high'])}]"


def markdown(result: dict[str, Any]) -> str:
    s = result["smollm2"]
    m = s["metrics"]
    lines = [f"# Label study ({result['cpu']}; wall time {result['wall_s']:.0f} s)", "",
             f"`{result['command']}` on {result['date']}; router = frozen {result['encoder']} "
             f"embeddings + logistic regression (C by 3-fold CV on the label), seed "
             f"{result['seed']}; 95% bootstrap CIs over held-out prompts ({result['bootstrap']} "
             "draws, paired across rows).", "",
             f"## {s['data']}: {s['train']} train / {s['test']} held-out prompts "
             f"(held-out greedy wrong: {s['test_wrong']:.1%}; per source: "
             + ", ".join(f"{g} {v['n']} ({v['wrong']:.0%} wrong)" for g, v in
                         s["per_source"].items()) + ")", "",
             "| label | train rows (cloud share) | AUROC greedy wrong | its source prior | "
             "delta vs outcome's source prior | delta vs greedy-wrong label | AUROC within source "
             "| rho share wrong |", "|---|---|---|---|---|---|---|---|"]
    for row in s["rows"]:
        name = row["label"]
        if "skipped" in row:
            lines.append(f"| {name} | {row['skipped']} | - | - | - | - | - | - |")
            continue
        lines.append(f"| {name} | {row['train_rows']} ({row['cloud_share']:.2f}) | "
                     f"{cell(m, name + '|auroc')} | {cell(m, name + ' | prior|auroc')} | "
                     f"{cell(m, name + '|delta', True)} | {cell(m, name + '|vs_outcome', True)} | "
                     f"{cell(m, name + '|within')} | {cell(m, name + '|rho')} |")
    ref = "edge's greedy log-prob itself"
    lines += [f"| {PRIOR} (train share wrong per source) | - | {cell(m, PRIOR + '|auroc')} | - | "
              f"- | - | {cell(m, PRIOR + '|within')} | {cell(m, PRIOR + '|rho')} |",
              f"| reference: {ref} (not a router) | - | {cell(m, ref + '|auroc')} | - | - | - | "
              f"{cell(m, ref + '|within')} | {cell(m, ref + '|rho')} |",
              "| random | - | 0.500 | - | - | - | 0.500 | 0.000 |", "",
              *_per_source_markdown(s["per_source"])]
    return "\n".join(lines + _pairs_markdown(result["mmlu_pro"]))


def _per_source_markdown(per_source: dict[str, Any]) -> list[str]:
    """AUROC (greedy wrong) inside each source, point values: where a router's signal lives."""
    keys = list(next(iter(per_source.values()))["auroc"])
    lines = ["AUROC for greedy wrong inside each source (point values; NaN = one class only):", "",
             "| source | n | wrong | " + " | ".join(keys) + " |",
             "|---|---|---|" + "---|" * len(keys)]
    for g, d in per_source.items():
        lines.append(f"| {g} | {d['n']} | {d['wrong']:.2f} | "
                     + " | ".join(f"{d['auroc'][k]:.3f}" for k in keys) + " |")
    return lines + [""]


def _pairs_markdown(pairs: list[dict[str, Any]]) -> list[str]:
    lines = ["## MMLU-Pro model pairs (correctness only; held-out questions)", "",
             "| pair (edge -> cloud) | label | APGR | its category prior | delta vs gain prior | "
             "AUROC cloud better | within category |", "|---|---|---|---|---|---|---|"]
    for p in pairs:
        m = p["metrics"]
        head = (f"{p['pair'].replace('->', ' -> ')} ({p['test']} q; edge {p['edge_acc']:.2f}, "
                f"cloud {p['cloud_acc']:.2f}, cloud better {p['cloud_better_share']:.2f})")
        for name in p["labels"]:
            lines.append(f"| {head} | {name} | {cell(m, name + '|apgr')} | "
                         f"{cell(m, name + ' | prior|apgr')} | {cell(m, name + '|delta', True)} "
                         f"| {cell(m, name + '|auroc')} | {cell(m, name + '|within')} |")
            head = ""
        r = p["random_apgr"]
        lines += [f"| | {GAIN_PRIOR} | {cell(m, GAIN_PRIOR + '|apgr')} | - | - | "
                  f"{cell(m, GAIN_PRIOR + '|auroc')} | {cell(m, GAIN_PRIOR + '|within')} |",
                  f"| | random | {r['mean']:.3f} (sd {r['sd']:.3f}) | - | - | 0.500 | 0.500 |",
                  f"| | oracle | {cell(m, 'oracle|apgr')} | - | - | 1.000 | 1.000 |"]
    return lines


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = bench_args.parser(__doc__, QUICK)
    p.add_argument("--data", default="smollm2-uncertainty",
                   help="labelled uncertainty table (bundled name or file)")
    p.add_argument("--max-rows", type=int, help="only this many rows of --data (a stable slice)")
    bench_args.add_data_dir(p, "--mmlu-pro-dir", ROOT_ENV, "mmlu_pro")
    p.add_argument("--mmlu-pro-rows", type=int, help="questions sampled per pair (default: all)")
    p.add_argument("--pairs", default=",".join(PAIRS), help="edge->cloud,... outcome columns")
    p.add_argument("--bootstrap", type=int, help="bootstrap draws (quick 200, full 1000)")
    p.add_argument("--quantile", type=float, default=0.7, help="edge_se rule's quantile")
    p.add_argument("--encoder", default="minilm")
    p.add_argument("--max-length", type=int, default=DEFAULT_MAX_LENGTH)
    bench_args.add_seed_cache_out(p)
    args = bench_args.parse(p, argv, "labels.py", QUICK, FULL)
    args.pairs = [x.strip() for x in args.pairs.split(",") if x.strip()]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    started = time.time()
    result: dict[str, Any] = {"smollm2": smollm2_study(args), "mmlu_pro": mmlu_pro_study(args)}
    result.update(command=args.command,
                  date=dt.date.today().isoformat(), encoder=args.encoder, seed=args.seed,
                  bootstrap=args.bootstrap, cpu=f"{cpu_summary()}, {os.cpu_count()} cores",
                  wall_s=time.time() - started)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "labels.json").write_text(json.dumps(result, indent=1, default=str))
    table = markdown(result)
    (args.out / "labels.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    bench_args.run(main, "labels.py")
