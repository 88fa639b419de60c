"""Rate-limited tasks for the rate-limit tests."""

from __future__ import annotations

import json
import os
import time

import redis

from taskcore import TaskApp

app = TaskApp("limited", queues={"capped": {"rate_limit": "5/s"}})
PREFIX = os.environ.get("TEST_KEY_PREFIX", "taskcore-test:unset:")
_redis = redis.Redis.from_url(os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))


def record(event: str, **data: object) -> None:
    _redis.rpush(PREFIX + "log", json.dumps({"event": event, "at": time.time(), **data}))


@app.task(queue="limited", rate_limit="20/s")
def twenty_per_second(i: int) -> None:
    record("start", i=i)


@app.task(queue="slow", rate_limit="2/s")
def two_per_second(i: int) -> None:
    record("slow", i=i)


@app.task(queue="slow", rate_limit="12/m")
def every_five_seconds(i: int) -> None:
    record("five", i=i)


@app.task(queue="fast")
def unlimited(i: int) -> None:
    record("fast", i=i)


@app.task(queue="capped")
def in_capped_queue(i: int) -> None:
    record("capped", i=i)
