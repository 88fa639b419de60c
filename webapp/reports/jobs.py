"""Sending report jobs, once per filter, and where their results live in Redis.

**One running job per kind and filter.** Every job is sent with taskcore's idempotency
key ``reports:<kind>:<filter hash>``: while a job holding that key is queued or runs, a
second click gets the same job back instead of a new one. taskcore keeps a key whose
job *succeeded*, too (until ``idempotency_window``); a report should be made again on
request once the last one is done, so a finished holder gives its key up here and the
new job takes it. That is the one mechanism; there is no other lock.

Redis keys live under the task app's namespace (``<namespace>:reports:...``), so apps
(and tests) sharing a Redis never meet.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from taskcore import TaskApp
from taskcore.states import State
from taskcore.task import Task, TaskHandle

from .filters import filter_hash

#: How long (s) a job holds its key at most: a lost message frees the filter after this.
JOB_WINDOW = 3600.0

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


def job_key(kind: str, filters: Mapping[str, Any]) -> str:
    """The idempotency key of a job of ``kind`` over ``filters``."""
    return f"reports:{kind}:{filter_hash(filters)}"


def send_once(
    task: Task,
    args: Sequence[Any],
    *,
    kind: str,
    filters: Mapping[str, Any],
    task_id: str,
    priority: int,
) -> tuple[TaskHandle, bool]:
    """Send ``task`` unless the same kind of job over the same filter is queued or
    running; returns (the job's handle, whether it is a new one).

    Raises taskcore's PublishError (broker) or a Redis error: then nothing was sent.
    """
    app = task.app
    key = job_key(kind, filters)
    for _ in range(3):
        handle = task.apply_async(args, task_id=task_id, priority=priority, idempotency_key=key)
        if handle.id == task_id:
            return handle, True
        if app.status(handle.id).state != State.SUCCESS:
            return handle, False  # queued or running: that is the job
        # The last one finished: give its key up (unless another caller did) and send anew.
        app.redis.eval(_RELEASE, 1, app.keys.idempotency(key), handle.id)
    return handle, False


# -- Redis keys and values ------------------------------------------------------------------


def _prefix(app: TaskApp) -> str:
    return f"{app.keys.namespace}:reports"


def aggregates_key(app: TaskApp, filters: Mapping[str, Any]) -> str:
    """The cached aggregates of a filter (JSON, with an expiry)."""
    return f"{_prefix(app)}:aggregates:{filter_hash(filters)}"


def aggregates_job_key(app: TaskApp, filters: Mapping[str, Any]) -> str:
    """The id of the last aggregates job sent for a filter (the page follows it)."""
    return f"{_prefix(app)}:aggregates:{filter_hash(filters)}:job"


def search_key(app: TaskApp, search_id: str) -> str:
    """A search's summary (JSON: filters, total, stored, computed_at)."""
    return f"{_prefix(app)}:search:{search_id}"


def search_ids_key(app: TaskApp, search_id: str) -> str:
    """A search's matching contract ids, in result order (a list)."""
    return f"{_prefix(app)}:search:{search_id}:ids"


def read_json(app: TaskApp, key: str) -> dict[str, Any] | None:
    raw = app.redis.get(key)
    return json.loads(raw) if raw else None
