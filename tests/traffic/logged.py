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
