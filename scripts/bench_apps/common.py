"""What every benchmark task does, whatever runs it."""

from __future__ import annotations

import os
import time

import redis

PREFIX = os.environ.get("BENCH_PREFIX", "bench:")
_redis = redis.Redis.from_url(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))


def incr() -> None:
    _redis.incr(PREFIX + "count")


def probe(sent_at: float) -> None:
    now = time.time()
    with _redis.pipeline(transaction=False) as pipe:
        pipe.rpush(PREFIX + "latency", now - sent_at)
        pipe.incr(PREFIX + "count")
        pipe.execute()
