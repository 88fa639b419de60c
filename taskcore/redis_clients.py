"""Redis clients built from Settings: one way to connect, for sync callers and for workers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import redis
import redis.asyncio as aioredis

if TYPE_CHECKING:
    from .settings import Settings

#: Seconds to connect, and to wait for a reply, before a RedisError.
CONNECT_TIMEOUT = 5
SOCKET_TIMEOUT = 10


def sync_client(settings: Settings) -> redis.Redis:
    """A blocking client (Flask views, the CLI, beat); redis-py reconnects after fork."""
    return redis.Redis.from_url(
        settings.redis_url, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=SOCKET_TIMEOUT
    )


def async_client(settings: Settings) -> aioredis.Redis:
    """An asyncio client for a worker process's event loop."""
    return aioredis.Redis.from_url(
        settings.redis_url, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=SOCKET_TIMEOUT
    )
