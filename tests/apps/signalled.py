"""Task signal hooks that record what they saw in Redis (queue ``signalled``)."""

from __future__ import annotations

import json
import os
import time

import redis

from taskcore import Reject, TaskApp, TaskEvent

app = TaskApp("tests")
PREFIX = os.environ.get("TEST_KEY_PREFIX", "taskcore-test:unset:")
_redis = redis.Redis.from_url(os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))


@app.on_task("failed", "dead_lettered", "retried")
def report_failure(event: TaskEvent) -> None:  # a plain function: runs in a thread
    error = event.error or {}
    _redis.rpush(
        PREFIX + "signals",
        json.dumps([event.signal, event.task, event.task_id, error.get("type"), event.worker]),
    )


@app.on_task("succeeded")
async def count_success(event: TaskEvent) -> None:  # async: runs on the worker's loop
    _redis.rpush(PREFIX + "signals", json.dumps(["succeeded", event.task, event.task_id]))


@app.on_task("started")
def broken(event: TaskEvent) -> None:
    raise RuntimeError("a hook with a bug")


@app.task(queue="signalled")
def ok(n: int) -> int:
    time.sleep(0.2)  # long enough to be reported STARTED (after 50 ms)
    return n


@app.task(queue="signalled", max_retries=1, retry_backoff=0.2, retry_jitter=False,
          autoretry_for=(ValueError,))  # fmt: skip
def fails(n: int) -> None:
    raise ValueError(f"bad {n}")


@app.task(queue="signalled")
def refuses(n: int) -> None:
    raise Reject("not this one")
