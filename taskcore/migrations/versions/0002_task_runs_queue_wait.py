"""task_runs.queue_wait: seconds from when a message was due to its start.

Revision ID: 0002_task_runs_queue_wait
Revises: 0001_task_history
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_task_runs_queue_wait"
down_revision = "0001_task_history"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # An adopted database (see 0001) may have the column already.
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("task_runs")}
    if "queue_wait" not in columns:
        op.add_column("task_runs", sa.Column("queue_wait", sa.Float))


def downgrade() -> None:
    with op.batch_alter_table("task_runs") as batch:  # SQLite copies the table
        batch.drop_column("queue_wait")
