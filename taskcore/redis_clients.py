"""Redis clients built from Settings: one way to connect, for sync callers and for workers.

``TASKCORE_REDIS_URL`` names one server, or the sentinels of a monitored master
(``sentinel://host:26379/0;sentinel://host2:26379/0`` with
``TASKCORE_REDIS_SENTINEL_MASTER``, Celery's convention). Through Sentinel each new
connection asks the sentinels where the master is now.

Every client retries a command that meets a refused or closed connection (or, through
Sentinel, a demoted master) on a new connection for about 10 s (``retry_policy``):
a Redis restart or a Sentinel failover costs callers and workers a pause, not errors.
A reply that does not come within the socket timeout is not retried (a hung server
would stall every caller for minutes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import redis
import redis.asyncio as aioredis
import redis.asyncio.retry
import redis.asyncio.sentinel as aiosentinel
import redis.retry
import redis.sentinel
from redis.backoff import ExponentialBackoff

from .errors import ConfigurationError

if TYPE_CHECKING:
    from .settings import Settings

#: Seconds to connect, and to wait for a reply, before a RedisError.
CONNECT_TIMEOUT = 5
SOCKET_TIMEOUT = 10
SENTINEL_SCHEME = "sentinel"
#: Tries after the first, waiting 0.05 s, doubling to at most 1 s: about 10 s in all,
#: longer than Sentinel takes to promote a replica with down-after-milliseconds 1000-5000.
RETRIES = 14


@dataclass(frozen=True)
class SentinelAddress:
    """The sentinels to ask, and what to connect to the master with."""

    sentinels: list[tuple[str, int]]
    master: str
    options: dict[str, Any] = field(default_factory=dict)


def uses_sentinel(url: str) -> bool:
    return url.strip().lower().startswith(SENTINEL_SCHEME + "://")


def sentinel_address(settings: Settings) -> SentinelAddress:
    """Parse a ``sentinel://`` TASKCORE_REDIS_URL; ConfigurationError says what is wrong.

    The first URL's password and database number are the master's (as in Celery).
    """
    parts = [part.strip() for part in settings.redis_url.split(";") if part.strip()]
    sentinels = []
    for part in parts:
        if not uses_sentinel(part):
            raise ConfigurationError(
                f"TASKCORE_REDIS_URL mixes sentinel:// with {part.split('://')[0]}:// URLs: "
                "list every sentinel as sentinel://HOST:PORT, separated by ';'"
            )
        url = urlsplit(part)
        sentinels.append((url.hostname or "127.0.0.1", url.port or 26379))
    if not settings.redis_sentinel_master:
        raise ConfigurationError(
            "TASKCORE_REDIS_URL names sentinels but not the master they watch: set "
            "TASKCORE_REDIS_SENTINEL_MASTER to the name in their 'sentinel monitor NAME ...'"
        )
    first = urlsplit(parts[0])
    options: dict[str, Any] = {}
    if first.password:
        options["password"] = unquote(first.password)
    database = first.path.strip("/")
    if database:
        if not database.isdigit():
            raise ConfigurationError(
                f"TASKCORE_REDIS_URL: {database!r} is not a database number (sentinel://HOST:PORT/0)"
            )
        options["db"] = int(database)
    return SentinelAddress(sentinels, settings.redis_sentinel_master, options)


def sync_client(settings: Settings, *, timeout: float | None = None) -> redis.Redis:
    """A blocking client (Flask views, the CLI, beat); redis-py reconnects after fork.

    ``timeout`` (health checks) replaces both the connect and the reply timeouts, and
    turns the retries off: the caller wants an answer within its deadline."""
    timeouts = _timeouts(timeout)
    retry = retry_policy(redis.retry.Retry, retries=RETRIES if timeout is None else 0)
    if uses_sentinel(settings.redis_url):
        address = sentinel_address(settings)
        sentinel = redis.sentinel.Sentinel(address.sentinels, sentinel_kwargs=timeouts)
        return sentinel.master_for(address.master, **address.options, **timeouts, retry=retry)
    return redis.Redis.from_url(settings.redis_url, **timeouts, retry=retry)


def async_client(settings: Settings) -> aioredis.Redis:
    """An asyncio client for a worker process's event loop."""
    timeouts = _timeouts(None)
    retry = retry_policy(redis.asyncio.retry.Retry)
    if uses_sentinel(settings.redis_url):
        address = sentinel_address(settings)
        sentinel = aiosentinel.Sentinel(address.sentinels, sentinel_kwargs=timeouts)
        return sentinel.master_for(address.master, **address.options, **timeouts, retry=retry)
    return aioredis.Redis.from_url(settings.redis_url, **timeouts, retry=retry)


def retry_policy(kind: type[Any], retries: int = RETRIES) -> Any:
    """A new ``kind`` (redis-py's sync or asyncio ``Retry``) for connection failures only."""
    return kind(ExponentialBackoff(cap=1.0, base=0.05), retries, (redis.ConnectionError,))


def _timeouts(timeout: float | None) -> dict[str, float]:
    return {
        "socket_connect_timeout": CONNECT_TIMEOUT if timeout is None else timeout,
        "socket_timeout": SOCKET_TIMEOUT if timeout is None else timeout,
    }
