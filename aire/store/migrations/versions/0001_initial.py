"""The store as it was before migrations: runs, results, alias_history, incidents.

A store created by ``create_all`` before migrations existed has exactly this schema and is stamped at
this revision instead of running it (aire.store.migrate). Written out here, not taken from the
models, so that later changes to aire/store/schema.py need revisions of their own.

Revision ID: 0001
Revises:
Create Date: 2025-01-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("resume_key", sa.String(64), nullable=False),
        sa.Column("suite", sa.String(200), nullable=False),
        sa.Column("suite_version", sa.String(64), nullable=False),
        sa.Column("endpoint", sa.String(200), nullable=False),
        sa.Column("served_model", sa.String(200), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("n_samples", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("mlflow_run_id", sa.String(64), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("finished_at", TZ, nullable=True),
    )
    op.create_index("ix_runs_resume_key", "runs", ["resume_key"])
    op.create_table(
        "results",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(36), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("sample_id", sa.String(200), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("slices", sa.JSON(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("finish_reason", sa.String(32), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("output_tokens", sa.Integer(), nullable=True),
        sa.Column("ttft_s", sa.Float(), nullable=True),
        sa.Column("tpot_s", sa.Float(), nullable=True),
        sa.Column("e2e_s", sa.Float(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error_type", sa.String(32), nullable=True),
        sa.Column("error_status", sa.Integer(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("scores_json", sa.JSON(), nullable=False),
        sa.Column("explanations", sa.JSON(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.UniqueConstraint("run_id", "sample_id"),
    )
    op.create_index("ix_results_run_id", "results", ["run_id"])
    op.create_table(
        "alias_history",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("alias", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("previous_version", sa.String(32), nullable=True),
        sa.Column("verdict", sa.String(16), nullable=True),
        sa.Column("forced", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.UniqueConstraint("model", "alias", "seq"),
    )
    op.create_index("ix_alias_history_model", "alias_history", ["model"])
    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("open_key", sa.String(300), nullable=True, unique=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("rolled_back_to", sa.String(32), nullable=True),
        sa.Column("actuator", sa.JSON(), nullable=False),
        sa.Column("mlflow_run_id", sa.String(64), nullable=True),
        sa.Column("opened_at", TZ, nullable=False),
        sa.Column("cleared_at", TZ, nullable=True),
        sa.Column("cleared_by", sa.String(200), nullable=True),
        sa.Column("clear_reason", sa.Text(), nullable=True),
    )
    op.create_index("ix_incidents_model", "incidents", ["model"])


def downgrade() -> None:
    for table in ("incidents", "alias_history", "results", "runs"):
        op.drop_table(table)
