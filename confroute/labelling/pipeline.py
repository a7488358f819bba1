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
from typing import Any, cast

import numpy as np

from confroute.dataset import tables
from confroute.errors import DataError, require
from confroute.files import write_json, write_text
from confroute.labelling.measure import MeasureConfig, measure, store_key
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
    """A multiple-choice row's option letters (its `choices`, e.g. "ABCD"); else None."""
    choices = row.get("choices")
    if row.get("answer_type") == "choice" and isinstance(choices, str) and choices:
        return list(choices)
    return None


def store_meta(role: str, model: str, cfg: SamplingConfig) -> dict[str, Any]:
    """What a sample store was made with; a store refuses to resume under other settings."""
    return {"role": role, "model": model, "sampling": dataclasses.asdict(cfg)}


def sample_to_store(rows: Sequence[dict[str, Any]], backend: Backend | Callable[[], Backend],
                    cfg: SamplingConfig,
                    store: JsonlStore, role: str = "edge", chunk: int | None = None,
                    progress: bool = True, desc: str | None = None) -> dict[str, Any]:
    """Answer every prompt not yet in `store`; append each batch as soon as it is done.

    `backend` may be a factory, called only when something is left to sample (a finished run
    relabels without loading a model). `desc` names the model on the progress bar (default:
    `role`). Returns counts: prompts done before, done now, generated tokens, seconds.
    """
    tqdm = require("tqdm", "label").tqdm
    todo = [r for r in rows if store_key(role, r["id"]) not in store]
    before = len(rows) - len(todo)
    if not todo:
        return {"done_before": before, "done_now": 0, "generated_tokens": 0, "seconds": 0.0}
    engine = cast(Backend, backend if hasattr(backend, "generate")
                  else cast(Callable[[], Backend], backend)())
    chunk = chunk or cfg.batch_size
    start, tokens_before = time.perf_counter(), getattr(engine, "generated_tokens", 0)
    bar = tqdm(total=len(rows), initial=before, disable=not progress, unit="prompt",
               desc=f"sampling {desc or role} ({engine.name})", smoothing=0.05)
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


def _record(role: str, model: str, row: dict[str, Any], gen: Generation) -> dict[str, Any]:
    return {"key": store_key(role, row["id"]), "id": str(row["id"]), "role": role, "model": model,
            "samples": [s.to_dict() for s in gen.samples],
            "greedy": gen.greedy.to_dict() if gen.greedy else None,
            "choice_logprobs": gen.choice_logprobs}


def read_prompts(source: str, limit: int | None = None) -> list[dict[str, Any]]:
    """Prompt rows from anything `tables.read_table` reads: `prompt`, and `id` (made if absent)."""
    from confroute.dataset.tables import read_table

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
    """Write `rows` as JSON lines (UTF-8), atomically: a killed write leaves the old file."""
    write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


# --- the table: prompts + evidence + label ---------------------------------------------------

SPLIT_VAL = 0.2


def split_of(prompt_id: str, val: float = SPLIT_VAL) -> str:
    """A fixed train/val split from a hash of the id: it never moves when rows are added."""
    import hashlib

    u = int(hashlib.sha256(prompt_id.encode()).hexdigest()[:12], 16) / 16**12
    return "val" if u < val else "train"


def evidence_table(rows: Sequence[dict[str, Any]], stores: dict[str, JsonlStore],
                   cfg: MeasureConfig, equivalence: Any | None = None) -> Any:
    """One row per prompt answered by every role: prompt columns + `*_<role>` evidence.

    `equivalence` (default: made from `cfg.equivalence`) lets several calls share one NLI model.
    """
    pd = require("pandas", "label")
    from confroute.labelling.equivalence import make_equivalence

    equivalence = make_equivalence(cfg.equivalence) if equivalence is None else equivalence
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
    return tables.write(frame, path, (".parquet", ".jsonl"))


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
    write_json(out_dir / "label_report.json",
               {"rows": len(frame), "sampling": report or {}, "labels": labels,
                "quality": quality}, default=str)
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
