"""Ratings per model per prompt: an LLM judge (MT-Bench single-answer, 1-10) or correctness.

The judge is any OpenAI-compatible chat endpoint; its prompt is FastChat's `single-v1` template
(`single-math-v1` when a reference answer is given), copied into this package with its licence.
A judgment without a parseable rating is stored with rating None (missing), never a number.
Judgments go to an append-only store as they arrive, so an interrupted run resumes.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from confroute.dataset.builtin import HERE as BUILTIN_DIR
from confroute.errors import DataError, require
from confroute.labelling.answers import AnswerType, answers_match, extract_answer
from confroute.labelling.store import JsonlStore
from confroute.llm_client import EndpointConfig, LLMClient, message_text

TEMPLATES = BUILTIN_DIR / "mt_bench_judge_prompts.jsonl"
_RATING = re.compile(r"\[\[\s*(\d+(?:\.\d+)?)\s*\]\]")
_RATING_FALLBACK = re.compile(r"(?:\[|Rating:\s*)(\d+(?:\.\d+)?)(?:\]|\s*/\s*10|\s*$)",
                              re.IGNORECASE | re.MULTILINE)


def template(name: str = "single-v1") -> dict[str, str]:
    """A FastChat judge template by name (`single-v1`, `single-math-v1`)."""
    for line in TEMPLATES.read_text().splitlines():
        record = json.loads(line)
        if record["name"] == name:
            return record
    raise DataError(f"no judge template '{name}'; have single-v1 and single-math-v1")


def judge_messages(question: str, answer: str, reference: str | None = None) -> list[dict]:
    """The chat messages MT-Bench sends its judge for one answer."""
    if reference:
        tpl = template("single-math-v1")
        user = tpl["prompt_template"].format(question=question, answer=answer,
                                             ref_answer_1=reference)
    else:
        tpl = template("single-v1")
        user = tpl["prompt_template"].format(question=question, answer=answer)
    return [{"role": "system", "content": tpl["system_prompt"]}, {"role": "user", "content": user}]


def parse_rating(judgment: str, low: float = 1.0, high: float = 10.0) -> float | None:
    """The rating in a judgment ("Rating: [[7]]"); None when absent, ambiguous or out of range.

    The last `[[n]]` wins (judges sometimes quote the format before rating); without one, a
    single "[n]" or "Rating: n" / "n/10" is accepted. Two different fallback numbers are
    ambiguous, so missing.
    """
    found = _RATING.findall(judgment or "")
    if not found:
        fallback = set(_RATING_FALLBACK.findall(judgment or ""))
        if len(fallback) != 1:
            return None
        found = list(fallback)
    value = float(found[-1])
    return value if low <= value <= high else None


def correctness(answer: str, gold: Any, answer_type: AnswerType,
                choices: str | None = None) -> float | None:
    """1.0 / 0.0 against a gold answer (math: numeric; multiple choice: option letter)."""
    parsed = extract_answer(answer, answer_type, choices)
    match = answers_match(parsed.value, None if gold is None else str(gold), answer_type)
    return None if match is None else float(match)


@dataclasses.dataclass
class RatingJudgeConfig:
    """The judge that rates one answer at a time on MT-Bench's 1-10 scale (single-answer
    grading); temperature 0 and MT-Bench's 2048-token budget by default. Not the pairwise
    judge of the evaluation (`confroute.evaluation.judge.PairwiseJudgeConfig`)."""

    endpoint: EndpointConfig
    """The judge model's OpenAI-compatible endpoint; its concurrency bounds requests in flight."""
    max_tokens: int = 2048
    temperature: float = 0.0


def judge_rows(items: Sequence[dict[str, Any]], cfg: RatingJudgeConfig, store: JsonlStore,
               progress: bool = True) -> dict[str, Any]:
    """Judge every item `{"key", "question", "answer", "reference"?}` not yet in `store`.

    Each judgment is stored as it arrives (`{"key", "judge", "judgment", "rating"}`, rating
    None when the judgment has none), so an interrupted run resumes. Returns counts: items,
    judged_now, missing_rating. Raises `LLMError` when the judge endpoint fails after its
    retries (judgments already stored stay).
    """
    todo = [i for i in items if i["key"] not in store]
    if todo:
        _judge_all(todo, cfg, store, progress)
    ratings = [store.records[i["key"]]["rating"] for i in items if i["key"] in store.records]
    return {"items": len(items), "judged_now": len(todo),
            "missing_rating": sum(r is None for r in ratings)}


def _judge_all(items: Sequence[dict[str, Any]], cfg: RatingJudgeConfig, store: JsonlStore,
               progress: bool) -> None:
    tqdm = require("tqdm", "label").tqdm
    model = cfg.endpoint.model
    bar = tqdm(total=len(items), disable=not progress, unit="answer", desc="judging")

    def keep(i: int, completion: Any) -> None:
        text = message_text(completion)
        store.add([{"key": items[i]["key"], "judge": model, "judgment": text,
                    "rating": parse_rating(text)}])  # written as it arrives
        bar.update(1)

    batch = [judge_messages(i["question"], i["answer"], i.get("reference")) for i in items]
    try:
        LLMClient(cfg.endpoint).chat_many(batch, on_done=keep, temperature=cfg.temperature,
                                          max_tokens=cfg.max_tokens)
    finally:
        bar.close()


def rate_table(frame: Any, role: str, cfg: RatingJudgeConfig | None,
               store_path: str | Path | None, use_gold: bool = True,
               progress: bool = True) -> tuple[Any, dict[str, Any]]:
    """Add `rating_<role>` to a label table: correctness where a gold answer exists and
    `use_gold`, else the judge's 1-10 rating of the model's greedy (or first sampled) answer.

    Returns (a copy of `frame` with rating_<role>, rating_<role>_kind and, where judged,
    judgment_<role>; counts). Raises `DataError` when the table has no answers of `role`, or
    when answers without gold need a judge and `cfg` or `store_path` is None; `LLMError` when
    the judge endpoint fails."""
    answers = _answers(frame, role)
    out = frame.copy()
    ratings: list[float | None] = [None] * len(frame)
    kinds: list[str] = ["missing"] * len(frame)
    to_judge: list[dict[str, Any]] = []
    has_gold = "answer" in frame.columns
    for i, row in enumerate(frame.to_dict("records")):
        gold = row.get("answer") if has_gold else None
        if use_gold and gold is not None and gold == gold and row.get("answer_type"):
            ratings[i] = correctness(answers[i], gold, row["answer_type"], row.get("choices"))
            kinds[i] = "correctness"
        else:
            to_judge.append({"key": f"{role}:{row['id']}", "question": str(row["prompt"]),
                             "answer": answers[i], "row": i})
    report: dict[str, Any] = {"correctness": kinds.count("correctness"),
                              "judged": len(to_judge)}
    if to_judge:
        if cfg is None or store_path is None:
            raise DataError(f"{len(to_judge)} prompts have no gold answer; give a judge model "
                            "(--judge-url and --judge-model) to rate them")
        store = JsonlStore(store_path, {"judge": cfg.endpoint.model, "role": role})
        report.update(judge_rows(to_judge, cfg, store, progress))
        for item in to_judge:
            record = store.records[item["key"]]
            ratings[item["row"]], kinds[item["row"]] = record["rating"], "judge"
            out.loc[item["row"], f"judgment_{role}"] = record["judgment"]
    out[f"rating_{role}"] = [float("nan") if r is None else r for r in ratings]
    out[f"rating_{role}_kind"] = kinds
    report["missing"] = sum(r is None for r in ratings)
    return out, report


def _answers(frame: Any, role: str) -> list[str]:
    if f"greedy_{role}" in frame.columns:
        return [str(a) for a in frame[f"greedy_{role}"]]
    if f"samples_{role}" in frame.columns:
        return [str(list(s)[0]) for s in frame[f"samples_{role}"]]
    raise DataError(f"table has no greedy_{role} or samples_{role} column; make it with "
                    "`confroute label` first")
