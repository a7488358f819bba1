"""The decision log's tables (SQLAlchemy Core): one row per routing decision, one per outcome.

`decisions` holds what the service decided and what happened to the request; `outcomes` holds
what was learned about it afterwards (feedback, shadow-judge verdicts, implicit signals), keyed
by the request id and unique per (request id, source), so a repeated report replaces the
earlier one instead of counting twice. Times are float seconds since the Unix epoch (UTC), the
one representation that sorts and subtracts the same way on every database. The prompt text is
NULL unless text logging is on; its sha256 is always kept (retry detection, joins).

This module is the schema as the newest migration leaves it (`migrations/versions/`); a test
checks that the two agree, so a column added here without a migration fails.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

VERSION_TABLE = "confroute_log_version"
"""Alembic's revision table, named for confroute so a database shared with other Alembic-managed
applications (MLflow, optuna) keeps theirs apart."""

metadata = MetaData()

decisions = Table(
    "decisions", metadata,
    Column("request_id", String(64), primary_key=True),
    Column("time", Float, nullable=False, comment="seconds since the epoch, UTC"),
    Column("endpoint", String(32), nullable=False, comment="route | chat"),
    Column("artifact_id", String(200), nullable=False),
    Column("artifact_sha256", String(64), nullable=False, comment="sha256 of router.json"),
    Column("text_sha256", String(64), nullable=False, comment="sha256 of the scored text"),
    Column("text_chars", Integer, nullable=False),
    Column("text", Text, nullable=True, comment="the scored text; NULL unless text logging"),
    Column("category", String(200), nullable=True, comment="the request's group, if given"),
    Column("models", JSON, nullable=False, comment="the artifact's models, cheapest first"),
    Column("score", Float, nullable=True, comment="P(cloud needed)"),
    Column("probabilities", JSON, nullable=True, comment="{model: P(adequate)}"),
    Column("policy", JSON, nullable=True, comment="rule and thresholds or lambda used"),
    Column("chosen_model", String(200), nullable=False),
    Column("reason", Text, nullable=True),
    Column("answering_model", String(200), nullable=True),
    Column("upstream_model", String(200), nullable=True),
    Column("fallbacks", JSON, nullable=True, comment="[{model, error}] in the order tried"),
    Column("status", Integer, nullable=True, comment="HTTP status sent to the client"),
    Column("latency_s", Float, nullable=True),
    Column("prompt_tokens", Integer, nullable=True, comment="the upstream's usage"),
    Column("completion_tokens", Integer, nullable=True),
    Column("cost_usd", Float, nullable=True, comment="usage x the answering model's price"),
    Column("top_cost_usd", Float, nullable=True,
           comment="the same usage at the top model's price (always-cloud estimate)"),
    Index("ix_decisions_time", "time"),
    Index("ix_decisions_artifact", "artifact_sha256", "time"),
)

outcomes = Table(
    "outcomes", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(64), nullable=False),
    Column("source", String(200), nullable=False,
           comment="feedback source name, judge:<a>:<b>, implicit:<kind>"),
    Column("kind", String(16), nullable=False,
           comment="feedback | judge | error | fallback | retry"),
    Column("time", Float, nullable=False),
    Column("model", String(200), nullable=True, comment="the model whose answer is rated"),
    Column("rating", Float, nullable=True, comment="in [0, 1], higher is better"),
    Column("verdict", JSON, nullable=True, comment="judge: models, winner, each order's"),
    Column("cost_usd", Float, nullable=True, comment="what producing this outcome cost"),
    Column("detail", JSON, nullable=True),
    UniqueConstraint("request_id", "source", name="uq_outcomes_request_source"),
    Index("ix_outcomes_time", "time"),
)
