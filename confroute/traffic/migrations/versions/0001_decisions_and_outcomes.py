"""The decisions and outcomes tables.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "decisions",
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("time", sa.Float, nullable=False, comment="seconds since the epoch, UTC"),
        sa.Column("endpoint", sa.String(32), nullable=False, comment="route | chat"),
        sa.Column("artifact_id", sa.String(200), nullable=False),
        sa.Column("artifact_sha256", sa.String(64), nullable=False,
                  comment="sha256 of router.json"),
        sa.Column("text_sha256", sa.String(64), nullable=False,
                  comment="sha256 of the scored text"),
        sa.Column("text_chars", sa.Integer, nullable=False),
        sa.Column("text", sa.Text, nullable=True,
                  comment="the scored text; NULL unless text logging"),
        sa.Column("category", sa.String(200), nullable=True,
                  comment="the request's group, if given"),
        sa.Column("models", sa.JSON, nullable=False,
                  comment="the artifact's models, cheapest first"),
        sa.Column("score", sa.Float, nullable=True, comment="P(cloud needed)"),
        sa.Column("probabilities", sa.JSON, nullable=True, comment="{model: P(adequate)}"),
        sa.Column("policy", sa.JSON, nullable=True, comment="rule and thresholds or lambda used"),
        sa.Column("chosen_model", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("answering_model", sa.String(200), nullable=True),
        sa.Column("upstream_model", sa.String(200), nullable=True),
        sa.Column("fallbacks", sa.JSON, nullable=True,
                  comment="[{model, error}] in the order tried"),
        sa.Column("status", sa.Integer, nullable=True, comment="HTTP status sent to the client"),
        sa.Column("latency_s", sa.Float, nullable=True),
        sa.Column("prompt_tokens", sa.Integer, nullable=True, comment="the upstream's usage"),
        sa.Column("completion_tokens", sa.Integer, nullable=True),
        sa.Column("cost_usd", sa.Float, nullable=True,
                  comment="usage x the answering model's price"),
        sa.Column("top_cost_usd", sa.Float, nullable=True,
                  comment="the same usage at the top model's price (always-cloud estimate)"),
    )
    op.create_table(
        "outcomes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("source", sa.String(200), nullable=False,
                  comment="feedback source name, judge:<a>:<b>, implicit:<kind>"),
        sa.Column("kind", sa.String(16), nullable=False,
                  comment="feedback | judge | error | fallback | retry"),
        sa.Column("time", sa.Float, nullable=False),
        sa.Column("model", sa.String(200), nullable=True,
                  comment="the model whose answer is rated"),
        sa.Column("rating", sa.Float, nullable=True, comment="in [0, 1], higher is better"),
        sa.Column("verdict", sa.JSON, nullable=True, comment="judge: models, winner, each order's"),
        sa.Column("cost_usd", sa.Float, nullable=True,
                  comment="what producing this outcome cost"),
        sa.Column("detail", sa.JSON, nullable=True),
        sa.UniqueConstraint("request_id", "source", name="uq_outcomes_request_source"),
    )


def downgrade() -> None:
    op.drop_table("outcomes")
    op.drop_table("decisions")
