"""The ``-A`` option of the commands and the app it names, as click expects them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from .find_app import AppNotFound, find_app

if TYPE_CHECKING:
    from taskcore import TaskApp
    from taskcore.operations import Operations

#: The -A/--app option every command that needs the app takes.
APP_OPTION = click.option(
    "-A",
    "--app",
    "app_spec",
    envvar="TASKCORE_APP",
    metavar="MODULE:APP",
    help="The TaskApp to use, e.g. webapp.tasks:app (or set TASKCORE_APP).",
)


def load_app(spec: str | None) -> TaskApp:
    """The TaskApp named by ``-A`` or TASKCORE_APP; a usage error that says why if none."""
    try:
        return find_app(spec)
    except AppNotFound as exc:
        raise click.UsageError(str(exc)) from exc


def load_operations(spec: str | None, *, history: bool = False) -> Operations:
    """The operations API of the app named by ``-A``; with the history database if asked."""
    from taskcore.history import make_engine
    from taskcore.operations import Operations

    return Operations(load_app(spec), make_engine() if history else None)
