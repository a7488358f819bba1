"""The `label` pipeline: prompts -> N samples per model -> clusters -> SE -> labelled dataset.

Stages, each resumable and each keeping its evidence:
1. `sample_to_store`: every prompt is answered N times by each model; finished prompts go to an
   append-only JSONL store (`confroute.data.store`) as they arrive, so an interrupted run
   resumes where it stopped.
2. `measure`: answers are parsed, clustered by meaning and scored (every SE variant, correctness
   against a gold answer when there is one). No model is called, so this is cheap to redo.
3. `label_frame`: a label rule from `confroute.data.labels` turns the evidence into labels.
   Relabelling with another rule or tau reruns only this stage.

The result is a table in the `scores` format that `confroute.data.schema` reads.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from confroute.data.sampling import Backend, Generation, SamplingConfig, prompt_seed
from confroute.data.store import JsonlStore
from confroute.errors import DataError, require

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


def sample_to_store(rows: Sequence[dict[str, Any]], backend: Backend, cfg: SamplingConfig,
                    store: JsonlStore, role: str = "edge", chunk: int | None = None,
                    progress: bool = True) -> dict[str, Any]:
    """Answer every prompt not yet in `store`; append each batch as soon as it is done.

    Returns counts: prompts done before, done now, generated tokens, seconds.
    """
    tqdm = require("tqdm", "label").tqdm
    todo = [r for r in rows if _key(role, r["id"]) not in store]
    before = len(rows) - len(todo)
    chunk = chunk or cfg.batch_size
    start, tokens_before = time.perf_counter(), getattr(backend, "generated_tokens", 0)
    bar = tqdm(total=len(rows), initial=before, disable=not progress, unit="prompt",
               desc=f"sampling {role} ({backend.name})", smoothing=0.05)
    for first in range(0, len(todo), chunk):
        batch = todo[first:first + chunk]
        prompts = [model_input(r) for r in batch]
        seeds = [prompt_seed(cfg.seed, str(r["id"])) for r in batch]
        gens = backend.generate(prompts, cfg, seeds, [choice_letters(r) for r in batch])
        store.add(_record(role, backend.name, r, g) for r, g in zip(batch, gens, strict=True))
        bar.update(len(batch))
    bar.close()
    return {"done_before": before, "done_now": len(todo),
            "generated_tokens": getattr(backend, "generated_tokens", 0) - tokens_before,
            "seconds": round(time.perf_counter() - start, 1)}


def _key(role: str, prompt_id: Any) -> str:
    return f"{role}:{prompt_id}"


def _record(role: str, model: str, row: dict[str, Any], gen: Generation) -> dict[str, Any]:
    return {"key": _key(role, row["id"]), "id": str(row["id"]), "role": role, "model": model,
            "samples": [s.to_dict() for s in gen.samples],
            "greedy": gen.greedy.to_dict() if gen.greedy else None,
            "choice_logprobs": gen.choice_logprobs}


def read_prompts(source: str, limit: int | None = None) -> list[dict[str, Any]]:
    """Prompt rows from anything `schema.read_table` reads; needs `id` (made if absent), `prompt`."""
    from confroute.data.schema import read_table

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
            cfg: MeasureConfig, equivalence: Any | None = None) -> list[dict[str, Any]]:
    """Evidence columns `*_<role>` for every row that has a stored record for `role`."""
    from confroute.data.uncertainty import make_equivalence

    equivalence = equivalence or make_equivalence(cfg.equivalence)
    out = []
    for row in rows:
        record = records.get(_key(role, row["id"]))
        if record is not None:
            out.append(_measure_one(row, record, role, cfg, equivalence))
    return out


def _measure_one(row: dict[str, Any], record: dict[str, Any], role: str, cfg: MeasureConfig,
                 equivalence: Any) -> dict[str, Any]:
    from confroute.data.uncertainty import (answers_match, choice_entropy, extract_answer,
                                            semantic_entropy, sequence_logprob)

    kind = row.get("answer_type") or "text"
    choices = row.get("choices")
    gold = row.get("answer")
    samples = record["samples"]
    parsed = [extract_answer(s["text"], kind, choices, s["finish"] == "length") for s in samples]
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
        answer = extract_answer(greedy["text"], kind, choices)
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
