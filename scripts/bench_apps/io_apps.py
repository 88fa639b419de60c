"""The I/O-bound benchmark task in each system: wait ``seconds``, then one Redis INCR.

Async systems (taskcore, Taskiq) await the wait and an asyncio Redis client with a
bounded blocking pool (opened once per worker process); thread pools (Celery,
Dramatiq) sleep in the thread and use the shared sync client.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import redis
import redis.asyncio

PREFIX = os.environ.get("BENCH_PREFIX", "bench:")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
BROKER_URL = os.environ.get("BENCH_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/")
SYSTEM = os.environ.get("BENCH_SYSTEM", "taskcore")
# Bounded blocking pools everywhere: redis-py's default pool raises past 100 connections.
_sync = redis.Redis(
    connection_pool=redis.BlockingConnectionPool.from_url(REDIS_URL, max_connections=50, timeout=60)
)


def _async_client() -> redis.asyncio.Redis:
    pool = redis.asyncio.BlockingConnectionPool.from_url(REDIS_URL, max_connections=50, timeout=60)
    return redis.asyncio.Redis(connection_pool=pool)


def wait_sync(seconds: float) -> None:
    time.sleep(seconds)
    _sync.incr(PREFIX + "count")


if SYSTEM == "taskcore":
    from taskcore import TaskApp

    app = TaskApp("bench-io")

    @app.on_worker_start
    async def _open(resources: dict[str, Any]) -> None:
        resources["redis"] = _async_client()

    @app.task(queue="bench", name="bench.wait")
    async def wait_task(seconds: float) -> None:
        await asyncio.sleep(seconds)
        await app.resources["redis"].incr(PREFIX + "count")

elif SYSTEM == "taskiq":
    from taskiq import TaskiqEvents
    from taskiq_aio_pika import AioPikaBroker
    from taskiq_aio_pika.queue import Queue, QueueType

    # A classic queue like the others' (Taskiq's default is quorum), prefetch = concurrency.
    broker = AioPikaBroker(
        BROKER_URL,
        qos=int(os.environ.get("BENCH_CONCURRENCY", "10")),
        task_queues=[Queue(name="bench", type=QueueType.CLASSIC)],
    )
    _clients: dict[str, redis.asyncio.Redis] = {}

    @broker.on_event(TaskiqEvents.WORKER_STARTUP)
    async def _open(state: Any) -> None:
        _clients["redis"] = _async_client()

    @broker.task(task_name="bench.wait")
    async def wait_task(seconds: float) -> None:
        await asyncio.sleep(seconds)
        await _clients["redis"].incr(PREFIX + "count")

elif SYSTEM == "celery":
    from celery import Celery

    app = Celery("bench-io", broker=BROKER_URL)
    app.conf.task_default_queue = "bench"
    app.conf.task_ignore_result = True
    app.conf.worker_hijack_root_logger = False

    @app.task(name="bench.wait")
    def wait_task(seconds: float) -> None:
        wait_sync(seconds)

else:
    import dramatiq
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    dramatiq.set_broker(RabbitmqBroker(url=BROKER_URL))

    @dramatiq.actor(queue_name="bench", max_retries=0, time_limit=3_600_000)
    def wait_task(seconds: float) -> None:
        wait_sync(seconds)
