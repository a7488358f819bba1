"""K-model labelling (`confroute label --ladder`): a rating per model per prompt.

Every model of the ladder (`confroute.labelling.ladder`) answers every prompt N times, into its
own resumable store `OUT/samples_<name>.jsonl`, and its answers are measured (clusters, every SE
variant, the greedy answer's correctness) by `confroute.labelling.models`, the code the
two-model form (`confroute.labelling.pair`) samples and measures with too. Each model then gets
an adequacy rating per prompt in [0, 1], higher = better, the first of these that applies
(the column `rating_kind:<name>` says which, per row):

1. `correctness`: 1 or 0, the model's greedy answer (its first sample with
   --sampling.greedy false) against the prompt's gold `answer`.
2. `judge`: an LLM judge's MT-Bench single-answer rating r in 1..10 of the same answer
   (`judge.rate_table`, judgments stored in `OUT/judgments_<name>.jsonl`, resumable), as
   (r - 1) / 9. A judgment without a rating leaves that prompt out of the table, since
   `read_ratings` takes no missing rating; the report counts and names those prompts.
3. `se_confidence`: 1 - SE / log N, clipped to [0, 1], from the semantic entropy of the N
   sampled answers (Kuhn, Gal and Farquhar, "Semantic Uncertainty", ICLR 2023; the label source
   of Zhang et al. 2025, arXiv 2502.11021, which confroute implements). log N is the largest SE
   N answers can have (every answer a meaning of its own), so 1 means every sample agrees and
   0 that all differ (or none parses). It uses the *discrete* SE (cluster frequencies) whatever
   --measure.se picks: it is bounded by log N, so the scale is exact, and every backend has it,
   while the likelihood variants need log-probs that some endpoints do not return and the
   paper's variant is unbounded, so models' columns would not share a scale. Needs N >= 2.
   Unparseable answers are left out under --measure.invalid drop (the default); with `cluster`
   they count as one shared meaning.

Written to OUT: `ratings.parquet` (the K-model table `confroute.dataset.ratings.read_ratings`
reads: `id`, `prompt`, `split`, `category` when the prompts have a category or a source
column, one column per model named exactly as the model, and the evidence as `<what>:<name>`,
e.g. `se:<name>`, `correct:<name>`, `greedy:<name>`, `judge_rating:<name>`; a model name has no
`:`, so they cannot collide), `prices.yaml` (the ladder's prices, as `parse_prices` reads them)
and `ratings_report.json` (rows, per-model rating kinds, accuracy and SE summary).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from confroute.errors import ConfigError, DataError, require
from confroute.files import write_json, write_text
from confroute.labelling import models, pipeline
from confroute.labelling.judge import RatingJudgeConfig, rate_table
from confroute.labelling.measure import MeasureConfig
from confroute.labelling.models import ROLE
from confroute.labelling.sampling import Backend, SamplingConfig
from confroute.labelling.store import JsonlStore

KINDS = ("correctness", "judge", "se_confidence")


def judgment_path(out_dir: str | Path, name: str) -> Path:
    return Path(out_dir) / f"judgments_{name}.jsonl"


@dataclasses.dataclass
class LadderRun:
    """What `label_ladder` wrote and counted."""

    table: Path
    prices: Path
    report: dict[str, Any]


def label_ladder(prompts: str, out_dir: str | Path,
                 backends: Mapping[str, tuple[str, Backend | Callable[[], Backend]]],
                 prices: Mapping[str, Mapping[str, float]], sampling: SamplingConfig,
                 measure_cfg: MeasureConfig, judge: RatingJudgeConfig | None = None,
                 limit: int | None = None, progress: bool = True) -> LadderRun:
    """Sample, measure and rate every model of a ladder; rerunning resumes (see module doc).

    `backends` maps each model's name (in ladder order) to (the name its answers are stored
    under, a backend or a factory called only when something is left to sample); `prices`
    maps the same names to {input_per_mtok, output_per_mtok}. Raises ConfigError when
    SE-confidence ratings are needed with fewer than 2 samples, DataError for bad prompts or
    a store written with other settings, LLMError when an endpoint fails."""
    out_dir = Path(out_dir)
    rows = pipeline.read_prompts(prompts, limit)
    if judge is None and sampling.n < 2 and any(_gold(r) is None for r in rows):
        raise ConfigError(f"prompts without a gold answer are rated by 1 - SE / log N, which "
                          f"needs --sampling.n >= 2 (found {sampling.n}); sample more, or "
                          "give a judge (--judge_url and --judge_model)")
    stores, sampled = models.sample_models(rows, out_dir, backends, sampling,
                                           progress=progress)
    return rate_from_stores(rows, out_dir, stores, prices, measure_cfg, judge, sampled,
                            progress)


def rate_from_stores(rows: Sequence[dict[str, Any]], out_dir: Path,
                     stores: Mapping[str, JsonlStore], prices: Mapping[str, Any],
                     measure_cfg: MeasureConfig, judge: RatingJudgeConfig | None = None,
                     sampled: dict[str, Any] | None = None, progress: bool = True) -> LadderRun:
    """Measure and rate the stored samples, then write the table, prices and report."""
    import yaml

    frames = models.measure_models(rows, out_dir, stores, measure_cfg)
    common = list(next(iter(frames.values()))["id"])
    by_id = {str(r["id"]): r for r in rows}
    table, category_from = _prompt_columns(next(iter(frames.values())), rows)
    evidence, per_model = [], {}
    for name, frame in frames.items():
        rated, per_model[name] = rate_model(frame, [by_id[i] for i in common], judge,
                                            judgment_path(out_dir, name), progress)
        table[name] = rated.pop("rating")
        evidence.append(_evidence(frame, rated, name))
    table = table.join(evidence)
    missing = table[list(frames)].isna().any(axis=1).to_numpy()
    dropped = table.loc[missing, "id"].tolist()
    table = table.loc[~missing].reset_index(drop=True)
    if len(table) == 0:
        raise DataError(f"every prompt lacks a rating from some model ({len(dropped)} judged "
                        "without a parseable rating); see the judgments_<name>.jsonl files")
    path = pipeline.write_table(table, out_dir / "ratings.parquet")
    prices_path = write_text(out_dir / "prices.yaml", yaml.safe_dump(
        {name: dict(prices[name]) for name in frames}, sort_keys=False))
    kept = ~missing
    report = {
        "rows": len(table), "models": list(frames), "table": str(path),
        "prices": str(prices_path), "category_from": category_from,
        "rating": {"correctness": "1/0: the greedy answer (the first sample without greedy "
                                  "decoding) against the gold answer",
                   "judge": "(r - 1) / 9 for the judge's MT-Bench rating r in 1..10",
                   "se_confidence": "1 - SE_discrete / log(N samples), clipped to [0, 1] "
                                    "(semantic entropy, Kuhn et al. 2023)"},
        "dropped": {"count": len(dropped), "ids": dropped[:20],
                    "why": "the judge gave no parseable rating for some model's answer"},
        "per_model": {name: {**per_model[name],
                             "rating_mean": round(float(table[name].mean()), 4),
                             "kinds": _by_kind(table[name], table[f"rating_kind:{name}"]),
                             "price": dict(prices[name]),
                             "stored_as": (stores[name].meta or {}).get("model"),
                             "quality": _quality(frames[name].loc[kept])}
                      for name in frames},
        "sampling": sampled or {},
        "measure": dataclasses.asdict(measure_cfg),
    }
    write_json(out_dir / "ratings_report.json", report, default=str)
    return LadderRun(path, prices_path, report)


def rate_model(frame: Any, rows: Sequence[dict[str, Any]], judge: RatingJudgeConfig | None,
               judgments: Path, progress: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """One model's ratings of the prompts `rows` (aligned with its evidence `frame`).

    Returns ({"rating": [n] floats in [0, 1] or NaN (judge gave none), "rating_kind": [n]
    kinds, "judge_rating": [n] raw 1-10 or NaN, "judgment": [n] texts or None}, the judge's
    counts when it was asked)."""
    n = len(frame)
    rating = _gold_correctness(frame, rows)
    kind = np.where(np.isnan(rating), "", "correctness").astype(object)
    judged = np.full(n, np.nan)
    judgment: list[str | None] = [None] * n
    rest = np.flatnonzero(np.isnan(rating))
    report: dict[str, Any] = {}
    if len(rest) and judge is not None:
        sub = frame.iloc[rest].reset_index(drop=True)
        out, counts = rate_table(sub, ROLE, judge, judgments, use_gold=False, progress=progress)
        judged[rest] = out[f"rating_{ROLE}"].to_numpy(dtype=float)
        rating[rest] = (judged[rest] - 1.0) / 9.0
        kind[rest] = "judge"
        for i, text in zip(rest, out[f"judgment_{ROLE}"], strict=True):
            judgment[i] = text
        report["judge"] = {k: counts[k] for k in ("judged", "judged_now", "missing_rating")}
    elif len(rest):
        se = frame[f"se_{ROLE}_discrete"].to_numpy(dtype=float)
        for i in rest:
            rating[i] = se_confidence(se[i], len(frame[f"samples_{ROLE}"].iloc[i]))
        kind[rest] = "se_confidence"
    return {"rating": rating, "rating_kind": kind, "judge_rating": judged,
            "judgment": judgment}, report


def se_confidence(se: float, n: int) -> float:
    """1 - SE / log(n) clipped to [0, 1]: 1 when all n samples mean the same, 0 when all differ.

    Raises ConfigError for n < 2 (one sample cannot disagree with itself)."""
    if n < 2:
        raise ConfigError(f"1 - SE / log N needs N >= 2 samples per prompt; found {n}. Sample "
                          "more (--sampling.n) or give a judge")
    return min(1.0, max(0.0, round(1.0 - float(se) / math.log(n), 12)))  # log 3 / log 3


def _gold(row: dict[str, Any]) -> Any:
    gold = row.get("answer")
    return None if gold is None or (isinstance(gold, float) and math.isnan(gold)) else gold


def _gold_correctness(frame: Any, rows: Sequence[dict[str, Any]]) -> np.ndarray:
    """1/0 for the greedy answer (else the first sample) where a gold answer parses; NaN else."""
    from confroute.labelling.answers import answers_match

    out = np.full(len(frame), np.nan)
    greedy = frame[f"correct_{ROLE}"] if f"correct_{ROLE}" in frame.columns else None
    for i, row in enumerate(rows):
        if _gold(row) is None:
            continue
        value = None if greedy is None else greedy.iloc[i]
        if value is None or value != value:  # no greedy answer: the first sample's
            first = frame[f"answers_{ROLE}"].iloc[i][0]
            value = answers_match(first, str(_gold(row)), row.get("answer_type") or "text")
        if value is not None:
            out[i] = float(value)
    return out


def _prompt_columns(frame: Any, rows: Sequence[dict[str, Any]]) -> tuple[Any, str | None]:
    """id, prompt, split and a category (the prompts' `category`, else their `source`)."""
    table = frame[["id", "prompt", "split"]].copy()
    given = {key for row in rows for key, value in row.items() if value is not None}
    category_from = next((c for c in ("category", "source") if c in given), None)
    if category_from:
        table["category"] = frame[category_from].where(frame[category_from].notna(), "unknown")
    return table, category_from


def _evidence(frame: Any, rated: dict[str, Any], name: str) -> Any:
    """The model's evidence columns renamed `<what>:<name>` (se_model_discrete -> se_discrete)."""
    pd = require("pandas", "label")
    columns = {c: f"{models.rename_column(c, '')}:{name}" for c in frame.columns
               if models.in_column(c)}
    out = frame[list(columns)].rename(columns=columns)
    extra = pd.DataFrame({f"{key}:{name}": value for key, value in rated.items()})
    return pd.concat([extra, out], axis=1)


def _quality(frame: Any) -> dict[str, Any]:
    """quality_report of one model, its keys without the internal role."""
    per = pipeline.quality_report(frame, [ROLE])[ROLE]
    return {group: {models.rename_column(k, ""): v for k, v in entry.items()}
            for group, entry in per.items()}


def _by_kind(ratings: Any, kinds: Any) -> dict[str, dict[str, float]]:
    """Rows and mean rating per rating kind: the kinds are on different scales."""
    return {str(kind): {"n": int(len(group)), "mean": round(float(group.mean()), 4)}
            for kind, group in ratings.groupby(kinds)}
