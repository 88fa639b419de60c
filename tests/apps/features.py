"""Tasks for the results, progress, revocation, time-limit, priority and idempotency tests."""

from __future__ import annotations

import asyncio
import json
import os
import time

import redis

from taskcore import Retry, SoftTimeLimitExceeded, TaskApp, current_task

app = TaskApp("features", queues={"prio": {"max_priority": 9}})
PREFIX = os.environ.get("TEST_KEY_PREFIX", "taskcore-test:unset:")
_redis = redis.Redis.from_url(os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))


def record(event: str, **data: object) -> None:
    _redis.rpush(PREFIX + "log", json.dumps({"event": event, "at": time.time(), **data}))


@app.task(queue="feat")
def add(a: int, b: int) -> int:
    return a + b


@app.task(queue="feat")
def divide(a: int, b: int) -> float:
    return a / b


@app.task(queue="feat", ignore_result=True)
def fire_and_forget(x: int) -> int:
    return x


@app.task(queue="feat")
def not_json() -> object:
    return object()


@app.task(queue="feat")
def steps(n: int) -> str:
    for i in range(1, n + 1):
        current_task.progress(i, n, f"step {i}")
        record("step", i=i, id=current_task.id, attempt=current_task.attempt)
        time.sleep(0.3)
    return "done"


@app.task(queue="feat")
def progress_to_the_end(n: int) -> int:
    """Reports progress as fast as it can, the last report just before it returns."""
    for i in range(1, n + 1):
        current_task.progress(i, n, "rows")
    return n


@app.task(queue="feat")
async def progress_to_the_end_async(n: int) -> int:
    for i in range(1, n + 1):
        current_task.progress(i, n, "rows")
    return n


@app.task(queue="feat", max_retries=1)
def retry_at_once() -> str:
    """Asks for a retry with no wait on its first attempt; returns on its second."""
    if current_task.retries == 0:
        raise Retry(countdown=0)
    return "second"


@app.task(queue="feat")
async def long_async(seconds: float) -> str:
    record("start", id=current_task.id)
    await asyncio.sleep(seconds)
    return "finished"


@app.task(queue="feat")
def cooperative(seconds: float) -> str:
    record("start", id=current_task.id)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        current_task.check()
        time.sleep(0.05)
    return "finished"


@app.task(queue="feat", soft_time_limit=0.5)
async def soft_async() -> str:
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError:
        record("cleanup")
        raise
    return "never"


@app.task(queue="feat", soft_time_limit=0.5)
def soft_sync() -> str:
    try:
        while True:
            current_task.check()
            time.sleep(0.05)
    except SoftTimeLimitExceeded:
        record("cleanup")
        return "cleaned up"


@app.task(queue="prio")
def ordered(tag: str) -> None:
    record("ordered", tag=tag)


@app.task(queue="feat", idempotency_key=lambda order_id: f"confirm:{order_id}")
def confirm_order(order_id: int) -> str:
    record("confirm", order_id=order_id)
    time.sleep(1.0)
    _redis.incr(PREFIX + f"effect:{order_id}")
    return f"confirmed {order_id}"


@app.task(queue="feat", time_limit=1.0)
def stubborn() -> None:
    record("start", id=current_task.id, pid=os.getpid())
    time.sleep(30)


@app.task(queue="feat")
def stuck(seconds: float) -> None:
    record("start", id=current_task.id, pid=os.getpid())
    time.sleep(seconds)


@app.task(queue="feat")
def whoami() -> int:
    return os.getpid()
