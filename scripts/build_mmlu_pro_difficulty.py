"""Build the bundled `mmlu-pro-difficulty` dataset: how many of 23 real models fail each
MMLU-Pro question, as a difficulty label for the questions' text in two shapes.

    python scripts/build_mmlu_pro_difficulty.py --mmlu-pro ../shared/data/mmlu_pro \
        [--card confroute/dataset/builtin/mmlu-pro-difficulty.md]

Only questions MMLU-Pro did not take from MMLU (`src` not `ori_mmlu*`: STEM-Ez, TheoremQA,
SciBench), so nothing here overlaps RouteLLM's MMLU evaluation; and only questions outside the
test split of `confroute.dataset.mmlu_pro.assign_splits` (seed 0, 30% test), so the MMLU-Pro
pair and ladder evaluations keep their test questions unseen. Deterministic.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OUT = ROOT / "confroute/dataset/builtin/mmlu_pro_difficulty.parquet"
# a stem that points at its options cannot stand alone as a bare question
NEEDS_OPTIONS = re.compile(r"\b(following|which of these|options?|choices?|statements?|"
                           r"above|below|listed|true about|best describes?)\b", re.IGNORECASE)
MIN_MODELS = 20


def build(folder: Path):
    import pandas as pd

    from confroute.dataset.commonsense import length_class
    from confroute.dataset.mmlu_pro import MMLU_DERIVED_PREFIX, assign_splits, format_prompt

    questions = pd.read_parquet(folder / "questions.parquet")
    outcomes = pd.read_parquet(folder / "outcomes.parquet")
    models = [c for c in outcomes.columns if c != "question_id"]
    table = questions.merge(outcomes, on="question_id")
    table = table[~table["src"].astype(str).str.startswith(MMLU_DERIVED_PREFIX)]
    table = table.assign(split=assign_splits(table["question_id"].astype(str), 0, 0.3, 0.1))
    table = table[table["split"] != "test"]
    answered = table[models].notna().sum(axis=1)
    table = table[answered >= MIN_MODELS]
    rows = []
    for rec in table.to_dict("records"):
        n = sum(rec[m] == rec[m] for m in models)  # NaN != NaN: a missing outcome
        wrong = sum(1 for m in models if rec[m] == rec[m] and rec[m] == 0)
        base = {"question_id": int(rec["question_id"]), "category": rec["category"],
                "src": rec["src"], "source": f"mmlu_pro/{str(rec['src']).split('-')[0]}",
                "split": rec["split"], "n_models": n, "n_wrong": wrong, "label": wrong / n}
        stem = str(rec["question"]).strip()
        shapes = {"options": format_prompt(stem, rec["options"])}
        if not NEEDS_OPTIONS.search(stem):
            shapes["bare"] = stem
        for shape, prompt in shapes.items():
            rows.append({"id": f"mmlu-pro/{rec['question_id']}/{shape}", "prompt": prompt,
                         "shape": shape, "length": length_class(prompt), **base})
    return pd.DataFrame(rows), models


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mmlu-pro", type=Path, default=ROOT.parent / "shared/data/mmlu_pro")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--card", type=Path, help="print the card's figures here (JSON)")
    args = parser.parse_args()
    from confroute.dataset import tables

    frame, models = build(args.mmlu_pro)
    tables.write(frame, args.out, (".parquet",))
    summary = {"rows": len(frame), "questions": int(frame["question_id"].nunique()),
               "models": models,
               "by": frame.groupby(["source", "shape", "split"]).agg(
                   rows=("label", "size"), mean_label=("label", "mean")).round(3)
               .reset_index().to_dict("records"),
               "length": {f"{s}/{n}": int(v) for (s, n), v in
                          frame.groupby(["shape", "length"]).size().items()}}
    print(json.dumps(summary, indent=1, default=str))
    print(f"{len(frame)} rows -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
