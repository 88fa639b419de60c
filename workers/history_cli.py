"""History commands: ``taskcore performance`` (per task counts, failure rate, percentiles)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import click
import sqlalchemy as sa

from .loading import APP_OPTION, load_operations
from .ops_cli import fail, failing_clearly
from .output import FORMAT_OPTION, emit

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DURATION = re.compile(r"(\d+)\s*([smhdw])")
_UNDEFINED_TABLE = "42P01"  # PostgreSQL's SQLSTATE for a missing table


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``30m``, ``1h``, ``7d`` (ago) or an ISO 8601 time (UTC unless it says otherwise).

    Raises ValueError with a message fit for a person.
    """
    text = text.strip()
    duration = _DURATION.fullmatch(text)
    if duration:
        amount = int(duration.group(1))
        if amount == 0:
            raise ValueError(f"{text!r} is no time at all: use e.g. 30m, 1h or 7d")
        return (now or datetime.now(UTC)) - timedelta(**{_UNITS[duration.group(2)]: amount})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a duration (30m, 1h, 7d) nor an ISO time (2026-01-31T14:00)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Since(click.ParamType):
    """A click parameter for ``parse_since``: bad input is a usage error."""

    name = "DURATION|TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, datetime):
            return value
        try:
            return parse_since(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


@contextlib.contextmanager
def database_errors() -> Iterator[None]:
    """Turn a history database that cannot answer into a one-line error and exit 1."""
    try:
        yield
    except sa.exc.DBAPIError as exc:
        first = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        if getattr(exc.orig, "pgcode", None) == _UNDEFINED_TABLE or "no such table" in first:
            fail(
                f"the history database has no task history tables (run `taskcore init-db`): {first}"
            )
        if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError):
            fail(f"cannot reach the history database (DATABASE_URL): {first}")
        raise


@click.command()
@APP_OPTION
@click.option(
    "--since",
    default="1h",
    show_default=True,
    type=Since(),
    help="Runs finished since: a duration ago (30m, 1h, 7d) or an ISO time.",
)
@click.option("--task", "task_name", default=None, help="Only this task.")
@FORMAT_OPTION
def performance(app_spec: str | None, since: datetime, task_name: str | None, fmt: str) -> None:
    """Per task: runs, failure rate, p50/p95/p99 run time and queue wait (seconds)."""
    ops = load_operations(app_spec, history=True)
    with failing_clearly(), database_errors():
        rows = ops.performance(since=since, task=task_name)
    if fmt == "json":
        emit(rows, fmt)
        return
    click.echo(f"runs finished since {since.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC")
    emit([_for_people(r) for r in rows], fmt)


def _for_people(row: dict[str, Any]) -> dict[str, Any]:
    """Rates as percentages and seconds with three decimals, for the table."""
    shown: dict[str, Any] = {"task": row["task"], "count": row["count"], "failed": row["failed"]}
    rate = row["failure_rate"]
    shown["failure_rate"] = f"{rate:.1%}" if rate is not None else None
    for key, value in row.items():
        if key.startswith(("runtime_", "wait_")):
            shown[key] = f"{value:.3f}" if value is not None else None
    return shown
