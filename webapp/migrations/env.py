"""Alembic's entry point for the web app's migrations (see ``__init__``)."""

from webapp.migrations import WEBAPP

WEBAPP.run_env()
