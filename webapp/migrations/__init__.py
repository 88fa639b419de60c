"""Schema migrations (Alembic) of the web app's own tables: users, API tokens, the audit log.

The web app owns these tables as the library owns its history tables
(``taskcore.migrations``): two Alembic environments, each with its revisions and its
version table (``webapp_alembic_version`` here), in one database. ``flask --app
webapp db upgrade`` applies the library's, then these (``webapp.db.upgrade_database``).

Writing a migration (against a database at head; new model modules go into
``webapp.db.MODEL_MODULES`` first)::

    DATABASE_URL=postgresql://... alembic -c webapp/migrations/alembic.ini \\
        revision --autogenerate --rev-id 0002_what -m "what changes"
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from taskcore.migrations import Migrations


def _metadata() -> sa.MetaData:
    from ..db import models_metadata

    return models_metadata()


def _cli_url() -> str:
    """The database of the ``alembic`` command line: DATABASE_URL (as the app reads it)."""
    import os

    from taskcore.history import sqlalchemy_url

    url = os.environ.get("DATABASE_URL")
    if not url:
        raise RuntimeError("set DATABASE_URL to the web app's database")
    return sqlalchemy_url(url)


#: The web app's tables.
WEBAPP = Migrations(
    Path(__file__).resolve().parent,
    version_table="webapp_alembic_version",
    metadata=_metadata,
    # Made by db.create_all() before migrations existed: exactly revision 0001.
    adopt={"users": "0001_console_auth"},
    cli_url=_cli_url,
)
