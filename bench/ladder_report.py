"""Tables, JSON and plots of bench/ladders.py (kept apart so each file stays one concept)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import report_io

from confroute.evaluation import report as reporting

GOAL_COST_SHARE = 0.60  # issue 13: 95% of the 70B's accuracy at <= 60% of its cost
GOAL_TRANSFER = 0.03  # issue 13: transfer within 0.03 APGR of the pair-specific router


def write(args: argparse.Namespace, results: dict[str, Any], prices: dict[str, tuple],
          price_source: str, info: dict[str, Any], seconds: float) -> None:
    """bench/results/ladders.{md,json} and one plot per ladder."""
    run = report_io.stamp(args.command, seconds)
    payload = {**run, "data": info,
               "prices_per_mtok": {m: {"input": p[0], "output": p[1]} for m, p in prices.items()},
               "price_source": price_source, **results}
    reporting.write_json(payload, args.out / "ladders.json")
    for result in results["ladders"]:
        plot(result, args.out / "plots" / f"ladder-{_slug(result['ladder'][0])}.png")
    text = "\n".join([_header(args, run, info, prices, price_source),
                      _pairs(results["pairs"]), _ladders(results["ladders"]),
                      _transfer(results["transfer"]), _confroute(results.get("confroute", []))])
    (args.out / "ladders.md").write_text(text)


def _header(args, run, info, prices, source) -> str:
    lines = [f"Routing among MMLU-Pro models (real 5-shot CoT outcomes). Generated "
             f"{report_io.generated(run)}. {info['questions']} questions, split by "
             f"{info['split']}; {info['features']} features; [95% bootstrap CI over test "
             f"questions, {args.bootstrap} resamples]; random = mean of {args.random_seeds} "
             "seeds.", "", f"List prices, USD per million tokens (input / output); {source}:",
             ""]
    lines += [f"- {m}: ${p[0]:.2f} / ${p[1]:.2f}" for m, p in prices.items()]
    return report_io.text(lines)


POLICY_NOTE = ("Policies: threshold = the cheapest model whose predicted P(correct) clears a "
               "shared threshold, else the top model (the issue's rule); utility = argmax_k "
               "P_k - lambda x cost_k (RouterBench's willingness-to-pay rule; for a pair it ranks "
               "questions by P(cloud) - P(edge)). Each row sweeps its policy's parameter.")


REFERENCES = ("prior", "random", "oracle")
ROUTER_NOTE = ("Routers: heads = one logistic head per model on the frozen features; irt = one "
               "shared head over every model's outcomes in the file, P(m correct) = "
               "sigmoid(w . x + b_m) (one-parameter IRT with text difficulty); confroute PRESET = "
               "the product's router (one encoder, one head per model of the pair or ladder) "
               "trained with `confroute.training.fit` on that group's training questions, "
               "exported and loaded with `Router.load` (training facts at the end).")


def routers(result: dict[str, Any]) -> list[str]:
    """The scorers of a pair or ladder result that are routers (not the references)."""
    return [k for k in result["threshold"] if k not in REFERENCES]


def _pairs(rows: list[dict[str, Any]]) -> str:
    lines = report_io.table_head(
        "(a) Pairs. Goal: router APGR above the per-category prior's (same policy, same test "
        "questions); random routing has APGR 0.500. " + POLICY_NOTE + " " + ROUTER_NOTE,
        ["edge -> cloud", "policy", "scorer", "APGR", "- prior APGR"])
    for r in rows:
        lines.append(f"| {r['pair'][0]} -> {r['pair'][1]} ({r['test_questions']} test q.; "
                     f"accuracy {r['accuracy'][0]:.3f} / {r['accuracy'][1]:.3f}; oracle APGR "
                     f"{r['oracle']['apgr']:.3f}) | | | | |")
        for policy in ("threshold", "utility"):
            res = r[policy]
            for name in (*routers(r), "prior"):
                gap = _gap(res[name]["minus_prior"]) if name != "prior" else ""
                lines.append(f"| | {policy} | {name} | "
                             f"{_cell(res[name]['apgr'], res[name]['ci'].get('apgr'))} | {gap} |")
    return report_io.text(lines)


def _ladders(rows: list[dict[str, Any]]) -> str:
    lines = report_io.table_head(
        "(b) Ladders: area = normalised area under accuracy vs cost (0 = cheapest model alone, "
        "1 = best alone); cost at 95% = cost, as a share of the best model's, at which 95% of "
        f"its accuracy is reached (goal on Llama-2: <= {GOAL_COST_SHARE:.0%}; 'never' = not "
        "reached). router - prior: area difference [paired bootstrap CI].",
        ["ladder", "policy", "scorer", "area", "cost at 95%", "- prior area"])
    for r in rows:
        models = ", ".join(f"{m} {a:.3f} at {c:.0%}" for m, a, c in
                           zip(r["ladder"], r["accuracy"], r["cost_share_of_best"], strict=True))
        lines.append(f"| {' -> '.join(r['ladder'])} ({r['test_questions']} test q.; accuracy "
                     f"and cost share alone: {models}) | | | | | |")
        for policy in ("threshold", "utility"):
            res = r[policy]
            for name in (*routers(r), *REFERENCES):
                ci = res[name].get("ci", {})
                gap = ci.get("area_minus_reference")
                lines.append(
                    f"| | {policy} | {name} | {_cell(res[name]['area'], ci.get('area'))} | "
                    f"{_share(res[name]['cost_at_95'], ci.get('cost_at_95'))} | "
                    + (f"{res[name]['area'] - res['prior']['area']:+.3f} "
                       f"[{gap['low']:+.3f}, {gap['high']:+.3f}]" if gap else "") + " |")
    return report_io.text(lines)


def _transfer(rows: list[dict[str, Any]]) -> str:
    lines = report_io.table_head(
        "(c) Transfer: APGR on each held-out pair's test questions; the transfer head was "
        "trained on the other models' outcomes only (names only: the held-out models' "
        "abilities from the most similar training model name; few labels: a slope, "
        "intercept and per-category offsets fitted on that many labelled training questions "
        f"of each held-out model). Goal: within {GOAL_TRANSFER} of the pair-specific "
        "router. [paired bootstrap CI of the difference]",
        ["held-out pair", "policy", "pair-specific", "names only", "few labels",
         "pair-specific on the few labels", "names only - specific", "few labels - specific"])
    for r in rows:
        few = f"{r['few_labels']} labels"
        for policy in ("threshold", "utility"):
            a, gaps = r[policy]["apgr"], r[policy]["minus_pair_specific"]
            cells = [f"{a['pair-specific']:.3f}", f"{a['names only']:.3f}", f"{a[few]:.3f}",
                     f"{a['pair-specific on ' + few]:.3f}", _gap(gaps["names only"]),
                     _gap(gaps[few])]
            lines.append(f"| {r['pair'][0]} -> {r['pair'][1]} ({few}) | {policy} | "
                         + " | ".join(cells) + " |")
    return report_io.text(lines)


def _confroute(runs: list[dict[str, Any]]) -> str:
    if not runs:
        return ""
    lines = report_io.table_head(
        "confroute routers as trained here (val = the held-out slice of the training "
        "questions; macro AUROC over the K heads; the category prior's on the same val "
        "questions; variant = the one `Router.load` picked):",
        ["preset", "models", "train / val q.", "epochs (best step / steps)", "val AUROC",
         "prior val AUROC", "variant", "seconds"])
    for r in runs:
        lines.append(f"| {r['preset']} | {' -> '.join(r['models'])} | {r['train_rows']} / "
                     f"{r['val_rows']} | {r['epochs']} ({r['best_step']} / {r['global_steps']}) "
                     f"| {r['val_auroc']:.3f} | {r['val_prior_auroc']:.3f} | {r['variant']} | "
                     f"{r['seconds']:.0f} |")
    return report_io.text(lines)


def plot(result: dict[str, Any], path: Path) -> Path:
    """Accuracy vs cost share of the best model: router and prior under both policies, oracle,
    each model alone."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    best = int(np.argmax(result["accuracy"]))
    best_cost = result["threshold"]["heads"]["curve"]["cost"][-1] / \
        result["cost_share_of_best"][-1] * result["cost_share_of_best"][best]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    product = [("utility", name, "-") for name in routers(result) if name.startswith("confroute")]
    for policy, name, style in (("threshold", "heads", "-"), ("utility", "heads", "-"),
                                ("utility", "irt", "-"), *product, ("threshold", "prior", "--"),
                                ("utility", "prior", "--"), ("utility", "oracle", ":")):
        res = result[policy][name]
        ax.plot(np.array(res["curve"]["cost"]) / best_cost * 100, res["curve"]["quality"], style,
                label=f"{name}, {policy} (area {res['area']:.3f})")
    for model, acc, share in zip(result["ladder"], result["accuracy"],
                                 result["cost_share_of_best"], strict=True):
        ax.plot(share * 100, acc, "o", label=f"always {model}")
    ax.axhline(0.95 * max(result["accuracy"]), color="grey", linewidth=0.8, linestyle="-.",
               label="95% of the best model")
    ax.set_xlabel("cost (% of the best model's)")
    ax.set_ylabel("accuracy")
    ax.set_title(" -> ".join(result["ladder"]), fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _gap(gap: dict[str, float]) -> str:
    return f"{gap['gap']:+.3f} [{gap['low']:+.3f}, {gap['high']:+.3f}]"


def _cell(value: float, ci: dict[str, float] | None) -> str:
    return reporting.format_cell(value, ci, False)


def _share(value: float, ci: dict[str, float] | None) -> str:
    return reporting.format_cell(value, ci, True)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text).strip("-").lower()
