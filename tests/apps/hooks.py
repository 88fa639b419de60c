"""A task module that opens a shared Redis client once per worker process (queue ``hooked``)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import redis.asyncio

from taskcore import TaskApp

app = TaskApp("tests")
PREFIX = os.environ.get("TEST_KEY_PREFIX", "taskcore-test:unset:")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@app.on_worker_start
async def open_redis(resources: dict[str, Any]) -> None:
    if os.environ.get("HOOK_FAIL"):
        raise ConnectionRefusedError("the example service is down")
    # A bounded pool that waits for a free connection instead of raising past its size.
    pool = redis.asyncio.BlockingConnectionPool.from_url(REDIS_URL, max_connections=10, timeout=30)
    resources["redis"] = redis.asyncio.Redis(connection_pool=pool)
    await resources["redis"].incr(PREFIX + "opened")


@app.on_worker_start
def remember_pid(resources: dict[str, Any]) -> None:  # a plain function works too
    resources["pid"] = os.getpid()


@app.on_worker_stop
async def close_redis(resources: dict[str, Any]) -> None:
    await resources["redis"].incr(PREFIX + "closed")
    await resources["redis"].aclose()


@app.task(queue="hooked")
async def count(n: int) -> int:
    """Waits, then counts in Redis through the client the start hook opened."""
    await asyncio.sleep(0.2)
    client = app.resources["redis"]
    await client.incr(PREFIX + "counted")
    return app.resources["pid"]


@app.task(queue="hooked")
def plain(n: int) -> int:
    return n


@app.task(queue="hooked")
def echo(blob: str) -> int:
    return len(blob)


@app.task(queue="hooked")
def big(n: int) -> str:
    return "x" * n
