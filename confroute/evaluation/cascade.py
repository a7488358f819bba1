"""Evaluating the cascade (`confroute.cascade`): does the edge's own uncertainty, read after it
answered, find its failures better than the pre-generation router alone?

Rows: a table that carries the edge's evidence per prompt (`greedy_logprob_edge`, the mean
token log-prob of its greedy answer; `se_edge`, semantic entropy over its samples;
`correct_edge`, whether the greedy answer was right; `source`), e.g. the bundled
`smollm2-uncertainty` and `broad-smollm2`, restricted to prompts the router did not train on.
The target is the edge's failure (`correct_edge == 0`).

Protocol: the stage-2 uncertainty model is cross-fitted (k seeded folds over the evaluated rows:
each fold is scored by a model fitted on the others), so no row is scored by a model that saw
its outcome; the curve's (t1, t2) are calibrated per fold on the other folds, one calibration
per target cloud share (`calibrate_cascade`), and applied to the held-out fold. AUROC is given
pooled and within each source (the mean over sources with both outcomes; a per-source prior is
0.5 there by construction), with a percentile bootstrap CI resampling prompts within sources.

The quality-vs-cloud-share curve assumes the cloud answers correctly (no cloud outcome exists
for these prompts): quality is the share of prompts answered right, the edge's where it kept
them. Cost is in cloud-call units: a cloud call costs 1, an edge generation `edge_cost`, paid
by every request stage 1 did not send direct (escalated ones pay both).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from confroute.cascade import EdgeEvidence, Measure, fit_uncertainty
from confroute.cascade_calibration import calibrate_cascade, outcomes, quality_and_cost
from confroute.errors import DataError
from confroute.stats import binary_auroc

COLUMNS = ("prompt", "source", "split", "correct_edge", "greedy_logprob_edge", "se_edge")
"""The columns a table needs."""

SIGNALS: dict[str, Measure | None] = {"router": None, "router + log-prob": "logprob",
                                      "router + SE": "se", "router + both": "both"}
"""The rows of the AUROC table: the stage-2 signals beside the router's score."""
RAW = ("edge log-prob alone", "edge SE alone")
"""Reference rows: the edge's raw signals, no router and no fitting (-mean log-prob, SE)."""
SHARES = (0.1, 0.2, 0.3, 0.4, 0.5)
"""Target cloud shares of the curve table."""


def evidence(table: Any) -> list[EdgeEvidence]:
    """Each row's `EdgeEvidence` from `greedy_logprob_edge` and `se_edge`."""
    return [EdgeEvidence(float(a), float(b)) for a, b in
            zip(table["greedy_logprob_edge"], table["se_edge"], strict=True)]


def folds(n: int, k: int = 5, seed: int = 0) -> np.ndarray:
    """A seeded fold id in [0, k) for each of n rows."""
    return np.random.default_rng(seed).permutation(np.arange(n) % k)


def cross_fitted(measure: Measure, scores: np.ndarray, ev: list[EdgeEvidence],
                 wrong: np.ndarray, fold: np.ndarray) -> np.ndarray:
    """Out-of-fold P(edge wrong) [n]: each fold scored by a model fitted on the others."""
    out = np.empty(len(scores))
    for f in np.unique(fold):
        test, train = fold == f, fold != f
        model = fit_uncertainty(measure, scores[train], [ev[i] for i in np.flatnonzero(train)],
                                wrong[train])
        out[test] = model(scores[test], [ev[i] for i in np.flatnonzero(test)])
    return out


def within_source(wrong: np.ndarray, values: np.ndarray, source: np.ndarray) -> float:
    """Mean AUROC over the sources holding both outcomes."""
    cells = [binary_auroc(wrong[source == s], values[source == s]) for s in np.unique(source)
             if 0 < wrong[source == s].sum() < (source == s).sum()]
    return float(np.mean(cells)) if cells else float("nan")


def within_ci(wrong: np.ndarray, values: np.ndarray, source: np.ndarray, samples: int = 500,
              seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap CI of `within_source`, resampling prompts within sources."""
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(source == s) for s in np.unique(source)]
    draws = []
    for _ in range(samples):
        rows = np.concatenate([g[rng.integers(0, len(g), len(g))] for g in groups])
        draws.append(within_source(wrong[rows], values[rows], source[rows]))
    low, high = np.nanpercentile(draws, [2.5, 97.5])
    return float(low), float(high)


def auroc_table(scores: np.ndarray, table: Any, k: int = 5, seed: int = 0) -> dict[str, Any]:
    """{signal: {pooled, within, within_ci, by_source}} for each of `SIGNALS` on `table`'s rows
    (router scores [n] aligned with them)."""
    wrong = 1.0 - np.asarray(table["correct_edge"], dtype=float)
    source = np.asarray(table["source"]).astype(str)
    ev, fold = evidence(table), folds(len(scores), k, seed)
    raw = [-np.asarray(table["greedy_logprob_edge"], dtype=float),
           np.asarray(table["se_edge"], dtype=float)]
    out = {}
    for name, measure in [*SIGNALS.items(), *zip(RAW, raw, strict=True)]:
        values = scores if measure is None else measure if isinstance(measure, np.ndarray) \
            else cross_fitted(measure, scores, ev, wrong, fold)
        out[name] = {"pooled": binary_auroc(wrong, values),
                     "within": within_source(wrong, values, source),
                     "within_ci": within_ci(wrong, values, source, seed=seed),
                     "by_source": {s: binary_auroc(wrong[source == s], values[source == s])
                                   for s in np.unique(source)}}
    return out


def curve_table(scores: np.ndarray, table: Any, prior: np.ndarray, measure: Measure = "both",
                shares: tuple[float, ...] = SHARES, edge_cost: float = 0.1, k: int = 5,
                seed: int = 0) -> dict[str, list[dict[str, float]]]:
    """{policy: [{share, quality, cost} per target share]} for the cascade (calibrated per fold
    on the other folds), the router alone, the per-source `prior` [n] (P(edge wrong) from
    training rows), random (expected) and the oracle, on `table`'s rows."""
    correct = np.asarray(table["correct_edge"], dtype=float)
    wrong, n = 1.0 - correct, len(scores)
    ev, fold = evidence(table), folds(n, k, seed)
    out: dict[str, list[dict[str, float]]] = {name: [] for name in (
        "cascade", "router", "prior", "random", "oracle")}
    for share in shares:
        out["cascade"].append(_cascade_point(measure, scores, ev, correct, fold, share,
                                             edge_cost))
        for name, values in (("router", scores), ("prior", prior), ("oracle", wrong)):
            out[name].append(_router_point(values, correct, share, edge_cost))
        out["random"].append({"share": share, "quality": (1 - share) * correct.mean() + share,
                              "cost": share + (1 - share) * edge_cost})
    return out


def _router_point(values: np.ndarray, correct: np.ndarray, share: float, edge_cost: float
                  ) -> dict[str, float]:
    """Pre-generation routing of the top `share` by value (ties broken by position)."""
    n = len(values)
    cloud = np.zeros(n, dtype=bool)
    # ties (a prior is one value per source) are broken at random, seeded
    order = np.lexsort((np.random.default_rng(0).random(n), -values))
    cloud[order[:round(share * n)]] = True
    return {"share": float(cloud.mean()), "quality": float(np.where(cloud, 1.0, correct).mean()),
            "cost": float(cloud.mean() + (1 - cloud.mean()) * edge_cost)}


def _cascade_point(measure: Measure, scores: np.ndarray, ev: list[EdgeEvidence],
                   correct: np.ndarray, fold: np.ndarray, share: float, edge_cost: float
                   ) -> dict[str, float]:
    direct = np.zeros(len(scores), dtype=bool)
    escalated = np.zeros(len(scores), dtype=bool)
    for f in np.unique(fold):
        test, train = np.flatnonzero(fold == f), np.flatnonzero(fold != f)
        model = fit_uncertainty(measure, scores[train], [ev[i] for i in train],
                                1.0 - correct[train])
        cal = calibrate_cascade(model, scores[train], [ev[i] for i in train], share,
                                edge_correct=correct[train], edge_cost=edge_cost, cloud_cost=1.0)
        u = model(scores[test], [ev[i] for i in test])
        direct[test], escalated[test] = outcomes(scores[test], u, cal.policy.t1, cal.policy.t2)
    quality, cost = quality_and_cost(direct, escalated, correct, np.ones(len(scores)),
                                     np.full(len(scores), edge_cost), np.ones(len(scores)))
    return {"share": float((direct | escalated).mean()), "direct": float(direct.mean()),
            "quality": float(quality or 0.0), "cost": float(cost or 0.0)}


def source_prior(train: Any, rows: Any) -> np.ndarray:
    """P(edge wrong) per source from the training rows (unseen sources: the overall rate)."""
    wrong = 1.0 - np.asarray(train["correct_edge"], dtype=float)
    source = np.asarray(train["source"]).astype(str)
    rates = {s: float(wrong[source == s].mean()) for s in np.unique(source)}
    return np.array([rates.get(s, float(wrong.mean())) for s in np.asarray(rows["source"])
                     .astype(str)])


def evaluate(router: Any, tables: dict[str, Any], split: str = "val", measure: Measure = "both",
             edge_cost: float = 0.1, k: int = 5) -> dict[str, Any]:
    """The AUROC and curve tables of `router` (a `confroute.runtime.Router`) on each of
    `tables` ({name: DataFrame with the evidence columns and `split`}), on its `split` rows;
    the prior is fitted on the other rows. Raises DataError for a table without those
    columns or rows."""
    out: dict[str, Any] = {"split": split, "measure": measure, "edge_cost": edge_cost,
                           "folds": k, "tables": {}}
    for name, frame in tables.items():
        missing = [c for c in COLUMNS if c not in frame.columns]
        rows = frame[frame["split"] == split] if not missing else frame.iloc[:0]
        train = frame[frame["split"] != split] if not missing else frame.iloc[:0]
        if missing or len(rows) < 2 * k:
            found = f"no {', '.join(missing)}" if missing else f"{len(rows)} '{split}' rows"
            raise DataError(f"table '{name}' needs the columns {', '.join(COLUMNS)} and at "
                            f"least {2 * k} '{split}' rows; found {found}")
        scores = router.score(list(rows["prompt"]))
        out["tables"][name] = {
            "rows": len(rows), "edge_accuracy": float(rows["correct_edge"].mean()),
            "auroc": auroc_table(scores, rows, k),
            "curve": curve_table(scores, rows, source_prior(train, rows), measure,
                                 edge_cost=edge_cost, k=k)}
    return out


def jsonable(result: dict[str, Any]) -> Any:
    """`result` with NaN (an AUROC of a source holding one outcome) as null, for JSON."""
    import json

    return json.loads(json.dumps(result), parse_constant=lambda _: None)


def markdown(result: dict[str, Any], goals: tuple[float, float] = (0.65, 0.72)) -> str:
    """The result as markdown tables: edge-failure AUROC per signal against `goals` (before
    generation, with the cascade), then quality and cost per cloud share per policy."""
    lines = []
    for name, t in result["tables"].items():
        lines += [f"### {name}: {t['rows']} {result['split']} prompts, edge accuracy "
                  f"{t['edge_accuracy']:.3f}", "",
                  "| signal | AUROC pooled | AUROC within source [95% CI] | goal | "
                  + " | ".join(next(iter(t["auroc"].values()))["by_source"]) + " |",
                  "|---|---|---|---|" + "---|" * len(next(iter(t["auroc"].values()))
                                                    ["by_source"])]
        for signal, a in t["auroc"].items():
            goal = goals[0] if signal == "router" else goals[1]
            mark = "met" if a["within"] >= goal else f"gap {goal - a['within']:.3f}"
            cell = "-" if signal in RAW else f">= {goal} ({mark})"
            lines.append(f"| {signal} | {a['pooled']:.3f} | {a['within']:.3f} "
                         f"[{a['within_ci'][0]:.3f}, {a['within_ci'][1]:.3f}] | {cell} | "
                         + " | ".join(f"{v:.3f}" for v in a["by_source"].values()) + " |")
        lines += ["", f"Quality (share answered right; the cloud assumed right) and cost "
                  f"(cloud calls = 1, an edge generation = {result['edge_cost']}) by target "
                  "cloud share:", "",
                  "| policy | " + " | ".join(f"{p['share']:.0%} quality / cost"
                                            for p in t["curve"]["random"]) + " |",
                  "|---|" + "---|" * len(t["curve"]["random"])]
        for policy, points in t["curve"].items():
            lines.append(f"| {policy} | " + " | ".join(
                f"{p['quality']:.3f} / {p['cost']:.3f}" for p in points) + " |")
        lines.append("")
    return "\n".join(lines)


def evaluate_request(request: Any) -> dict[str, Any]:
    """`confroute evaluate --cascade`: the tables of `evaluate` for `request.router` on
    `request.truth` (a bundled table with the edge's evidence, e.g. smollm2-uncertainty, or
    several joined by commas; `name:split` picks the split, default val), written to
    `request.out`/cascade.md and cascade.json. ConfigError without a router artifact,
    DataError for a table without the evidence."""
    import pandas as pd

    from confroute import files
    from confroute.dataset import tables as tables_io
    from confroute.dataset.builtin import builtin_path
    from confroute.errors import ConfigError
    from confroute.runtime import Router

    if request.router is None:
        raise ConfigError("--cascade needs --router ARTIFACT (it scores the prompts itself)")
    names = [n.strip() for n in str(request.truth).split(",") if n.strip()]
    splits = {n.partition(":")[2] or "val" for n in names}
    if len(splits) > 1:
        raise ConfigError(f"--truth gives the tables different splits ({', '.join(names)}); the "
                          "cascade evaluates one split of every table: give it once or the same")
    split = splits.pop() if splits else "val"
    tables = {}
    for name in (n.partition(":")[0] for n in names):
        path = builtin_path(name)
        if path is None and not Path(name).suffix:
            raise DataError(f"--truth {name!r} is neither a bundled table with the edge's "
                            f"evidence (smollm2-uncertainty, broad-smollm2) nor a table file "
                            f"with the columns {', '.join(COLUMNS)}")
        tables[name] = pd.read_parquet(path) if path is not None else tables_io.read(name)
    result = evaluate(Router.load(request.router, variant=request.variant), tables, split)
    request.out.mkdir(parents=True, exist_ok=True)
    files.write_text(request.out / "cascade.md", markdown(result) + "\n")
    files.write_json(request.out / "cascade.json", jsonable(result), indent=1)
    return result
