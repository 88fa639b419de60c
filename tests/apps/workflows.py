"""Tasks the workflow tests chain and group (queue ``flow``)."""

from __future__ import annotations

import os

import redis

from taskcore import Reject, TaskApp

app = TaskApp("tests")
PREFIX = os.environ.get("TEST_KEY_PREFIX", "taskcore-test:unset:")
_redis = redis.Redis.from_url(os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))


@app.task(queue="flow")
def add(a: int, b: int) -> int:
    return a + b


@app.task(queue="flow")
def mul(a: int, b: int) -> int:
    return a * b


@app.task(queue="flow")
def collect(values: list[int]) -> int:
    return sum(values)


@app.task(queue="flow")
def refuse(value: int) -> None:
    raise Reject(f"refusing {value} on purpose")


@app.task(queue="flow")
def tally(values: list[int]) -> int:
    """A chord callback that counts its runs in Redis."""
    _redis.incr(PREFIX + "tally-runs")
    return sum(values)


@app.task(queue="flow")
def note_failure(task_id: str, why: str) -> None:
    """A link_error callback: records the id of the task that failed."""
    _redis.rpush(PREFIX + "failures", f"{why}:{task_id}")


@app.task(queue="flow")
def remember(value: int, tag: str) -> None:
    """A link callback: records the result it was given."""
    _redis.rpush(PREFIX + "remembered", f"{tag}:{value}")
