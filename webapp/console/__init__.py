"""The operations console: server-rendered pages over ``taskcore.operations.Operations``.

Views parse input, call the operations API (``ops()``) and render; none talks
to RabbitMQ, Redis or the history tables by itself. Reads need a signed-in
viewer, actions an operator, and every action is written to the audit log.
When a service is down a page says which and answers 503 instead of failing.
"""

from __future__ import annotations

from typing import Any

import redis
import sqlalchemy as sa
from flask import Blueprint, current_app, render_template

from taskcore import TaskApp, TaskcoreError
from taskcore.operations import Operations

from . import present

console = Blueprint("console", __name__, template_folder="templates")


def ops() -> Operations:
    """The app's operations API."""
    return current_app.extensions["taskcore_ops"]


def task_app() -> TaskApp:
    """The app's TaskApp."""
    return current_app.extensions["taskcore"]


@console.errorhandler(TaskcoreError)
@console.errorhandler(redis.RedisError)
@console.errorhandler(sa.exc.SQLAlchemyError)
def _service_unavailable(exc: Exception) -> Any:
    if isinstance(exc, redis.RedisError):
        what = f"Redis cannot be reached ({exc})"
    elif isinstance(exc, sa.exc.SQLAlchemyError):
        what = f"the history database cannot be reached ({type(exc).__name__})"
    else:
        what = str(exc)
    return render_template("console/unavailable.html", what=what), 503


for _name in ("when", "ago", "duration", "pretty_json"):
    console.add_app_template_filter(getattr(present, _name), _name)

from . import actions, pages  # noqa: E402,F401  (routes register on import)
