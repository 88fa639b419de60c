"""The web app's database: one Flask-SQLAlchemy ``db`` for every blueprint's models.

The tables are made by migrations (``webapp/migrations``, Alembic), never by the
factory: ``flask --app webapp db upgrade`` applies taskcore's history migrations and
then the web app's, once per deployment (compose's ``migrate`` service, the
Kubernetes ``migrate`` Job, ``make run``); tests call ``upgrade_database``.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import click
import sqlalchemy as sa
from flask import Flask
from flask.cli import AppGroup
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Session

from taskcore.history import sqlalchemy_url

#: Every module that declares models: the migrations compare these with the database.
MODEL_MODULES = (
    "webapp.auth.models",
    "webapp.quizzes.models",
    "webapp.documents.models",
    "webapp.orders.models",
    "webapp.reports.models",
)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite stores no zone of its own)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware (UTC) datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:  # SQLite hands back what was stored, without its zone
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of the web app's models (declare timestamps as ``UTCDateTime``)."""


db = SQLAlchemy(model_class=Base)


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def default_database_url(app: Flask) -> str:
    """``DATABASE_URL`` from the environment, else a SQLite file in the instance folder."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{Path(app.instance_path) / 'webapp.sqlite3'}"


# (pid, url, engine): a forked worker process makes its own engine, never its parent's.
_task_engine: tuple[int, str, sa.Engine] | None = None


def task_engine() -> sa.Engine:
    """The engine tasks use in a worker process: ``DATABASE_URL`` as the web app reads it."""
    global _task_engine
    url = os.environ.get("DATABASE_URL") or default_database_url(Flask("webapp"))
    if _task_engine is None or _task_engine[:2] != (os.getpid(), url):
        from taskcore.history import make_engine

        _task_engine = (os.getpid(), url, make_engine(url))
    return _task_engine[2]


def task_session() -> Session:
    """A new ORM session for code outside a request, e.g. a task body (use ``with``)."""
    return Session(task_engine(), expire_on_commit=False)


def init_db(app: Flask) -> None:
    """Point ``db`` at ``app.config["DATABASE_URL"]`` (psycopg2 for PostgreSQL)."""
    url = app.config.get("DATABASE_URL")
    if not url:
        raise RuntimeError("DATABASE_URL is empty: set it to a database URL, or unset it")
    app.config["SQLALCHEMY_DATABASE_URI"] = sqlalchemy_url(url)
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {"pool_pre_ping": True})
    db.init_app(app)
    app.cli.add_command(db_cli)


def models_metadata() -> sa.MetaData:
    """The MetaData of every model of the web app (imports MODEL_MODULES)."""
    import importlib

    for module in MODEL_MODULES:
        importlib.import_module(module)
    return db.metadata


def upgrade_database(app: Flask, *, history: bool = True) -> None:
    """Migrate ``app``'s database to the newest schema: taskcore's history tables
    (unless ``history`` is False), then the web app's own."""
    from taskcore.history import create_schema

    from .migrations import WEBAPP

    with app.app_context():
        try:
            if history:
                create_schema(db.engine)
            WEBAPP.upgrade(db.engine)
        finally:
            db.engine.dispose()  # a process that only migrated keeps no connection open


db_cli = AppGroup("db", help="The database's schema (Alembic migrations).")


@db_cli.command("upgrade")
def upgrade_command() -> None:
    """Apply every migration: the task history tables', then the web app's (idempotent)."""
    from flask import current_app

    from taskcore.migrations import SchemaAheadError

    try:
        upgrade_database(current_app)  # type: ignore[arg-type]
    except SchemaAheadError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"the database is up to date: {_revisions(current_app)}")  # type: ignore[arg-type]


@db_cli.command("downgrade")
@click.argument("revision")
def downgrade_command(revision: str) -> None:
    """Revert the web app's tables to REVISION ("base": drop them). The history tables
    stay; `alembic -c taskcore/migrations/alembic.ini downgrade` reverts those."""
    from flask import current_app

    from .migrations import WEBAPP

    try:
        WEBAPP.downgrade(db.engine, revision)
    finally:
        db.engine.dispose()
    click.echo(f"the web app's tables are at: {_revisions(current_app)}")  # type: ignore[arg-type]


@db_cli.command("current")
@click.option(
    "--check",
    is_flag=True,
    help="Exit 1 unless both are at their newest revision (e.g. to wait for a migration).",
)
def current_command(check: bool) -> None:
    """Print the revision of the history tables and of the web app's tables."""
    from flask import current_app

    click.echo(_revisions(current_app))  # type: ignore[arg-type]
    if check and not is_up_to_date(current_app):  # type: ignore[arg-type]
        raise click.ClickException("the database is not migrated: run `flask db upgrade`")


def is_up_to_date(app: Flask) -> bool:
    """Whether the history tables and the web app's are at their newest revisions."""
    from taskcore.migrations import HISTORY

    from .migrations import WEBAPP

    with app.app_context():
        try:
            return all(set(env.current(db.engine)) == set(env.heads()) for env in (HISTORY, WEBAPP))
        finally:
            db.engine.dispose()


def _revisions(app: Flask) -> str:
    from taskcore.migrations import HISTORY

    from .migrations import WEBAPP

    with app.app_context():
        try:
            parts = [
                f"{name} {', '.join(env.current(db.engine)) or 'none'}"
                f" (newest {', '.join(env.heads())})"
                for name, env in (("history", HISTORY), ("webapp", WEBAPP))
            ]
        finally:
            db.engine.dispose()
    return "; ".join(parts)
