"""The operations console: server-rendered pages over ``taskcore.operations.Operations``.

Views parse input, call the operations API (``ops()``) and render; none talks
to RabbitMQ, Redis or the history tables by itself. Reads need a signed-in
viewer, actions an operator, and every action is written to the audit log.
When a service is down a page says which and answers 503 instead of failing.
"""

from __future__ import annotations

import re
from typing import Any

import redis
import sqlalchemy as sa
from flask import Blueprint, abort, current_app, render_template

from taskcore import QueueNotFound, TaskApp, TaskcoreError
from taskcore.operations import Operations

from ..errors import error_response
from . import present

console = Blueprint("console", __name__, template_folder="templates")

#: What AMQP allows in a queue name (pamqp refuses anything else before it is sent),
#: leaving room for the ``.dead`` suffix within its 255 characters.
_QUEUE_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,250}")


def ops() -> Operations:
    """The app's operations API."""
    return current_app.extensions["taskcore_ops"]


def task_app() -> TaskApp:
    """The app's TaskApp."""
    return current_app.extensions["taskcore"]


def queue_name(name: str) -> str:
    """``name`` from a URL if a queue could be called that, else a 404 (an AMQP client
    refuses such a name before asking the broker, which would end as a 500)."""
    if not _QUEUE_NAME.fullmatch(name):
        abort(404, description=f"There is no queue named {name!r}.")
    return name


@console.errorhandler(QueueNotFound)
def _queue_not_found(exc: QueueNotFound) -> Any:
    """A queue the broker does not have is a 404, not a service that is down."""
    return error_response(404, f"{str(exc)[:1].upper()}{str(exc)[1:]}.")


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
