"""Import the TaskApp named by ``package.module:attribute`` (no click: workers use it too)."""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from taskcore import TaskApp


class AppNotFound(Exception):
    """The -A/TASKCORE_APP spec is missing, cannot be imported, or names no TaskApp.

    Not a TaskcoreError on purpose: importing taskcore here would load it into
    every command and into the supervisor, which never need it.
    """


def find_app(spec: str | None) -> TaskApp:
    """Import ``module:attribute`` (attribute defaults to ``app``) and return the TaskApp there."""
    from taskcore import TaskApp

    spec = spec or os.environ.get("TASKCORE_APP")
    if not spec:
        raise AppNotFound("say which app to use: -A package.module:app (or set TASKCORE_APP)")
    module_name, _, attribute = spec.partition(":")
    attribute = attribute or "app"
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `python -m`, find modules in the current directory
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise AppNotFound(f"cannot import {module_name!r} (from -A {spec}): {exc}") from exc
    app = getattr(module, attribute, None)
    if not isinstance(app, TaskApp):
        found = "nothing" if app is None else type(app).__name__
        raise AppNotFound(f"{spec}: expected a TaskApp at {module_name}.{attribute}, found {found}")
    return app
