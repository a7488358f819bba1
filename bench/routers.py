"""Every router family and shape on the same folds, in one table: quality beside latency.

Quality: APGR and CPT(50%) on RouteLLM GSM8K and MMLU (5-fold CV, the folds of bench/quality.py)
and MT-Bench (trained on MMLU + GSM8K); validation AUROC on the bundled smollm2-uncertainty labels
pooled and within each source (mean over sources with both labels), beside the source prior.
Frozen families are scored as they are trained: cached frozen features (mean-pooled hidden states
of chosen layers, or the model2vec static table) + a logistic-regression head (C = 0.1 on
standardised features) or a small MLP head. Also a lexical baseline (TF-IDF + logistic
regression), the prior (mean training label per MMLU subject / per source; one value on GSM8K and
on the MT-Bench transfer, where no group is shared), random (mean of 10 seeds) and oracle.

Latency: each shape exported to ONNX exactly as `confroute export` does (int8 dynamic
quantisation), batch 1, 64 tokens, p50 over --repeats runs, as a ratio to today's router (the
encoder's full depth, int8) measured in the same run; parameters and artifact size (ONNX +
tokenizer).
The Pareto front is over (mean APGR of the three benchmarks, latency): marked `*`.

    python bench/routers.py --quick   # CI: 300 prompts per benchmark, 30 latency repeats
    python bench/routers.py           # full: every prompt, 200 latency repeats

Features and the distilled static encoder are cached under bench/.cache/routers (git-ignored).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import bench_args  # noqa: E402
from gemm import cpu_summary  # noqa: E402
from router_features import Family, Features, matrix  # noqa: E402

from confroute.evaluation import metrics, protocols  # noqa: E402
from confroute.evaluation.groundtruth import GroundTruth, load_benchmark  # noqa: E402
from confroute.stats import binary_auroc  # noqa: E402

BENCHMARKS = ("gsm8k", "mmlu", "mt-bench")
QUICK = {"max_rows": 300, "repeats": 30}
FULL = {"max_rows": None, "repeats": 200}



def families(depth: int) -> list[Family]:
    """The families measured for an encoder with `depth` layers (MiniLM: 6)."""
    out = [Family(f"first {k} layer(s), mean", "layers", (k,), model={"layers": k})
           for k in sorted({depth, 3, 2, 1}, reverse=True) if k <= depth]
    if depth >= 3:
        out.append(Family("first 3 layers, concat means 1-3", "layers", (1, 2, 3),
                          model={"layers": 3, "pool_layers": [1, 2, 3]}))
    out.append(Family("first layer, concat emb+1", "layers", (0, 1),
                      model={"layers": 1, "pool_layers": [0, 1]}))
    out.append(Family("first layer, MLP head", "layers", (1,), "mlp",
                      model={"layers": 1, "head": "mlp"}))
    out.append(Family("model2vec static", "static", model={"family": "static"}))
    out.append(Family("model2vec static, MLP head", "static", head="mlp",
                      model={"family": "static", "head": "mlp"}))
    out.append(Family("TF-IDF + LR (lexical)", "tfidf"))
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    started = time.time()
    truths = {n: _subsample(load_benchmark(n, args.routellm_dir), args.max_rows, args.seed)
              for n in BENCHMARKS}
    uncertainty = _uncertainty_split(args.max_rows)
    feats = Features(args.encoder, args.cache)
    fams = families(feats.depth)
    rows = []
    for fam in fams if not args.latency_only else []:
        row = {"router": fam.name, **quality(fam, truths, uncertainty, feats, args)}
        rows.append(row)
        _log(f"{fam.name}: {_short(row)}")
    rows += reference_rows(truths, uncertainty, args) if not args.latency_only else [
        {"router": f.name, "mean APGR": float("nan")} for f in fams]
    lat = latency_rows(fams, feats, args)
    for row in rows:
        row.update(lat.get(row["router"], {}))
    mark_pareto(rows)
    wall = time.time() - started
    text = table(rows, args, wall)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "routers.md").write_text(text)
    (args.out / "routers.json").write_text(json.dumps({"rows": rows, "wall_s": wall,
                                                       "command": args.command}, indent=1,
                                                      default=float) + "\n")
    return 0


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = bench_args.parser(__doc__, QUICK)
    bench_args.add_data_dir(parser, "--routellm-dir", "CONFROUTE_ROUTELLM_DIR", "routellm")
    parser.add_argument("--encoder", default="minilm", help="encoder the families are cut from")
    parser.add_argument("--max-rows", type=int, help="prompts per benchmark (seeded subsample)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, help="latency runs per shape")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--latency-only", action="store_true",
                        help="time the shapes only (quality columns left empty)")
    bench_args.add_seed_cache_out(parser, cache="bench/.cache/routers")
    return bench_args.parse(parser, argv, "routers.py", QUICK, FULL)


# --- quality ----------------------------------------------------------------------------------


def head(fam: Family, seed: int) -> Any:
    """The scikit-learn head of a family (a pipeline with predict_proba)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    # One fixed C for every family (no inner search): on 2 loaded cores an inner CV per fold
    # cost minutes per family; C=0.1 on standardised features is a moderate L2 penalty.
    lr = LogisticRegression(C=0.1, max_iter=1000)
    if fam.features == "tfidf":
        return make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
                             lr)
    if fam.head == "mlp":
        return make_pipeline(StandardScaler(), MLPClassifier(
            (128,), alpha=1e-2, early_stopping=True, max_iter=100, random_state=seed))
    return make_pipeline(StandardScaler(), lr)


def fit_score(fam: Family, x_train: Any, y_train: np.ndarray, x_test: Any, seed: int
              ) -> np.ndarray:
    if len(np.unique(y_train)) < 2:
        return np.full(len(x_test), float(np.mean(y_train)))
    model = head(fam, seed).fit(x_train, y_train)
    return model.predict_proba(x_test)[:, 1]


def benchmark_scores(fam: Family, truths: dict[str, GroundTruth], feats: Features,
                     args: argparse.Namespace) -> dict[str, np.ndarray]:
    """Out-of-fold scores on GSM8K and MMLU (k-fold CV) and transfer scores on MT-Bench."""
    out = {}
    for name in ("gsm8k", "mmlu"):
        truth = truths[name]
        x, y = matrix(fam, feats, truth.prompts), truth.labels()
        fold = protocols.kfold_assignment(len(truth), args.folds, args.seed)
        scores = np.zeros(len(truth))
        for f in range(args.folds):
            tr, te = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
            scores[te] = fit_score(fam, _take(x, tr), y[tr], _take(x, te), args.seed)
        out[name] = scores
    # Per-benchmark matrices, joined: the cached features of each benchmark are reused.
    parts = [matrix(fam, feats, truths[n].prompts) for n in ("mmlu", "gsm8k")]
    train = parts[0] + parts[1] if isinstance(parts[0], list) else np.concatenate(parts)
    y = np.concatenate([truths["mmlu"].labels(), truths["gsm8k"].labels()])
    out["mt-bench"] = fit_score(fam, train, y, matrix(fam, feats, truths["mt-bench"].prompts),
                                args.seed)
    return out


def quality(fam: Family, truths: dict[str, GroundTruth], uncertainty: dict[str, Any],
            feats: Features, args: argparse.Namespace) -> dict[str, float]:
    row = summarise(benchmark_scores(fam, truths, feats, args), truths)
    train, val = uncertainty["train"], uncertainty["val"]
    scores = fit_score(fam, matrix(fam, feats, train["prompt"]), train["label"],
                       matrix(fam, feats, val["prompt"]), args.seed)
    return {**row, **auroc_cells(scores, val)}


def summarise(scores: dict[str, np.ndarray], truths: dict[str, GroundTruth]
              ) -> dict[str, float]:
    row = {}
    for name, values in scores.items():
        truth = truths[name]
        s = metrics.summary(metrics.sweep(values, truth.quality_edge, truth.quality_cloud),
                            (0.5,))
        row[f"{name} APGR"], row[f"{name} CPT50"] = s["apgr"], s["cpt_50"]
    row["mean APGR"] = float(np.mean([row[f"{n} APGR"] for n in BENCHMARKS]))
    return row


def auroc_cells(scores: np.ndarray, val: dict[str, Any]) -> dict[str, float]:
    """Pooled AUROC and the mean within-source AUROC (sources holding both labels)."""
    y, source = val["label"] >= 0.5, val["source"]
    within = [binary_auroc(y[source == s], scores[source == s]) for s in np.unique(source)
              if 0 < y[source == s].sum() < (source == s).sum()]
    return {"SE AUROC": binary_auroc(y, scores), "SE AUROC within": float(np.mean(within))}


def group_prior(train_groups: np.ndarray, train_labels: np.ndarray, test_groups: np.ndarray,
                strength: float = 5.0) -> np.ndarray:
    """Mean training label per group, shrunk toward the overall mean by `strength` pseudo-rows
    (additive smoothing); unseen groups get the overall mean. Local to this bench until
    confroute.evaluation.priors exists."""
    overall = float(np.mean(train_labels))
    table = {g: (train_labels[train_groups == g].sum() + strength * overall)
             / ((train_groups == g).sum() + strength) for g in np.unique(train_groups)}
    return np.array([table.get(g, overall) for g in test_groups], dtype=float)


def reference_rows(truths: dict[str, GroundTruth], uncertainty: dict[str, Any],
                   args: argparse.Namespace) -> list[dict[str, Any]]:
    """Prior, random (mean of 10 seeds) and oracle on the same rows and folds."""
    prior, oracle, random = {}, {}, {}
    for name in ("gsm8k", "mmlu"):
        truth, groups = truths[name], _groups(truths[name])
        fold = protocols.kfold_assignment(len(truth), args.folds, args.seed)
        prior[name] = np.full(len(truth), 0.5)  # one group (GSM8K): a constant, APGR 0.5
        for f in range(args.folds if len(np.unique(groups)) > 1 else 0):
            tr, te = fold != f, fold == f
            prior[name][te] = group_prior(groups[tr], truth.labels()[tr], groups[te])
    prior["mt-bench"] = np.full(len(truths["mt-bench"]), 0.5)  # no group shared with training
    for name, truth in truths.items():
        oracle[name] = metrics.oracle_scores(truth.quality_edge, truth.quality_cloud)
        random[name] = np.random.default_rng(args.seed).random(len(truth))
    rows = []
    train, val = uncertainty["train"], uncertainty["val"]
    se_prior = group_prior(train["source"], train["label"], val["source"])
    for label, scores, se in (("prior (MMLU subject; SE: source)", prior, se_prior),
                              ("oracle", oracle, None), ("random", random, None)):
        row = {"router": label, **summarise(scores, truths)}
        if label == "random":
            for name, truth in truths.items():
                mean, _ = metrics.random_average(truth.quality_edge, truth.quality_cloud, 10,
                                                 (0.5,))
                row[f"{name} APGR"], row[f"{name} CPT50"] = mean["apgr"], mean["cpt_50"]
            row["mean APGR"] = float(np.mean([row[f"{n} APGR"] for n in BENCHMARKS]))
        if se is not None:
            row.update(auroc_cells(se, val))
        rows.append(row)
    return rows


# --- latency, Pareto front, table ---------------------------------------------------------------


def latency_rows(fams: list[Family], feats: Features, args: argparse.Namespace
                 ) -> dict[str, dict[str, float]]:
    """p50 batch-1 64-token latency of each family's exported int8 ONNX graph, as a ratio to the
    full-depth int8 router measured in the same run; parameters and artifact MB."""
    from latency import measure_shape, tfidf_latency

    shapes: dict[str, dict[str, Any]] = {}
    base = {"encoder": feats.source, "layers": None}  # the full depth, whatever the default
    reference = measure_shape(base, args.threads, args.repeats)
    static = {"encoder": str(feats.static_dir())}
    out = {}
    for fam in fams:
        if fam.model is None:
            continue
        settings = {**base, **fam.model, **(static if fam.features == "static" else {})}
        key = json.dumps(settings, sort_keys=True)
        if key not in shapes:
            shapes[key] = measure_shape(settings, args.threads, args.repeats)
            _log(f"latency {fam.name}: {shapes[key]['p50 ms']:.3f} ms")
        out[fam.name] = dict(shapes[key])
    # Timed again after the shapes: load on a shared machine drifts; the ratio uses the mean.
    again = measure_shape(base, args.threads, args.repeats)
    reference["p50 ms runs"] = [reference["p50 ms"], again["p50 ms"]]
    reference["p50 ms"] = (reference["p50 ms"] + again["p50 ms"]) / 2
    texts = [f"What is {i} plus {2 * i}? Explain the steps of the sum." for i in range(300)]
    tfidf = head(Family("tfidf", "tfidf"), 0).fit(texts, np.arange(300) % 2)
    out["TF-IDF + LR (lexical)"] = tfidf_latency(tfidf, args.repeats)
    for row in out.values():
        row["latency x"] = row["p50 ms"] / reference["p50 ms"]
    _log(f"reference (full depth, int8) p50 ms before / after: {reference['p50 ms runs']}")
    return out


def mark_pareto(rows: list[dict[str, Any]]) -> None:
    """`pareto` = no other measured row has both higher mean APGR and lower latency."""
    timed = [r for r in rows if "latency x" in r]
    for r in timed:
        r["pareto"] = not any(o["mean APGR"] >= r["mean APGR"] and o["latency x"] <= r["latency x"]
                              and (o["mean APGR"], o["latency x"]) != (r["mean APGR"],
                                                                      r["latency x"])
                              for o in timed)


COLUMNS = ("gsm8k APGR", "gsm8k CPT50", "mmlu APGR", "mmlu CPT50", "mt-bench APGR",
           "mt-bench CPT50", "mean APGR", "SE AUROC", "SE AUROC within", "latency x", "p50 ms",
           "params M", "artifact MB")


def table(rows: list[dict[str, Any]], args: argparse.Namespace, wall: float) -> str:
    lines = [f"Routers on the same folds ({args.folds}-fold CV on GSM8K / MMLU, MT-Bench trained "
             f"on MMLU+GSM8K, SE = smollm2-uncertainty val AUROC); latency: batch 1, 64 tokens, "
             f"int8 ONNX, {args.threads} threads, p50 of {args.repeats}, ratio to the "
             f"full-depth int8 router; * = Pareto front (mean APGR vs latency).",
             f"CPU: {cpu_summary()}. Wall time {wall:.0f} s. Command: {args.command}", "",
             "| router | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for row in rows:
        name = row["router"] + (" *" if row.get("pareto") else "")
        cells = [_cell(row.get(c), c) for c in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(value: Any, column: str) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    if column in ("latency x",):
        return f"{value:.3f}"
    if column in ("p50 ms", "params M", "artifact MB"):
        return f"{value:.3g}"
    return f"{value:.3f}"


# --- helpers ------------------------------------------------------------------------------------


def _subsample(truth: GroundTruth, max_rows: int | None, seed: int) -> GroundTruth:
    if max_rows is None or len(truth) <= max_rows:
        return truth
    keep = np.sort(np.random.default_rng(seed).choice(len(truth), max_rows, replace=False))
    return truth.subset(keep)


def _uncertainty_split(max_rows: int | None) -> dict[str, Any]:
    from confroute.config import DataConfig
    from confroute.dataset import schema

    data = schema.load(DataConfig(source="smollm2-uncertainty"))
    out = {}
    for split in ("train", "val"):
        frame = data.split(split)
        if max_rows is not None and split == "train":
            frame = frame.sample(min(len(frame), max_rows), random_state=0)
        out[split] = {"prompt": frame["prompt"].tolist(), "source": frame["source"].to_numpy(),
                      "label": frame["label"].to_numpy(dtype=float)}
    return out


def _groups(truth: GroundTruth) -> np.ndarray:
    """MMLU subject from the id (mmlu/<subject>/<i>); one group elsewhere."""
    return np.array([i.split("/")[1] if i.startswith("mmlu/") else "all" for i in truth.ids])


def _take(x: Any, index: np.ndarray) -> Any:
    return [x[i] for i in index] if isinstance(x, list) else x[index]


def _digest(parts: list[Any]) -> str:
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:20]


def _short(row: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.3f}" for k, v in row.items() if k.endswith(("APGR", "AUROC")))


def _log(message: str) -> None:
    print(f"[routers {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    bench_args.run(main, "routers.py")
