"""A task that outlives a test broker's consumer_timeout; it records each run in Redis."""

from __future__ import annotations

import json
import os
import time

import redis

from taskcore import TaskApp

app = TaskApp("long")
PREFIX = os.environ.get("TEST_KEY_PREFIX", "taskcore-test:unset:")
#: A work queue of the test's own: the tests share one private broker's vhost.
QUEUE = os.environ.get("TEST_LONG_QUEUE", "long")
_redis = redis.Redis.from_url(os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))


def record(event: str, tag: str) -> None:
    entry = {"event": event, "tag": tag, "at": time.time(), "pid": os.getpid()}
    _redis.rpush(PREFIX + "log", json.dumps(entry))


# A time limit above any test broker's consumer_timeout: the worker says at start that
# this task will be handed over to a lease.
@app.task(queue=QUEUE, time_limit=120)
def export(seconds: float, tag: str) -> str:
    """Work for ``seconds`` (an export of a large table, say)."""
    record("start", tag)
    time.sleep(seconds)
    record("finish", tag)
    return tag
