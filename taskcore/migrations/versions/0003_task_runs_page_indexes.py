"""Indexes for the console's history reads, replacing the single-column ones.

Revision ID: 0003_task_runs_page_indexes
Revises: 0002_task_runs_queue_wait
Create Date: 2026-11-23

The task list reads newest first, keyset-paged on (updated_at, task_id): one index
per filter, each ending in the page order. Performance reads runs finished in a
window with their timings (an index-only scan on PostgreSQL). A task id prefix
search needs pattern ops on PostgreSQL; SQLite's primary key serves it there.
"""

from __future__ import annotations

from alembic import op

revision = "0003_task_runs_page_indexes"
down_revision = "0002_task_runs_queue_wait"
branch_labels = None
depends_on = None

PAGE_INDEXES = {
    "ix_task_runs_updated": ["updated_at", "task_id"],
    "ix_task_runs_state_updated": ["state", "updated_at", "task_id"],
    "ix_task_runs_task_updated": ["task", "updated_at", "task_id"],
    "ix_task_runs_queue_updated": ["queue", "updated_at", "task_id"],
    "ix_task_runs_worker_updated": ["worker", "updated_at", "task_id"],
}
RETIRED = {
    "ix_task_runs_task": ["task"],
    "ix_task_runs_queue": ["queue"],
    "ix_task_runs_state": ["state"],
    "ix_task_runs_updated_at": ["updated_at"],
}


def upgrade() -> None:
    # IF (NOT) EXISTS throughout: an adopted database (see 0001) may have some already.
    for name, columns in PAGE_INDEXES.items():
        op.create_index(name, "task_runs", columns, if_not_exists=True)
    op.create_index(
        "ix_task_runs_finished",
        "task_runs",
        ["finished_at"],
        postgresql_include=["task", "state", "runtime", "queue_wait"],
        if_not_exists=True,
    )
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            "ix_task_runs_task_id_prefix",
            "task_runs",
            ["task_id"],
            postgresql_ops={"task_id": "varchar_pattern_ops"},
            if_not_exists=True,
        )
    for name in RETIRED:
        op.drop_index(name, table_name="task_runs", if_exists=True)


def downgrade() -> None:
    for name, columns in RETIRED.items():
        op.create_index(name, "task_runs", columns)
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_task_runs_task_id_prefix", table_name="task_runs")
    op.drop_index("ix_task_runs_finished", table_name="task_runs")
    for name in PAGE_INDEXES:
        op.drop_index(name, table_name="task_runs")
