"""bench/irt.py's results file: bench/results/irt.md (tables) and irt.json (every figure)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any

import irt_stats as st
import numpy as np
import report_io

from confroute.evaluation import report as reporting

GOAL_GAP, GOAL_COST = 0.05, 0.60  # issue 26: +0.05 APGR over the prior; 95% at <= 60% cost


def write(args: argparse.Namespace, results: dict[str, Any], info: dict[str, Any],
          seconds: float) -> None:
    run = report_io.stamp(args.command, seconds)
    reporting.write_json({**run, "data": info, **results}, args.out / "irt.json")
    parts = [_header(args, run, info), _goals(results), _pairs(results["pairs"]),
             _first(results["pairs"]), _ladder(results["ladder"]),
             _transfer(results["transfer"]) if results["transfer"] else
             "(c) A new pair training never saw: not run (`--no-transfer`).\n",
             _runs(results["runs"]),
             _knn(results.get("knn_choices", []))]
    (args.out / "irt.md").write_text("\n".join(parts))


def _header(args, run: dict[str, Any], info: dict[str, Any]) -> str:
    return (f"Every model's outcomes as supervision, and what a pair's score estimates (MMLU-Pro, "
            f"real 5-shot CoT outcomes of {info['models_in_file']} models). Generated "
            f"{report_io.generated(run)}. "
            f"{info['questions']} questions, split by {info['split']}. Routers: confroute's "
            "`micro` preset (a model2vec static table distilled from MiniLM, fine-tuned with "
            "the heads), trained with `confroute.training.fit`, scored on the test questions "
            "only: `pair only` (one head per routed model, as bench/ladders.py's `confroute "
            "micro`), `aux heads` (plus one head for each of the file's other models, "
            "`data.auxiliary_models`), `irt` (routed and auxiliary models through the IRT head, "
            f"`model.head_form irt`, {args.irt_dims} dims); `knn (tuned)`, the issue's "
            "baseline: a kNN on the frozen MiniLM sentence embeddings of the project's baselines, "
            "k, distance and weighting chosen on the validation questions (bench/irt_knn.py, "
            "choices at the end). Prior = each model's per-category "
            "rate on the non-test questions, scored the same way. [95% paired bootstrap CI over "
            f"test questions, {args.bootstrap} resamples]; random = mean of "
            f"{args.random_seeds} seeds.\n\nPair scores: " + "; ".join(
                f"`{k}` = {v}" for k, v in st.CHOICE_NOTE.items()) + ".\n")


def _scored(result: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(pair score, scorer, its figures) of each row of a pair or transfer result's scores."""
    for choice, rows in result["scores"].items():
        for name, row in rows.items():
            yield choice, name, row


def _ci(row: dict[str, Any], key: str, percent: bool = False, sign: bool = False) -> str:
    value = row.get(key)
    if value is None:
        return ""
    form = (lambda v: f"{v:+.1%}" if sign else f"{v:.1%}") if percent else \
        (lambda v: f"{v:+.3f}" if sign else f"{v:.3f}")
    text = "never" if not np.isfinite(value) else form(value)
    ci = (row.get("ci") or {}).get(key)
    return f"{text} [{form(ci['low'])}, {form(ci['high'])}]" if ci else text


def _goals(results: dict[str, Any]) -> str:
    lines = report_io.table_head(
        f"Goals (issue 26). (1) MMLU-Pro pairs: router - category prior with CI > 0 on all "
        f"three, mean >= +{GOAL_GAP:.2f} APGR. (2) Llama-2 ladder: 95% of the 70B's quality "
        f"at <= {GOAL_COST:.0%} of its cost.",
        ["router", "pair score", "gaps to the prior (APGR, three pairs)", "mean", "goal (1)"])
    pairs = results["pairs"]
    for choice in st.CHOICES:
        for name in pairs[0]["scores"][choice]:
            if name == "prior":
                continue
            rows = [p["scores"][choice][name] for p in pairs]
            gaps = [r["apgr - prior"] for r in rows]
            clear = all(r["ci"]["apgr - prior"]["low"] > 0 for r in rows if "ci" in r)
            met = clear and np.mean(gaps) >= GOAL_GAP
            lines.append(f"| {name} | {choice} | " + ", ".join(
                _ci(r, "apgr - prior", sign=True) for r in rows)
                + f" | {np.mean(gaps):+.3f} | {'met' if met else 'not met'} |")
    lad = results["ladder"]
    lines += ["", "| router | rule | Llama-2: cost at 95% of the 70B's accuracy | goal (2) |",
              "|---|---|---|---|"]
    for policy in ("threshold", "utility"):
        for name, row in lad[policy].items():
            cost = row["cost_at_95"]
            lines.append(f"| {name} | {policy} | {_ci(row, 'cost_at_95', percent=True)} | "
                         f"{'met' if cost <= GOAL_COST else 'not met'} |")
    return report_io.text(lines)


def _pairs(pairs: list[dict[str, Any]]) -> str:
    lines = report_io.table_head(
        "(a) Pairs: APGR (cloud-call share axis), within-category APGR (module docstring of "
        "bench/irt_stats.py: the prior scores 0.500 by construction) and cost at 95% of the "
        "cloud's accuracy (share of its cost), each router's gap to the prior under the "
        "same pair score.",
        ["edge -> cloud", "pair score", "scorer", "APGR", "- prior", "within", "within - prior",
         "cost at 95%", "- prior"])
    for pair in pairs:
        acc = pair["accuracy"]
        lines.append(f"| {' -> '.join(pair['pair'])} ({pair['test_questions']} test q.; "
                     f"accuracy {acc[0]:.3f} / {acc[1]:.3f}) | | random | "
                     f"{pair['random']['apgr']:.3f} | | {pair['random']['within']:.3f} | | "
                     f"{pair['random']['cost_at_95']:.1%} | |")
        lines.append(f"| | | oracle | {pair['oracle']['apgr']:.3f} | | "
                     f"{pair['oracle']['within']:.3f} | | {pair['oracle']['cost_at_95']:.1%} | |")
        for choice, name, row in _scored(pair):
            lines.append(f"| | {choice} | {name} | {_ci(row, 'apgr')} | "
                         f"{_ci(row, 'apgr - prior', sign=True)} | {_ci(row, 'within')} | "
                         f"{_ci(row, 'within - prior', sign=True)} | "
                         f"{_ci(row, 'cost_at_95', percent=True)} | "
                         f"{_ci(row, 'cost_at_95 - prior', percent=True, sign=True)} |")
    return report_io.text(lines)


def _first(pairs: list[dict[str, Any]]) -> str:
    lines = report_io.table_head(
        f"(d) What each pair score sends up first: outcomes of the {st.FIRST_SHARE:.0%} of "
        "test questions it scores highest (both fail: the cloud call buys nothing).",
        ["edge -> cloud", "pair score", "scorer", "both fail", "cloud only right",
         "edge only right", "both right"])
    for pair in pairs:
        head = " -> ".join(pair["pair"])
        o = pair["oracle"]["first_sent"]
        lines.append(f"| {head} | | oracle | {o['both fail']:.1%} | {o['cloud only']:.1%} | "
                     f"{o['edge only']:.1%} | {o['both right']:.1%} |")
        for choice, name, row in _scored(pair):
            f = row["first_sent"]
            lines.append(f"| | {choice} | {name} | {f['both fail']:.1%} | "
                         f"{f['cloud only']:.1%} | {f['edge only']:.1%} | "
                         f"{f['both right']:.1%} |")
    return report_io.text(lines)


def _ladder(lad: dict[str, Any]) -> str:
    acc = ", ".join(f"{m} {a:.3f} at {c:.0%}" for m, a, c in zip(
        lad["ladder"], lad["accuracy"], lad["cost_share_of_best"], strict=True))
    lines = report_io.table_head(
        f"(b) Ladder {' -> '.join(lad['ladder'])} ({lad['test_questions']} test q.; "
        f"accuracy and cost share alone: {acc}): normalised area (0 = cheapest alone, 1 = "
        "best alone), cost at 95% of the best model's accuracy (share of its cost), "
        "within-category area; gaps to the prior under the same rule.",
        ["rule", "scorer", "area", "- prior", "within", "within - prior", "cost at 95%",
         "- prior"])
    for policy in ("threshold", "utility"):
        for name, row in lad[policy].items():
            lines.append(f"| {policy} | {name} | {_ci(row, 'area')} | "
                         f"{_ci(row, 'area - prior', sign=True)} | "
                         f"{_ci(row, 'within')} | "
                         f"{_ci(row, 'within - prior', sign=True)} | "
                         f"{_ci(row, 'cost_at_95', percent=True)} | "
                         f"{_ci(row, 'cost_at_95 - prior', percent=True, sign=True)} |")
    return report_io.text(lines)


def _transfer(transfer: list[dict[str, Any]]) -> str:
    lines = report_io.table_head(
        "(c) A new pair training never saw: routers trained on another pair and the file's "
        "other models (none of the new pair's), then `confroute.training.adapt.adapt`: "
        "encoder and prompt head frozen, the two new models' parameters fitted (MAP, "
        "prior from the trained models) on a few hundred labelled training questions of "
        "the new pair; beside a pair router trained from scratch on those questions (every "
        "tenth held out for early stopping), the prior fitted on them, and in-distribution "
        "routers trained on all the pair's training questions.",
        ["new pair (base pair; adapt seconds)", "pair score", "scorer", "APGR", "- prior",
         "- prior on the few labels", "within - prior"])
    for t in transfer:
        seconds = ", ".join(f"{k} {v:.1f} s" for k, v in t["adapt_seconds"].items())
        few = f"prior on {t['few_labels']} labels"
        lines.append(f"| {' -> '.join(t['pair'])} (base {' -> '.join(t['base_pair'])}; "
                     f"{seconds}) | | | | | | |")
        for choice, name, row in _scored(t):
            lines.append(f"| | {choice} | {name} | {_ci(row, 'apgr')} | "
                         f"{_ci(row, 'apgr - prior', sign=True)} | "
                         f"{_ci(row, f'apgr - {few}', sign=True)} | "
                         f"{_ci(row, 'within - prior', sign=True)} |")
    return report_io.text(lines)


def _runs(runs: list[dict[str, Any]]) -> str:
    lines = report_io.table_head(
        "Routers as trained (val = the held-out slice of the training questions; macro "
        "AUROC over the routed heads; the category prior's on the same questions):",
        ["router", "models", "auxiliary", "train / val q.", "best step / steps", "val AUROC",
         "prior val AUROC", "seconds"])
    seen = set()
    for r in runs:
        key = (r["router"], tuple(r["models"]), r["train_rows"])
        if key in seen:  # a run scored twice (an in-distribution reference of the transfer)
            continue
        seen.add(key)
        lines.append(f"| {r['router']} | {' -> '.join(r['models'])} | {r['auxiliary']} | "
                     f"{r['train_rows']} / {r['val_rows']} | {r['best_step']} / "
                     f"{r['global_steps']} | {r['val_auroc']:.3f} | {r['val_prior_auroc']} | "
                     f"{r['train_seconds']:.0f} |")
    return report_io.text(lines)


def _knn(choices: list[dict[str, Any]]) -> str:
    lines = report_io.table_head(
        "The tuned kNN's choices (bench/irt_knn.py: the grid's lowest validation Brier score "
        "of the routed models' outcomes; the mean of the training outcomes beside it), "
        "refitted on the training and validation questions:",
        ["models", "fitted on q.", "k", "distance", "weighting", "val Brier",
         "val Brier of the mean"])
    for c in choices:
        lines.append(f"| {' -> '.join(c['models'])} | {c['train_val_questions']} | {c['k']} | "
                     f"{c['distance']} | {c['weights']} | {c['val_brier']:.4f} | "
                     f"{c['val_brier_of_the_mean']:.4f} |")
    return report_io.text(lines)
