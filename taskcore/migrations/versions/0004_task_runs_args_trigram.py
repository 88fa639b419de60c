"""PostgreSQL: the pg_trgm extension and a trigram index on task_runs.args.

Revision ID: 0004_task_runs_args_trigram
Revises: 0003_task_runs_page_indexes
Create Date: 2026-11-23

``args ILIKE '%text%'`` (the console's search) then needs no table scan. The
extension goes into ``public``, not into the first schema of the search path
(which may be an application's own, dropped with it); the index names the operator
class with the extension's schema. Where the extension cannot be created (no
privilege) this logs a warning and makes no index: ``taskcore init-db`` makes it
once an administrator has run ``CREATE EXTENSION pg_trgm``. Nothing on SQLite.
"""

from __future__ import annotations

from alembic import op

from taskcore.history import TRIGRAM_INDEX, create_trigram_index

revision = "0004_task_runs_args_trigram"
down_revision = "0003_task_runs_page_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        create_trigram_index(op.get_bind())


def downgrade() -> None:
    # The extension stays: it lives in public, where other schemas may use it.
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index(TRIGRAM_INDEX, table_name="task_runs", if_exists=True)
