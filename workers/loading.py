"""Find the TaskApp a command works on: ``-A package.module:app`` or ``TASKCORE_APP``."""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from taskcore import TaskApp

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
    """Import ``module:attribute`` (attribute defaults to ``app``) and return the TaskApp there."""
    from taskcore import TaskApp

    spec = spec or os.environ.get("TASKCORE_APP")
    if not spec:
        raise click.UsageError("say which app to use: -A package.module:app (or set TASKCORE_APP)")
    module_name, _, attribute = spec.partition(":")
    attribute = attribute or "app"
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `python -m`, find modules in the current directory
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise click.UsageError(f"cannot import {module_name!r} (from -A {spec}): {exc}") from exc
    app = getattr(module, attribute, None)
    if not isinstance(app, TaskApp):
        found = "nothing" if app is None else type(app).__name__
        raise click.UsageError(
            f"{spec}: expected a TaskApp at {module_name}.{attribute}, found {found}"
        )
    return app
