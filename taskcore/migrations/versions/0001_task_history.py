"""The task history tables as first shipped: task_runs and task_events.

Revision ID: 0001_task_history
Revises:
Create Date: 2026-11-23

A database made by ``create_schema`` before migrations existed has these tables
but no version table: it is stamped with this revision, and the revisions after
it find it in whatever shape that version left it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_task_history"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "task_runs",
        sa.Column("task_id", sa.String(200), primary_key=True),
        sa.Column("task", sa.String(300)),
        sa.Column("queue", sa.String(200)),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("worker", sa.String(300)),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("args", sa.Text),
        sa.Column("result", sa.Text),
        sa.Column("error_type", sa.String(300)),
        sa.Column("error_message", sa.Text),
        sa.Column("traceback", sa.Text),
        sa.Column("runtime", sa.Float),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_task_runs_task", "task_runs", ["task"])
    op.create_index("ix_task_runs_queue", "task_runs", ["queue"])
    op.create_index("ix_task_runs_state", "task_runs", ["state"])
    op.create_index("ix_task_runs_updated_at", "task_runs", ["updated_at"])
    op.create_table(
        "task_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("task_id", sa.String(200), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("worker", sa.String(300)),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.JSON),
    )
    op.create_index("ix_task_events_task_id", "task_events", ["task_id"])
    op.create_index("ix_task_events_at", "task_events", ["at"])


def downgrade() -> None:
    op.drop_table("task_events")
    op.drop_table("task_runs")
