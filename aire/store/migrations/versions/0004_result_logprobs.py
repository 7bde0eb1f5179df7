"""Output-token log-probabilities on each result, for the confidence evaluator and re-scoring it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite cannot ALTER a table in place beyond adding a column, and batch is a no-op
    # wrapper elsewhere; nullable, so existing rows (no logprobs asked) need no value.
    with op.batch_alter_table("results") as batch:
        batch.add_column(sa.Column("logprobs", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("results") as batch:
        batch.drop_column("logprobs")
