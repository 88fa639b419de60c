"""Read what the tasks in tests/apps recorded in Redis."""

from __future__ import annotations

import json
import time
from typing import Any

import redis


def events(rdb: redis.Redis, prefix: str, event: str | None = None) -> list[dict[str, Any]]:
    entries = [json.loads(raw) for raw in rdb.lrange(prefix + "log", 0, -1)]
    return [e for e in entries if event is None or e["event"] == event]


def wait_events(
    rdb: redis.Redis, prefix: str, event: str, count: int, timeout: float = 15.0
) -> list[dict[str, Any]]:
    """Poll until ``count`` events of this kind were recorded; fail with what was seen."""
    deadline = time.monotonic() + timeout
    while True:
        found = events(rdb, prefix, event)
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"expected {count} {event!r} events, saw {events(rdb, prefix)}")
        time.sleep(0.05)
