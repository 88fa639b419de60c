"""Tasks the worker tests run. Each records what happened in Redis under TEST_KEY_PREFIX."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time

import redis

from taskcore import Reject, Retry, TaskApp

app = TaskApp("tests")
PREFIX = os.environ.get("TEST_KEY_PREFIX", "taskcore-test:unset:")
_redis = redis.Redis.from_url(os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))


def record(event: str, **data: object) -> None:
    """Append an event with the time and thread it happened in to the test's Redis log."""
    entry = {"event": event, "at": time.time(), "thread": threading.current_thread().name, **data}
    _redis.rpush(PREFIX + "log", json.dumps(entry))


@app.task(queue="work")
def note(tag: str) -> str:
    record("note", tag=tag)
    return tag


@app.task(queue="work")
async def note_async(tag: str) -> str:
    await asyncio.sleep(0)
    record("note_async", tag=tag)
    return tag


@app.task(queue="work")
def sleeper(seconds: float, tag: str) -> None:
    record("start", tag=tag)
    time.sleep(seconds)
    record("finish", tag=tag)


@app.task(queue="work")
async def sleeper_async(seconds: float, tag: str) -> None:
    record("start", tag=tag)
    await asyncio.sleep(seconds)
    record("finish", tag=tag)


@app.task(
    queue="work",
    max_retries=3,
    retry_backoff=0.5,
    retry_jitter=False,
    autoretry_for=(ConnectionError,),
)
def always_flaky(tag: str) -> None:
    record("attempt", tag=tag)
    raise ConnectionError(f"could not reach the remote end for {tag}")


@app.task(queue="work", max_retries=5, retry_jitter=False, autoretry_for=(ConnectionError,))
def flaky_twice(tag: str) -> str:
    attempts = _redis.incr(PREFIX + "count:" + tag)
    record("attempt", tag=tag, n=attempts)
    if attempts <= 2:
        raise ConnectionError("not yet")
    return "ok"


@app.task(queue="work", max_retries=2)
def retry_soon(tag: str) -> None:
    record("attempt", tag=tag)
    raise Retry(countdown=0.3)


@app.task(queue="work")
def refuse(tag: str) -> None:
    raise Reject(f"{tag} is not acceptable")


@app.task(queue="work")
def boom(tag: str) -> None:
    raise ValueError(f"boom for {tag}")


@app.task(queue="work")
def two_args(a: int, b: int) -> int:
    return a + b
