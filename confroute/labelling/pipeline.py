"""The `label` pipeline: prompts -> N samples per model -> clusters -> SE -> labelled dataset.

Stages, each resumable and each keeping its evidence:
1. `sample_to_store`: every prompt is answered N times by each model; finished prompts go to an
   append-only JSONL store (`confroute.labelling.store`) as they arrive, so an interrupted run
   resumes where it stopped.
2. `measure`: answers are parsed, clustered by meaning and scored (every SE variant, correctness
   against a gold answer when there is one). No model is called, so this is cheap to redo.
3. `label_frame`: a label rule from `confroute.dataset.labels` turns the evidence into labels.
   Relabelling with another rule or tau reruns only this stage.

The result is a table in the `scores` format that `confroute.dataset.schema` reads.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np

from confroute.errors import DataError, require
from confroute.labelling.answers import AnswerType
from confroute.labelling.sampling import Backend, Generation, SamplingConfig, prompt_seed
from confroute.labelling.store import JsonlStore
from confroute.stats import binary_auroc

PROMPT_COLUMNS = ("id", "prompt")
"""Optional prompt-table columns: source, split, answer (gold), answer_type
(number/choice/text), choices (letters, e.g. "ABCD"), instruction (appended for the model)."""


def model_input(row: dict[str, Any]) -> str:
    """What the model is asked: the prompt plus its answer instruction, if any."""
    instruction = row.get("instruction")
    if isinstance(instruction, str) and instruction.strip():
        return f"{row['prompt']}\n{instruction.strip()}"
    return str(row["prompt"])


def choice_letters(row: dict[str, Any]) -> list[str] | None:
    choices = row.get("choices")
    if row.get("answer_type") == "choice" and isinstance(choices, str) and choices:
        return list(choices)
    return None


def store_meta(role: str, model: str, cfg: SamplingConfig) -> dict[str, Any]:
    return {"role": role, "model": model, "sampling": dataclasses.asdict(cfg)}


def sample_to_store(rows: Sequence[dict[str, Any]], backend: Backend | Callable[[], Backend],
                    cfg: SamplingConfig,
                    store: JsonlStore, role: str = "edge", chunk: int | None = None,
                    progress: bool = True) -> dict[str, Any]:
    """Answer every prompt not yet in `store`; append each batch as soon as it is done.

    `backend` may be a factory, called only when something is left to sample (a finished run
    relabels without loading a model). Returns counts: prompts done before, done now,
    generated tokens, seconds.
    """
    tqdm = require("tqdm", "label").tqdm
    todo = [r for r in rows if _key(role, r["id"]) not in store]
    before = len(rows) - len(todo)
    if not todo:
        return {"done_before": before, "done_now": 0, "generated_tokens": 0, "seconds": 0.0}
    engine = cast(Backend, backend if hasattr(backend, "generate")
                  else cast(Callable[[], Backend], backend)())
    chunk = chunk or cfg.batch_size
    start, tokens_before = time.perf_counter(), getattr(engine, "generated_tokens", 0)
    bar = tqdm(total=len(rows), initial=before, disable=not progress, unit="prompt",
               desc=f"sampling {role} ({engine.name})", smoothing=0.05)
    for first in range(0, len(todo), chunk):
        batch = todo[first:first + chunk]
        prompts = [model_input(r) for r in batch]
        seeds = [prompt_seed(cfg.seed, str(r["id"])) for r in batch]
        gens = engine.generate(prompts, cfg, seeds, [choice_letters(r) for r in batch])
        store.add(_record(role, engine.name, r, g) for r, g in zip(batch, gens, strict=True))
        bar.update(len(batch))
    bar.close()
    return {"done_before": before, "done_now": len(todo),
            "generated_tokens": getattr(engine, "generated_tokens", 0) - tokens_before,
            "seconds": round(time.perf_counter() - start, 1)}


def _key(role: str, prompt_id: Any) -> str:
    return f"{role}:{prompt_id}"


def _record(role: str, model: str, row: dict[str, Any], gen: Generation) -> dict[str, Any]:
    return {"key": _key(role, row["id"]), "id": str(row["id"]), "role": role, "model": model,
            "samples": [s.to_dict() for s in gen.samples],
            "greedy": gen.greedy.to_dict() if gen.greedy else None,
            "choice_logprobs": gen.choice_logprobs}


def read_prompts(source: str, limit: int | None = None) -> list[dict[str, Any]]:
    """Prompt rows from anything `schema.read_table` reads: `prompt`, and `id` (made if absent)."""
    from confroute.dataset.schema import read_table

    frame = read_table(source)
    if "prompt" not in frame.columns:
        raise DataError(f"{source}: prompts need a 'prompt' column; found "
                        f"{', '.join(map(str, frame.columns))}")
    if "id" not in frame.columns:
        frame = frame.assign(id=[str(i) for i in range(len(frame))])
    frame["id"] = frame["id"].astype(str)
    dupes = frame["id"][frame["id"].duplicated()]
    if len(dupes):
        raise DataError(f"{source}: column 'id' must be unique; {len(dupes)} repeated, first "
                        f"{dupes.iloc[0]!r}")
    rows = frame.to_dict("records")
    for i, row in enumerate(rows):
        if not isinstance(row["prompt"], str) or not row["prompt"].strip():
            raise DataError(f"{source}: row {i} (id {row['id']!r}) has an empty or non-text prompt")
        for key, value in list(row.items()):
            if isinstance(value, float) and math.isnan(value):
                row[key] = None
    return rows[:limit] if limit else rows


def write_jsonl(path: str | Path, rows: Sequence[dict[str, Any]]) -> None:
    Path(path).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


# --- measuring: answers -> clusters -> SE (no generation) --------------------------------------


@dataclasses.dataclass
class MeasureConfig:
    """How samples become semantic entropy."""

    equivalence: str = "exact"
    """`exact` (numeric / option letter / normalised text) or `nli:<model name or path>`."""
    invalid: Literal["drop", "cluster"] = "drop"
    """Unparseable answers: left out of the entropy, or one shared "no answer" cluster."""
    normalise_length: bool = True
    """Sequence likelihood = mean token log-prob (summed log-probs let one sample dominate)."""
    se: Literal["discrete", "weighted", "paper"] = "discrete"
    """Which variant becomes `se_<role>` (all are stored)."""
    choice_se: Literal["samples", "letters"] = "samples"
    """Multiple-choice prompts: SE of the samples, or the exact entropy of the letters' probs."""


def measure(rows: Sequence[dict[str, Any]], records: dict[str, dict[str, Any]], role: str,
            cfg: MeasureConfig, equivalence: Any | None = None,
            prefix: str | None = None) -> list[dict[str, Any]]:
    """Evidence columns `*_<role>` for every row that has a stored record for `role`.

    `prefix`: the sampling `answer_prefix` the answers continue ("The answer is"); answers are
    read with it in front, so "4. He has 8 - 4 = 2" commits to 4, not 2."""
    from confroute.labelling.equivalence import make_equivalence

    equivalence = equivalence or make_equivalence(cfg.equivalence)
    out = []
    for row in rows:
        record = records.get(_key(role, row["id"]))
        if record is not None:
            out.append(_measure_one(row, record, role, cfg, equivalence, prefix))
    return out


def _measure_one(row: dict[str, Any], record: dict[str, Any], role: str, cfg: MeasureConfig,
                 equivalence: Any, prefix: str | None = None) -> dict[str, Any]:
    from confroute.labelling.answers import answers_match, extract_answer
    from confroute.labelling.entropy import choice_entropy, semantic_entropy, sequence_logprob

    kind: AnswerType = row.get("answer_type") or "text"
    choices = row.get("choices")
    gold = row.get("answer")
    samples = record["samples"]
    parsed = [extract_answer(s["text"], kind, choices, s["finish"] == "length", prefix)
              for s in samples]
    values = [a.value for a in parsed]
    ids = equivalence.cluster(str(row["prompt"]), values)
    logprobs = [s.get("logprobs") for s in samples]
    norm = semantic_entropy(ids, logprobs, cfg.invalid, cfg.normalise_length)
    summed = semantic_entropy(ids, logprobs, cfg.invalid, normalise=False)
    r = role
    ev: dict[str, Any] = {
        f"samples_{r}": [s["text"] for s in samples],
        f"logprobs_{r}": logprobs,
        f"answers_{r}": values,
        f"clusters_{r}": ids,
        f"cluster_counts_{r}": norm.cluster_counts,
        f"n_clusters_{r}": norm.n_clusters,
        f"n_invalid_{r}": norm.n_invalid,
        f"n_truncated_{r}": sum(a.truncated for a in parsed),
        f"se_{r}_discrete": norm.discrete,
        f"se_{r}_weighted": norm.weighted,
        f"se_{r}_paper": norm.paper,
        f"se_{r}_weighted_sum": summed.weighted,
        f"se_{r}_paper_sum": summed.paper,
    }
    ev[f"se_{r}"] = ev[f"se_{r}_{cfg.se}"]
    letters = record.get("choice_logprobs")
    if letters:
        ev[f"se_{r}_letters"], best = choice_entropy(letters)
        ev[f"choice_logprobs_{r}"] = json.dumps(letters)
        ev[f"correct_{r}_letters"] = _as_float(answers_match(best, gold, "choice"))
        if cfg.choice_se == "letters":
            ev[f"se_{r}"] = ev[f"se_{r}_letters"]
    if ev[f"se_{r}"] is None:  # no log-probs from this backend: fall back, and say so
        ev[f"se_{r}"] = norm.discrete
    greedy = record.get("greedy")
    if greedy:
        answer = extract_answer(greedy["text"], kind, choices, prefix=prefix)
        ev[f"greedy_{r}"] = greedy["text"]
        ev[f"greedy_logprob_{r}"] = (sequence_logprob(greedy["logprobs"])
                                     if greedy.get("logprobs") else None)
        ev[f"correct_{r}"] = _as_float(answers_match(answer.value, gold, kind))
    hits = [answers_match(v, gold, kind) for v in values]
    if gold is not None and None not in hits:
        ev[f"sample_accuracy_{r}"] = sum(bool(h) for h in hits) / len(hits)
    return {"id": str(row["id"]), **ev}


def _as_float(value: bool | None) -> float | None:
    return None if value is None else float(value)


# --- the table: prompts + evidence + label ---------------------------------------------------

SPLIT_VAL = 0.2


def split_of(prompt_id: str, val: float = SPLIT_VAL) -> str:
    """A fixed train/val split from a hash of the id: it never moves when rows are added."""
    import hashlib

    u = int(hashlib.sha256(prompt_id.encode()).hexdigest()[:12], 16) / 16**12
    return "val" if u < val else "train"


def evidence_table(rows: Sequence[dict[str, Any]], stores: dict[str, JsonlStore],
                   cfg: MeasureConfig) -> Any:
    """One row per prompt answered by every role: prompt columns + `*_<role>` evidence."""
    pd = require("pandas", "label")
    from confroute.labelling.equivalence import make_equivalence

    equivalence = make_equivalence(cfg.equivalence)
    frame = pd.DataFrame(list(rows))
    frame["id"] = frame["id"].astype(str)
    for role, store in stores.items():
        prefix = ((store.meta or {}).get("sampling") or {}).get("answer_prefix")
        measured = measure(rows, store.records, role, cfg, equivalence, prefix)
        frame = frame.merge(pd.DataFrame(measured, columns=["id"] if not measured else None),
                            on="id", how="inner")
    if "source" not in frame.columns:
        frame["source"] = "data"
    if "split" not in frame.columns:
        frame["split"] = [split_of(i) for i in frame["id"]]
    frame["se_config"] = json.dumps(dataclasses.asdict(cfg))
    return frame


def apply_rule(frame: Any, label: Any) -> tuple[Any, dict[str, Any]]:
    """Label `frame` with `label` (a LabelConfig) exactly as training will, and record it.

    Adds `rule_label` (not `label`: a `label` column would make readers take it as given and
    ignore the rule), `label_rule` and `label_params`; the evidence columns are untouched, so
    relabelling with another rule or tau never resamples.
    """
    from confroute.dataset.schema import from_scores

    _, labels = from_scores(frame, label)
    out = frame.copy()
    out["rule_label"] = labels.values
    out["label_rule"] = labels.rule
    out["label_params"] = json.dumps(labels.params)
    return out, {"rule": labels.rule, "params": labels.params, "counts": labels.counts}


def write_table(frame: Any, path: str | Path) -> Path:
    """Write the scores table as parquet (or jsonl by suffix); atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    if path.suffix == ".jsonl":
        frame.to_json(partial, orient="records", lines=True, force_ascii=False)
    elif path.suffix == ".parquet":
        frame.to_parquet(partial, index=False)
    else:
        raise DataError(f"output {path} must end in .parquet or .jsonl")
    partial.replace(path)
    return path


@dataclasses.dataclass
class LabelRun:
    """What `label` did: files written, counts, and the label rule's report."""

    table: Path
    rows: int
    sampling: dict[str, Any]
    labels: dict[str, Any]
    quality: dict[str, Any]


def label(prompts: str, out_dir: str | Path,
          backends: dict[str, tuple[str, Backend | Callable[[], Backend]]],
          sampling: SamplingConfig, measure_cfg: MeasureConfig, label_cfg: Any,
          limit: int | None = None, progress: bool = True) -> LabelRun:
    """The whole pipeline; rerunning it resumes sampling and only redoes measuring/labelling.

    `backends` maps a role (`edge`, `cloud`) to (model name, backend or backend factory).
    Samples go to `out_dir/samples_<role>.jsonl`, the table to `out_dir/scores.parquet`.
    """
    out_dir = Path(out_dir)
    rows = read_prompts(prompts, limit)
    stores, report = {}, {}
    if "edge" not in backends:
        raise DataError("label needs an edge model")
    for role, (name, backend) in backends.items():
        stores[role] = JsonlStore(out_dir / f"samples_{role}.jsonl",
                                  store_meta(role, name, sampling))
        report[role] = sample_to_store(rows, backend, sampling, stores[role], role,
                                       progress=progress)
    return relabel_from_stores(rows, out_dir, stores, measure_cfg, label_cfg, report)


def relabel_from_stores(rows: Sequence[dict[str, Any]], out_dir: Path,
                        stores: dict[str, JsonlStore], measure_cfg: MeasureConfig,
                        label_cfg: Any, report: dict[str, Any] | None = None) -> LabelRun:
    frame = evidence_table(rows, stores, measure_cfg)
    if len(frame) == 0:
        raise DataError(f"no prompt has samples from every model in {out_dir}; run sampling first")
    frame, labels = apply_rule(frame, label_cfg)
    table = write_table(frame, out_dir / "scores.parquet")
    quality = quality_report(frame, list(stores))
    (out_dir / "label_report.json").write_text(json.dumps(
        {"rows": len(frame), "sampling": report or {}, "labels": labels, "quality": quality},
        indent=2, default=str))
    return LabelRun(table, len(frame), report or {}, labels, quality)


def quality_report(frame: Any, roles: Sequence[str]) -> dict[str, Any]:
    """Per source and overall: accuracy, SE distribution, AUROC of -SE (and of the greedy
    answer's mean log-prob) for each model's correctness."""
    from confroute.labelling.entropy import summarise

    report: dict[str, Any] = {}
    groups = [("all", frame)] + [(str(k), g) for k, g in frame.groupby("source")]
    for role in roles:
        per: dict[str, Any] = {}
        for name, group in groups:
            entry: dict[str, Any] = {"n": len(group),
                                     "se": summarise([float(v) for v in group[f"se_{role}"]])}
            if f"correct_{role}" in group and group[f"correct_{role}"].notna().any():
                known = group[group[f"correct_{role}"].notna()]
                correct = [bool(v) for v in known[f"correct_{role}"]]
                entry["accuracy"] = round(sum(correct) / len(correct), 4)
                for variant in ("", "_discrete", "_weighted", "_paper", "_letters"):
                    column = f"se_{role}{variant}"
                    if column in known and known[column].notna().all():
                        entry[f"auroc_neg{column}"] = _auroc(correct, -known[column])
                greedy = f"greedy_logprob_{role}"
                if greedy in known and known[greedy].notna().all():
                    entry["auroc_greedy_logprob"] = _auroc(correct, known[greedy])
            per[name] = entry
        report[role] = per
    return report


def _auroc(positive: Sequence[bool], scores: Any) -> float | None:
    """AUROC rounded for a report; None when one class is absent."""
    value = binary_auroc(np.asarray(positive, dtype=bool), np.asarray(scores, dtype=float))
    return None if np.isnan(value) else round(value, 4)
