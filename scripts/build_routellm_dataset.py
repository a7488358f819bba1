"""Build the bundled `routellm-judge` dataset from RouteLLM's published per-model outcomes.

Edge = Mixtral-8x7B-Instruct, cloud = GPT-4-1106-preview. Ratings are correctness (GSM8K, MMLU)
and GPT-4 judge scores (MT-Bench, mean of both turns; the prompt is turn 1). Splits are fixed by
a hash of each row's id so they never move: all of MT-Bench and 30% of GSM8K and MMLU are `test`
(never trained on), 7% are `val`, the rest `train`.

    python scripts/build_routellm_dataset.py --shared ../shared/data
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import pandas as pd

EDGE = "mistralai/Mixtral-8x7B-Instruct-v0.1"
CLOUD = "gpt-4-1106-preview"
OUT = Path(__file__).resolve().parents[1] / "confroute/dataset/builtin/routellm_judge.parquet"


def split_of(row_id: str, test: float = 0.30, val: float = 0.07) -> str:
    u = int(hashlib.sha256(row_id.encode()).hexdigest()[:12], 16) / 16**12
    return "test" if u < test else "val" if u < test + val else "train"


def gsm8k(root: Path) -> pd.DataFrame:
    df = pd.read_csv(root / "routellm/evals/gsm8k/gsm8k_responses.csv")
    return pd.DataFrame({"id": [f"gsm8k/{i}" for i in range(len(df))], "prompt": df["prompt"],
                         "source": "gsm8k", "rating_edge": df[EDGE].astype(float),
                         "rating_cloud": df[CLOUD].astype(float)})


def mmlu(root: Path) -> pd.DataFrame:
    frames = []
    for path in sorted((root / "routellm/evals/mmlu/responses").glob("mmlu_*.csv")):
        subject = path.stem.removeprefix("mmlu_")
        df = pd.read_csv(path)
        frames.append(pd.DataFrame({
            "id": [f"mmlu/{subject}/{i}" for i in range(len(df))], "prompt": df["prompt"],
            "source": "mmlu", "rating_edge": df[EDGE].astype(float),
            "rating_cloud": df[CLOUD].astype(float)}))
    return pd.concat(frames, ignore_index=True)


def mt_bench(root: Path) -> pd.DataFrame:
    questions = [json.loads(line) for line in
                 (root / "routellm/evals/mt_bench/question.jsonl").read_text().splitlines() if line]
    judged = pd.read_json(root / "routellm/evals/mt_bench/judgements.jsonl", lines=True)
    score = judged.groupby(["question_id", "model"])["score"].mean().unstack()
    return pd.DataFrame({
        "id": [f"mt_bench/{q['question_id']}" for q in questions],
        "prompt": [q["turns"][0] for q in questions], "source": "mt_bench",
        "rating_edge": [float(score.loc[q["question_id"], EDGE]) for q in questions],
        "rating_cloud": [float(score.loc[q["question_id"], CLOUD]) for q in questions]})


def build(root: Path) -> pd.DataFrame:
    frame = pd.concat([gsm8k(root), mmlu(root), mt_bench(root)], ignore_index=True)
    frame["split"] = [("test" if s == "mt_bench" else split_of(i))
                      for i, s in zip(frame["id"], frame["source"], strict=True)]
    return frame[["id", "prompt", "source", "split", "rating_edge", "rating_cloud"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    frame = build(args.shared)
    frame.to_parquet(args.out, index=False, compression="zstd")
    summary = frame.assign(cloud_better=frame["rating_cloud"] > frame["rating_edge"]).groupby(
        ["source", "split"]).agg(rows=("id", "size"), edge=("rating_edge", "mean"),
                                 cloud=("rating_cloud", "mean"),
                                 cloud_better=("cloud_better", "mean"))
    print(summary.round(3).to_string())
    print(f"wrote {len(frame)} rows to {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
