"""Alembic's entry point for the task history migrations (see ``__init__``)."""

from taskcore.migrations import HISTORY

HISTORY.run_env()
