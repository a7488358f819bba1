"""Prompt sources of the `smollm2-uncertainty` dataset, each with exact gold answers.

Train-side splits only (test splits stay clean for evaluation) plus generated questions:
`arith` (graded `What is a op b?`), `yesno` (yes/no questions about numbers), `words` (one-step
word problems with small numbers), `mawps` (all folds' dev.csv, de-duplicated), `gsm8k`
(train.jsonl), `mmlu` (dev/, 285 questions; MMLU test is an evaluation set, never used).
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

NUMBER_INSTRUCTION = "Give the final answer only."
CHOICE_INSTRUCTION = "Answer with the letter of the correct option."
YESNO_INSTRUCTION = "Answer yes or no."
# Sized for a CPU shared by several jobs: short prompts are cheap to prefill, so the mix leans on
# arithmetic (where this model is sometimes right and SE is informative) and MAWPS, and takes
# fewer of the long GSM8K (3% accuracy in the first 250 prompts: little to learn) and MMLU ones.
LEVELS = [("+", 1, 1), ("+", 2, 1), ("-", 2, 1), ("+", 2, 2), ("*", 1, 1), ("-", 2, 2),
          ("+", 3, 3), ("*", 2, 1), ("-", 3, 2), ("*", 2, 2)]
"""The first 700 `arith` prompts: 1-digit sums (63% right) to 2x2-digit products (3%)."""
GROWTH_LEVELS = [("-", 1, 1), ("*", 1, 1), ("+", 2, 1), ("*", 2, 1), ("+", 2, 2), ("+", 1, 1)]
"""Prompts 700+: the levels where the first 700 showed mixed outcomes (20-65% right)."""


def arith(n: int, seed: int = 0, levels: list | None = None, first: int = 0,
          seen: set[str] | None = None) -> list[dict]:
    """Generated arithmetic from 1-digit sums to 2x2-digit products: what a 135M model can and
    cannot do, with exact gold answers. `first`/`seen` continue a previous run without
    repeating its ids or questions; a level whose questions run out is skipped."""
    rng = random.Random(seed)
    levels = list(levels or LEVELS)
    rows, seen, misses = [], set(seen or ()), 0
    while len(rows) < n and levels:
        op, da, db = levels[len(rows) % len(levels)]
        a = rng.randint(10 ** (da - 1) if da > 1 else 1, 10**da - 1)
        b = rng.randint(10 ** (db - 1) if db > 1 else 1, 10**db - 1)
        if op == "-" and b > a:
            a, b = b, a
        question = f"What is {a} {op} {b}?"
        if question in seen:
            misses += 1
            if misses == 500:  # 500 repeats in a row: this level is exhausted, drop it
                levels.remove((op, da, db))
                misses = 0
            continue
        seen.add(question)
        misses = 0
        value = a + b if op == "+" else a - b if op == "-" else a * b
        rows.append({"id": f"arith/{first + len(rows)}", "prompt": question, "answer": str(value)})
    return rows


def yesno(n: int, seed: int = 0) -> list[dict]:
    """Generated yes/no questions about numbers (half yes, half no), with exact gold answers:
    comparisons, parity, and whether a stated sum is right (wrong ones are off by 1-3)."""
    rng = random.Random(seed)
    rows, seen = [], set()
    while len(rows) < n:
        kind, a, b = len(rows) % 3, rng.randint(2, 99), rng.randint(2, 99)
        if kind == 0 and a != b:
            question, yes = f"Is {a} greater than {b}?", a > b
        elif kind == 1:
            a = a * 10 + b % 10  # 20-999: enough distinct numbers
            question, yes = f"Is {a} an even number?", a % 2 == 0
        else:
            a, b = a % 20 + 1, b % 20 + 1
            yes = rng.random() < 0.5
            total = a + b if yes else a + b + rng.choice([-3, -2, -1, 1, 2, 3])
            question = f"Is {a} + {b} equal to {total}?"
        if question in seen or (kind == 0 and a == b):
            continue
        seen.add(question)
        rows.append({"id": f"yesno/{len(rows)}", "prompt": question,
                     "answer": "yes" if yes else "no"})
    return rows


WORD_TEMPLATES = [
    ("{name} has {a} apples and buys {b} more. How many apples does {name} have now?",
     lambda a, b: a + b),
    ("{name} had {s} stickers and gave away {b}. How many stickers are left?", lambda a, b: a),
    ("What is {b} more than {a}?", lambda a, b: a + b),
    ("What is double {a}?", lambda a, b: 2 * a),
    ("What is half of {d}?", lambda a, b: a),
    ("What number comes after {a}?", lambda a, b: a + 1),
    ("There are {b} boxes with {a} pens in each box. How many pens are there?",
     lambda a, b: a * b),
]
NAMES = ["Tom", "Ana", "Sam", "Lena", "Omar", "Mia", "Raj", "Zoe"]


def words(n: int, seed: int = 0) -> list[dict]:
    """Generated one-step word problems with small numbers (exact gold answers): easier than
    MAWPS, where SmolLM2 is right 5% of the time, so its outcome varies within the source."""
    rng = random.Random(seed)
    rows, seen = [], set()
    while len(rows) < n:
        template, answer = WORD_TEMPLATES[len(rows) % len(WORD_TEMPLATES)]
        # one-number templates need a wider range to have enough distinct questions
        a = rng.randint(2, 40 if "{b}" in template else 300)
        b = rng.randint(2, 9 if "boxes" in template else 20)
        question = template.format(name=rng.choice(NAMES), a=a, b=b, s=a + b, d=2 * a)
        if question in seen:
            continue
        seen.add(question)
        rows.append({"id": f"words/{len(rows)}", "prompt": question, "answer": str(answer(a, b))})
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


def answer_format(source: str) -> dict:
    """answer_type, choices and instruction of a source's prompts."""
    if source == "mmlu":
        return {"answer_type": "choice", "choices": "ABCD", "instruction": CHOICE_INSTRUCTION}
    if source == "yesno":
        return {"answer_type": "text", "choices": None, "instruction": YESNO_INSTRUCTION}
    return {"answer_type": "number", "choices": None, "instruction": NUMBER_INSTRUCTION}
