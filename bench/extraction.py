"""How right and how fast is answer extraction? Measured on real chain-of-thought responses.

On `mmlu_pro/responses_sample.jsonl.gz` (2,400 responses of Llama-3.1-8B-Instruct,
Mistral-7B-Instruct-v0.2 and Phi-3-mini to MMLU-Pro, with the letter the benchmark's own
extractor found and the gold letter): the agreement of `extract_answer(..., "choice")` with the
benchmark's letter where it found one, per model, and the accuracy against gold where it found
none. Every disagreement goes to `<out>/disagreements.jsonl` (with who matches gold) for reading.
Option letters are each question's own (MMLU-Pro has 3 to 10 options).

Speed: microseconds per answer, for those responses (choice) and for every stored sample of the
bundled `smollm2-uncertainty` dataset (number, read with its answer prefix), beside a bare
`re.findall` over the same texts as the reference, timed in the same run, on the CPU named.

    python bench/extraction.py [--out runs/extraction] [--responses ...] [--questions ...]
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import re
import time
from pathlib import Path

from gemm import cpu_summary  # bench/ is on sys.path when this script runs

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "mmlu_pro"
LETTERS = "ABCDEFGHIJ"


def load(responses: Path, questions: Path) -> list[dict]:
    """Responses with `letters`: the question's own option letters (from questions.parquet)."""
    import pandas as pd

    frame = pd.read_parquet(questions, columns=["question_id", "options"])
    count = dict(zip(frame["question_id"], frame["options"].map(len), strict=True))
    with gzip.open(responses, "rt") as handle:
        rows = [json.loads(line) for line in handle]
    for row in rows:
        row["letters"] = LETTERS[:count.get(row["question_id"], 10)]
    return rows


def upstream_how(text: str, letter: str | None) -> str:
    """How the benchmark's extractor (TIGER-AI-Lab/MMLU-Pro, evaluate_from_api.py: three regexes
    tried in turn) found `letter` in `text`: "answer is (X)" (its first match), ".*Answer: X",
    the last standalone capital A-J anywhere (a fallback that reads variables and table headers
    as answers), or "not in the text" (the benchmark's letter is none of these)."""
    if letter is None:
        return "none"
    for how, pattern, flags in UPSTREAM:
        match = re.search(pattern, text, flags)
        if match:
            return how if match.group(1) == letter else "not in the text"
    return "not in the text"


UPSTREAM = [("answer is (X)", r"answer is \(?([A-J])\)?", 0),
            ("Answer: X", r".*[aA]nswer:\s*([A-J])", 0),
            ("last capital anywhere", r"\b([A-J])\b(?!.*\b[A-J]\b)", re.DOTALL)]


def agreement(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """Per model and overall: agreement with the benchmark's letter, accuracy where it found
    none; and the disagreements."""
    from confroute.labelling.answers import extract_answer

    stats: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    disagreements = []
    for row in rows:
        ours = extract_answer(row["response"], "choice", row["letters"]).value
        upstream, gold = row["upstream_pred"], row["answer"]
        how = upstream_how(row["response"], upstream)
        for key in (row["model"], "all", f"benchmark: {how}"):
            s = stats[key]
            s["n"] += 1
            if upstream is not None:
                s["found"] += 1
                s["agree"] += ours == upstream
            else:
                s["none"] += 1
                s["none_answered"] += ours is not None
                s["none_correct"] += ours == gold
        if upstream is not None and ours != upstream:
            disagreements.append({"question_id": row["question_id"], "model": row["model"],
                                  "upstream": upstream, "ours": ours, "gold": gold,
                                  "benchmark_how": how, "ours_is_gold": ours == gold,
                                  "upstream_is_gold": upstream == gold,
                                  "tail": row["response"][-400:]})
    keys = ("n", "found", "agree", "none", "none_answered", "none_correct")
    table = [{"model": k, **{key: v[key] for key in keys}}
             for k, v in sorted(stats.items(), key=lambda kv: (kv[0] == "all",
                                                             kv[0].startswith("benchmark")))]
    return table, disagreements


def per_answer_us(texts: list[str], call) -> float:
    """Mean microseconds of `call(text)` over `texts` (one pass after one warm-up call)."""
    call(texts[0])
    start = time.perf_counter()
    for text in texts:
        call(text)
    return (time.perf_counter() - start) / len(texts) * 1e6


def speed(rows: list[dict], dataset: Path) -> list[dict]:
    """Extraction time per answer vs a bare regex over the same texts, in one run."""
    import pandas as pd

    from confroute.labelling.answers import extract_answer

    frame = pd.read_parquet(dataset, columns=["samples_edge", "answer_type", "sampling_edge"])
    prefix = json.loads(frame["sampling_edge"].iloc[0])["answer_prefix"]
    numbers = [t for ts, kind in zip(frame["samples_edge"], frame["answer_type"], strict=True)
               if kind == "number" for t in ts]
    responses = [r["response"] for r in rows]
    out = []
    for name, texts, call in [
        ("choice, MMLU-Pro CoT responses", responses,
         lambda t: extract_answer(t, "choice", LETTERS)),
        ("number, smollm2-uncertainty samples", numbers,
         lambda t: extract_answer(t, "number", prefix=prefix)),
    ]:
        ours = per_answer_us(texts, call)
        bare = per_answer_us(texts, lambda t: re.findall(r"\d+", t))
        out.append({"what": name, "answers": len(texts), "us_per_answer": round(ours, 1),
                    "bare_regex_us": round(bare, 2), "ratio": round(ours / bare, 1)})
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--responses", type=Path, default=DATA / "responses_sample.jsonl.gz")
    parser.add_argument("--questions", type=Path, default=DATA / "questions.parquet")
    parser.add_argument("--dataset", type=Path,
                        default=ROOT / "confroute/dataset/builtin/smollm2_uncertainty.parquet")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "extraction")
    args = parser.parse_args()
    rows = load(args.responses, args.questions)
    table, disagreements = agreement(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "disagreements.jsonl"
    path.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in disagreements))
    print("| model | responses | benchmark found a letter | agree | agreement | benchmark found "
          "none | we answered | we match gold |")
    print("|---|---|---|---|---|---|---|---|")
    for s in table:
        rate = s["agree"] / s["found"] if s["found"] else float("nan")
        print(f"| {s['model']} | {s['n']} | {s['found']} | {s['agree']} | {rate:.4f} | "
              f"{s['none']} | {s['none_answered']} | {s['none_correct']} |")
    print(f"\n{len(disagreements)} disagreements -> {path}:\n")
    print("| how the benchmark found its letter | we read | disagreements | ours = gold | "
          "benchmark = gold |\n|---|---|---|---|---|")
    kinds = collections.Counter((d["benchmark_how"], "none" if d["ours"] is None else "a letter")
                                for d in disagreements)
    for (how, ours), n in sorted(kinds.items()):
        group = [d for d in disagreements if d["benchmark_how"] == how
                 and (d["ours"] is None) == (ours == "none")]
        print(f"| {how} | {ours} | {n} | {sum(d['ours_is_gold'] for d in group)} | "
              f"{sum(d['upstream_is_gold'] for d in group)} |")
    print(f"\nSpeed on {cpu_summary()} (one run, one thread):\n")
    print("| answers | n | us per answer | bare re.findall us | ratio |\n|---|---|---|---|---|")
    for s in speed(rows, args.dataset):
        print(f"| {s['what']} | {s['answers']} | {s['us_per_answer']} | {s['bare_regex_us']} | "
              f"{s['ratio']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
