"""Helpers of the decision-log tests: entries as the service makes them, and reading rows back."""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, select

from confroute.traffic.records import Entry
from confroute.traffic.schema import decisions, outcomes
from confroute.traffic.served import ArtifactIdentity

ARTIFACT = ArtifactIdentity("artifact-v1", "a" * 64)
MODELS = ["edge", "cloud"]


def entry(i: int | str, **fields: Any) -> Entry:
    """The entry of request `req-<i>`: a chat request routed to the edge, answered by it."""
    values: dict[str, Any] = {
        "request_id": f"req-{i}", "artifact": ARTIFACT, "text": f"What is {i} + {i}?",
        "models": MODELS, "chosen_model": "edge", "answering_model": "edge", "score": 0.25,
        "probabilities": {"edge": 0.75, "cloud": 1.0}, "policy": {"threshold": 0.5},
        "status": 200, "latency_s": 0.01, "prompt_tokens": 10, "completion_tokens": 20}
    values.update(fields)
    return Entry(**values)


def rows(url: str, table: Any = decisions) -> list[dict[str, Any]]:
    """Every row of `table` (decisions by default) as dicts, read with a fresh engine."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(select(table))]
    finally:
        engine.dispose()


def outcome_rows(url: str) -> list[dict[str, Any]]:
    return rows(url, outcomes)


def verdict_row(request_id: str, cheaper: str, pricier: str, right: tuple[bool, bool],
                time: float) -> dict[str, Any]:
    """The outcome the shadow judge stores when a gold-knowing judge compares the two answers:
    the only right answer wins, both or neither right is a tie."""
    from confroute.traffic.records import outcome_row

    winner = cheaper if right == (True, False) else pricier if right == (False, True) else "tie"
    return outcome_row(request_id, f"judge:{cheaper}:{pricier}", "judge", time=time,
                       verdict={"models": [cheaper, pricier], "winner": winner,
                                "orders": [winner, winner], "judge": "judge"}, cost_usd=1e-4)


def fill(log: Any, prompts: list[str], correct: dict[str, Any], models: list[str],
         start: float = 1_000_000.0, chosen: list[str] | None = None,
         categories: list[str] | None = None, **fields: Any) -> list[str]:
    """Log one request per prompt (one second apart), routed to `chosen[i]` (default the
    cheapest model), with the judge verdict between it and every other model from `correct`
    ({model: bool [n]}); returns the request ids."""
    ids = []
    for i, prompt in enumerate(prompts):
        request_id, at = f"req-{start:.0f}-{i}", start + i
        model = chosen[i] if chosen else models[0]
        log.record(entry(i, request_id=request_id, text=prompt, models=models, time=at,
                         chosen_model=model, answering_model=model,
                         category=categories[i] if categories else None, **fields))
        for other in models:
            if other != model:
                a, b = sorted((model, other), key=models.index)
                log.add_outcome(verdict_row(request_id, a, b,
                                            (bool(correct[a][i]), bool(correct[b][i])), at + 0.5))
        ids.append(request_id)
    return ids
