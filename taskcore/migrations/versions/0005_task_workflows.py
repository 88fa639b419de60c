"""Workflows: task_runs.workflow_id and the task_workflows table.

Revision ID: 0005_task_workflows
Revises: 0004_task_runs_args_trigram
Create Date: 2026-11-23

A chain, group or chord is recorded with its kind and its members in order
(``task_workflows``); each member's row names it (``task_runs.workflow_id``), so
the console and the API show a workflow as one unit and a task links to it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_task_workflows"
down_revision = "0004_task_runs_args_trigram"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # An adopted database (see 0001) may have some of it already.
    inspector = sa.inspect(op.get_bind())
    if "workflow_id" not in {c["name"] for c in inspector.get_columns("task_runs")}:
        op.add_column("task_runs", sa.Column("workflow_id", sa.String(200)))
    op.create_index("ix_task_runs_workflow", "task_runs", ["workflow_id"], if_not_exists=True)
    if not inspector.has_table("task_workflows"):
        op.create_table(
            "task_workflows",
            sa.Column("workflow_id", sa.String(200), primary_key=True),
            sa.Column("kind", sa.String(20), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("members", sa.JSON, nullable=False),
            sa.Column("callback", sa.JSON),
        )
    op.create_index(
        "ix_task_workflows_created",
        "task_workflows",
        ["created_at", "workflow_id"],
        if_not_exists=True,
    )


def downgrade() -> None:
    op.drop_table("task_workflows")
    op.drop_index("ix_task_runs_workflow", table_name="task_runs", if_exists=True)
    with op.batch_alter_table("task_runs") as batch:  # SQLite copies the table
        batch.drop_column("workflow_id")
