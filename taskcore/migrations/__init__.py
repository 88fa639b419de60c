"""Schema migrations (Alembic) of the task history tables, and the helper behind them.

The library owns ``task_runs`` and ``task_events``, so their migrations live here
and run without the web app: ``taskcore init-db`` (``history.create_schema``)
applies them. An application that keeps its own tables in the same database has
an Alembic environment of its own (the web app's is ``webapp/migrations``); each
environment keeps its revision in its own version table, so neither sees the
other's tables as strangers and they upgrade independently.

``Migrations`` is one environment: its scripts, its version table and the tables
it owns. It runs Alembic on a connection it is given (no ``alembic.ini`` needed),
serialises concurrent upgrades of one PostgreSQL database with an advisory lock,
adopts a database made before migrations existed, and compares the models with a
migrated database (the test that the two agree).

Writing a migration (against a database at head)::

    DATABASE_URL=postgresql://... alembic -c taskcore/migrations/alembic.ini \\
        revision --autogenerate --rev-id 0005_what -m "what changes"
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent


class _OnlyRevisions(logging.Filter):
    """Alembic's log without its set-up chatter: only "Running upgrade/downgrade ..." lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage().startswith("Running ")


logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
logging.getLogger("alembic.runtime.migration").addFilter(_OnlyRevisions())


class SchemaAheadError(RuntimeError):
    """The database is at a revision this code does not know (a newer version migrated it)."""


class Migrations:
    """One Alembic environment.

    ``metadata`` returns the models' MetaData (called late, so that importing
    this module imports no models); only its tables are compared and owned.
    ``adopt`` maps a table to the revision a database holding that table but no
    version table is stamped with before upgrading: such a database was made by
    ``create_all`` before migrations existed, and the revisions after that one
    are written to find it in any earlier shape. ``cli_url`` gives the database
    of the ``alembic`` command line (default: ``DATABASE_URL``).
    """

    def __init__(
        self,
        directory: Path,
        *,
        version_table: str,
        metadata: Callable[[], sa.MetaData],
        adopt: Mapping[str, str] | None = None,
        ignore_indexes: Collection[str] = (),
        cli_url: Callable[[], str] | None = None,
    ) -> None:
        self.directory = directory
        self.cli_url = cli_url or _cli_url
        self.version_table = version_table
        self.metadata = metadata
        self.adopt = dict(adopt or {})
        self.ignore_indexes = frozenset(ignore_indexes)

    # -- running -------------------------------------------------------------------------

    def config(self, connection: sa.Connection | None = None) -> Any:
        """An Alembic Config for this environment, on ``connection`` if given."""
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(self.directory))
        config.attributes["connection"] = connection
        return config

    def upgrade(self, engine: sa.Engine, revision: str = "head") -> None:
        """Apply the migrations up to ``revision`` in one transaction (on PostgreSQL)."""
        from alembic import command

        with engine.begin() as connection:
            self._lock(connection)
            self._check_known(connection)
            self._adopt(connection)
            command.upgrade(self.config(connection), revision)

    def downgrade(self, engine: sa.Engine, revision: str) -> None:
        """Revert the migrations down to ``revision`` (``"base"``: drop every table)."""
        from alembic import command

        with engine.begin() as connection:
            self._lock(connection)
            self._check_known(connection)
            command.downgrade(self.config(connection), revision)

    def current(self, engine: sa.Engine | sa.Connection) -> tuple[str, ...]:
        """The revisions the database is at (empty before the first upgrade)."""
        if isinstance(engine, sa.Connection):
            return self._context(engine).get_current_heads()
        with engine.connect() as connection:
            return self._context(connection).get_current_heads()

    def heads(self) -> tuple[str, ...]:
        """The newest revisions of this environment's scripts."""
        return tuple(self.script().get_heads())

    def script(self) -> Any:
        from alembic.script import ScriptDirectory

        return ScriptDirectory.from_config(self.config())

    def differences(self, engine: sa.Engine) -> list[Any]:
        """What the models declare and the database lacks, or has otherwise (Alembic's
        ``compare_metadata``, limited to this environment's tables)."""
        from alembic.autogenerate import compare_metadata

        with engine.connect() as connection:
            return list(compare_metadata(self._context(connection), self.metadata()))

    # -- env.py ----------------------------------------------------------------------------

    def run_env(self) -> None:
        """The body of this environment's ``env.py``."""
        from alembic import context

        config = context.config
        if config.config_file_name is not None:  # the alembic command line
            from logging.config import fileConfig

            fileConfig(config.config_file_name, disable_existing_loggers=False)
        options = self._options()
        if context.is_offline_mode():
            context.configure(url=self.cli_url(), literal_binds=True, **options)
            with context.begin_transaction():
                context.run_migrations()
            return
        connection = config.attributes.get("connection")
        if connection is not None:
            context.configure(connection=connection, **options)
            with context.begin_transaction():
                context.run_migrations()
            return
        engine = sa.create_engine(self.cli_url(), poolclass=sa.pool.NullPool)
        try:
            with engine.begin() as connection:
                self._lock(connection)
                context.configure(connection=connection, **options)
                with context.begin_transaction():
                    context.run_migrations()
        finally:
            engine.dispose()

    # -- inside ------------------------------------------------------------------------------

    def _options(self) -> dict[str, Any]:
        return {
            "target_metadata": self.metadata(),
            "version_table": self.version_table,
            "include_name": self._include_name,
            "compare_type": True,
            "compare_server_default": True,
            # SQLite (make run) alters a table by copying it; autogenerate writes that way.
            "render_as_batch": True,
        }

    def _context(self, connection: sa.Connection) -> Any:
        from alembic.runtime.migration import MigrationContext

        return MigrationContext.configure(connection, opts=self._options())

    def _include_name(self, name: str | None, type_: str, parent_names: Any) -> bool:
        """Only this environment's tables; not the indexes kept outside the models."""
        if type_ == "table":
            return name in self.metadata().tables
        if type_ == "index":
            return name not in self.ignore_indexes
        return True

    def _lock(self, connection: sa.Connection) -> None:
        """One migrating process at a time per PostgreSQL database (until commit)."""
        if connection.dialect.name == "postgresql":
            key = zlib.crc32(f"taskcore-migrations:{self.version_table}".encode())
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})

    def _check_known(self, connection: sa.Connection) -> None:
        script = self.script()
        for revision in self._context(connection).get_current_heads():
            if revision not in {s.revision for s in script.walk_revisions()}:
                raise SchemaAheadError(
                    f"the database is at revision {revision!r} ({self.version_table}), which "
                    f"this version does not know (its newest is {', '.join(self.heads())}): "
                    "a newer version migrated it"
                )

    def _adopt(self, connection: sa.Connection) -> None:
        """Stamp a database made before migrations, so that upgrading brings it up to date."""
        from alembic import command

        if self._context(connection).get_current_heads():
            return
        inspector = sa.inspect(connection)
        for table, revision in self.adopt.items():
            if inspector.has_table(table):
                log.info("adopting tables made before migrations: stamping %s", revision)
                command.stamp(self.config(connection), revision)
                return


def _cli_url() -> str:
    """The database of the ``alembic`` command line: ``DATABASE_URL`` (psycopg2 for PostgreSQL)."""
    from ..history import database_url, sqlalchemy_url

    return sqlalchemy_url(database_url())


def _history_metadata() -> sa.MetaData:
    from ..history import metadata

    return metadata


def _history_ignored_indexes() -> tuple[str, ...]:
    from ..history import TRIGRAM_INDEX

    return (TRIGRAM_INDEX,)


#: The task history tables (``task_runs``, ``task_events``, ``task_workflows``).
HISTORY = Migrations(
    HERE,
    version_table="taskcore_alembic_version",
    metadata=_history_metadata,
    adopt={"task_runs": "0001_task_history"},
    # Made by a migration with SQL the models cannot express (an operator class in the
    # extension's schema), and only where pg_trgm is available.
    ignore_indexes=_history_ignored_indexes(),
)
