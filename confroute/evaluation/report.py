"""One evaluation: scores + ground truth -> a JSON-ready report, a markdown table, a PNG plot.

The report holds the metrics with bootstrap CIs, the operating point at each CPT level (quality,
threshold, USD), the all-edge / all-cloud / oracle / random references and the curve itself
(thinned to at most `CURVE_POINTS` points), so a reader can redraw or recheck everything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from confroute import files
from confroute.errors import DataError, require
from confroute.evaluation import metrics
from confroute.evaluation.costs import CostConfig, per_prompt_costs
from confroute.evaluation.groundtruth import GroundTruth

CURVE_POINTS = 201


def align_scores(truth: GroundTruth, prompt_ids: Sequence[Any] | np.ndarray,
                 scores: Sequence[float] | np.ndarray) -> np.ndarray:
    """Scores reordered to the ground truth's rows; any mismatch is an error saying which."""
    ids = np.asarray(prompt_ids, dtype=object).astype(str)
    values = np.asarray(scores, dtype=float)
    if len(ids) != len(values):
        raise DataError(f"scores file: {len(ids)} ids but {len(values)} scores")
    unique, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise DataError(f"scores repeat prompt id(s) {', '.join(unique[counts > 1][:5])}; "
                        "each prompt needs exactly one score")
    position = {pid: i for i, pid in enumerate(ids)}
    unknown = sorted(set(position) - set(truth.ids))
    missing = [pid for pid in truth.ids if pid not in position]
    if unknown or missing:
        raise DataError(
            f"scores do not match ground truth '{truth.name}' ({len(values)} scores, "
            f"{len(truth)} prompts): {len(unknown)} unknown id(s) {unknown[:3]}, "
            f"{len(missing)} prompt(s) without a score {missing[:3]}. Score exactly the prompts "
            "of the ground truth (save them with --save-scores to see the expected ids)")
    aligned = values[[position[pid] for pid in truth.ids]]
    bad = np.flatnonzero(~np.isfinite(aligned))
    if bad.size:
        raise DataError(f"{bad.size} score(s) are NaN or infinite, e.g. for prompt "
                        f"{truth.ids[bad[0]]}; every prompt needs a finite score")
    return aligned


def evaluate(scores: np.ndarray, truth: GroundTruth, router: str = "router",
             cost: CostConfig | None = None, levels: Sequence[float] = metrics.DEFAULT_CPT_LEVELS,
             bootstrap: int = 1000, seed: int = 0,
             prior: tuple[str, np.ndarray] | None = None) -> dict[str, Any]:
    """The full report of one router's scores (aligned with `truth`'s rows).

    `prior` = (its name, its scores aligned with `truth`): a group prior (see
    `confroute.evaluation.priors`) reported as a reference beside oracle and random, with its own
    CI and the router's APGR gap over it (paired bootstrap CI).
    """
    scores = np.asarray(scores, dtype=float)
    if len(scores) != len(truth):
        raise DataError(f"{len(scores)} scores for {len(truth)} prompts of '{truth.name}'; "
                        "use align_scores to match them by id")
    costs = per_prompt_costs(truth, cost or CostConfig())
    curve = metrics.sweep(scores, truth.quality_edge, truth.quality_cloud,
                          cost_edge=None if costs is None else costs[0],
                          cost_cloud=None if costs is None else costs[1])
    oracle = metrics.sweep(metrics.oracle_scores(truth.quality_edge, truth.quality_cloud),
                           truth.quality_edge, truth.quality_cloud)
    values = metrics.summary(curve, levels)
    report: dict[str, Any] = {
        "router": router, "ground_truth": truth.name, "prompts": len(truth),
        "edge_model": truth.edge_model, "cloud_model": truth.cloud_model,
        "quality_edge": curve.quality_edge, "quality_cloud": curve.quality_cloud,
        "metrics": values,
        "operating_points": {metrics.cpt_key(lv): metrics.at_fraction(curve, values[
            metrics.cpt_key(lv)]) for lv in levels if np.isfinite(values[metrics.cpt_key(lv)])},
        "references": {"oracle": metrics.summary(oracle, levels),
                       "random": {"apgr": 0.5, **{metrics.cpt_key(lv): lv for lv in levels}}},
        "ground_truth_info": truth.info,
        "curve": _thin(curve),
        "oracle_curve": _thin(oracle),
    }
    by_group = _by_group(scores, truth, levels)
    if by_group:
        report["by_source"] = by_group
    if bootstrap:
        report["ci"] = metrics.bootstrap(scores, truth.quality_edge, truth.quality_cloud,
                                         bootstrap, seed, levels)
    if prior is not None:
        report["references"]["prior"] = _prior_reference(scores, truth, prior, levels,
                                                          bootstrap, seed)
    if curve.cost is not None:
        report["cost_usd"] = {"all_edge": float(curve.cost[0]), "all_cloud": float(curve.cost[-1]),
                              "prices_per_mtok": vars(cost or CostConfig()),
                              "tokens": truth.info.get("tokens", "given")}
    return report


def _prior_reference(scores: np.ndarray, truth: GroundTruth, prior: tuple[str, np.ndarray],
                     levels: Sequence[float], bootstrap: int, seed: int) -> dict[str, Any]:
    from confroute.evaluation.priors import gap

    name, values = prior[0], np.asarray(prior[1], dtype=float)
    if values.shape != scores.shape:
        raise DataError(f"prior '{name}' has {values.shape} scores for {len(scores)} prompts")
    qe, qc = truth.quality_edge, truth.quality_cloud
    curve = metrics.sweep(values, qe, qc)
    out: dict[str, Any] = {"name": name, "metrics": metrics.summary(curve, levels),
                           "curve": _thin(curve)}
    if bootstrap:
        out["ci"] = metrics.bootstrap(values, qe, qc, bootstrap, seed, levels)
        out["router_minus_prior_apgr"] = gap(scores, values, qe, qc, bootstrap, seed)
    return out


def _by_group(scores: np.ndarray, truth: GroundTruth, levels: Sequence[float]
              ) -> dict[str, Any] | None:
    """Metrics per source when the ground truth pools several (e.g. 0/1 correctness and 1-10
    judge scores, whose pooled curve is dominated by the wider scale)."""
    if truth.groups is None or len(set(truth.groups)) < 2:
        return None
    out: dict[str, Any] = {}
    for group in sorted(set(truth.groups)):
        rows = truth.groups == group
        qe, qc = truth.quality_edge[rows], truth.quality_cloud[rows]
        entry: dict[str, Any] = {"prompts": int(rows.sum()), "quality_edge": float(qe.mean()),
                                 "quality_cloud": float(qc.mean())}
        try:
            entry["metrics"] = metrics.summary(metrics.sweep(scores[rows], qe, qc), levels)
        except DataError as exc:  # e.g. both models equally good on this source
            entry["metrics"] = None
            entry["note"] = str(exc)
        out[group] = entry
    return out


def _thin(curve: metrics.Curve) -> dict[str, list[float]]:
    keep = np.unique(np.linspace(0, len(curve.fraction) - 1,
                                 min(CURVE_POINTS, len(curve.fraction))).round().astype(int))
    out = {"fraction": curve.fraction[keep].tolist(), "quality": curve.quality[keep].tolist(),
           "threshold": [None if not np.isfinite(t) else float(t) for t in curve.threshold[keep]]}
    if curve.cost is not None:
        out["cost_usd"] = curve.cost[keep].tolist()
    return out


def markdown(reports: Sequence[Mapping[str, Any]]) -> str:
    """A table: one row per report, metrics with their 95% CIs where computed."""
    levels = [k for k in reports[0]["metrics"] if k.startswith("cpt_")]
    head = ["ground truth", "router", "APGR", *[f"CPT({k[4:]}%)" for k in levels], "prompts"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in reports:
        ci = r.get("ci", {})
        apgr = format_cell(r["metrics"]["apgr"], ci.get("apgr"), False)
        cells = [r["ground_truth"], r["router"], apgr]
        cells += [format_cell(r["metrics"][k], ci.get(k), True) for k in levels]
        of = (r.get("ground_truth_info") or {}).get("subset_of")
        prompts = f"{r['prompts']} of {of} (sample)" if of else str(r["prompts"])
        lines.append("| " + " | ".join([*cells, prompts]) + " |")
        prior = (r.get("references") or {}).get("prior")
        if prior:
            pci = prior.get("ci", {})
            cells = [r["ground_truth"], prior["name"],
                     format_cell(prior["metrics"]["apgr"], pci.get("apgr"), False),
                     *[format_cell(prior["metrics"][k], pci.get(k), True) for k in levels]]
            lines.append("| " + " | ".join([*cells, prompts]) + " |")
        for group, entry in (r.get("by_source") or {}).items():
            if entry["metrics"] is None:
                continue
            cells = [f"{r['ground_truth']} / {group}", r["router"],
                     format_cell(entry["metrics"]["apgr"], None, False),
                     *[format_cell(entry["metrics"][k], None, True) for k in levels]]
            lines.append("| " + " | ".join([*cells, str(entry["prompts"])]) + " |")
    return "\n".join(lines) + "\n"


def format_cell(value: float, ci: Mapping[str, float] | None, percent: bool) -> str:
    """`0.612 [0.500, 0.700]` or `40.0% [..]`; `never` for a level the curve never reaches."""
    fmt = (lambda v: f"{100 * v:.1f}%") if percent else (lambda v: f"{v:.3f}")
    if not np.isfinite(value):
        return "never"
    text = fmt(value)
    if ci:
        text += f" [{fmt(ci['low'])}, {fmt(ci['high'])}]"
    return text


def plot(reports: Sequence[Mapping[str, Any]], path: str | Path, title: str | None = None) -> Path:
    """Quality vs cloud fraction for each report (same ground truth), with random, oracle,
    all-edge and all-cloud references drawn."""
    matplotlib = require("matplotlib", "train")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = {r["ground_truth"] for r in reports}
    if len(names) != 1:
        raise DataError(f"one plot shows one ground truth; got {sorted(names)}")
    first = reports[0]
    qe, qc = first["quality_edge"], first["quality_cloud"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in reports:
        c = r["curve"]
        ax.plot(np.array(c["fraction"]) * 100, c["quality"],
                label=f"{r['router']} (APGR {r['metrics']['apgr']:.3f})")
    prior = (first.get("references") or {}).get("prior")
    if prior and "curve" in prior:
        ax.plot(np.array(prior["curve"]["fraction"]) * 100, prior["curve"]["quality"],
                color="tab:olive", linestyle="--",
                label=f"{prior['name']} (APGR {prior['metrics']['apgr']:.3f})")
    oracle = first.get("oracle_curve")
    if oracle:
        ax.plot(np.array(oracle["fraction"]) * 100, oracle["quality"], "k:", label="oracle")
    ax.plot([0, 100], [qe, qc], color="grey", linestyle="-.", label="random (expected)")
    ax.axhline(qe, color="tab:grey", linestyle="--", linewidth=0.8,
               label=f"edge: {first['edge_model']}")
    ax.axhline(qc, color="tab:red", linestyle="--", linewidth=0.8,
               label=f"cloud: {first['cloud_model']}")
    ax.set_xlabel("prompts sent to the cloud model (%)")
    ax.set_ylabel("mean quality")
    ax.set_title(title or f"Routing quality vs cloud calls ({first['ground_truth']})")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    with files.replacing(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
    return path


def write_json(data: Any, path: str | Path) -> Path:
    # NaN (a CPT level never reached) becomes null: strict JSON readers reject NaN
    return files.write_json(path, _finite_or_null(data), indent=1, default=_jsonable,
                            allow_nan=False)


def _finite_or_null(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _finite_or_null(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_null(v) for v in value]
    if isinstance(value, float | np.floating) and not np.isfinite(value):
        return None
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
