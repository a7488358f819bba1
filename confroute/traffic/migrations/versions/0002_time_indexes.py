"""Indexes for the time-window reads (export, gate, drift) and per-artifact drift.

The first logs were read whole; reading "the last week" or "this artifact's decisions" of a
shared fleet log scans every row without them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_decisions_time", "decisions", ["time"])
    op.create_index("ix_decisions_artifact", "decisions", ["artifact_sha256", "time"])
    op.create_index("ix_outcomes_time", "outcomes", ["time"])


def downgrade() -> None:
    op.drop_index("ix_outcomes_time", "outcomes")
    op.drop_index("ix_decisions_artifact", "decisions")
    op.drop_index("ix_decisions_time", "decisions")
