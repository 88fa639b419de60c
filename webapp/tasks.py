"""The web app's tasks: the examples here and every workload's (``-A webapp.tasks:app``)."""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import timedelta

from taskcore import Retry

from .api.exposed import callable_from_api
from .taskapp import app

log = logging.getLogger(__name__)


@callable_from_api
@app.task
def add(a: float, b: float) -> float:
    """Add two numbers: the smallest possible task."""
    return a + b


@callable_from_api
@app.task
async def ping() -> str:
    """An async task: runs on the worker's event loop."""
    await asyncio.sleep(0)
    return "pong"


@callable_from_api
@app.task(max_retries=4, retry_backoff=1.0, autoretry_for=(ConnectionError,))
def flaky(chance_of_failure: float = 0.5) -> str:
    """Fails with ConnectionError now and then; retried with exponential backoff."""
    if random.random() < chance_of_failure:
        raise ConnectionError("the remote end hung up (on purpose)")
    return "made it"


@callable_from_api
@app.task(max_retries=2)
def wait_for(seconds: float) -> float:
    """Sleep (in a worker thread); asks for a retry in 1 s if told to wait a negative time."""
    import time

    if seconds < 0:
        raise Retry(countdown=1)
    time.sleep(seconds)
    return seconds


# Fired by `taskcore beat -A webapp.tasks:app` (make run starts one); shown on /schedules.
app.schedule("ping-every-minute", ping, every=timedelta(minutes=1))

# Each workload's tasks register on the same app; importing them here is what lets a
# worker started with `-A webapp.tasks:app` run them.
from .documents import tasks as _documents_tasks  # noqa: E402, F401
from .orders import tasks as _orders_tasks  # noqa: E402, F401
from .quizzes import tasks as _quizzes_tasks  # noqa: E402, F401
from .reports import tasks as _reports_tasks  # noqa: E402, F401
