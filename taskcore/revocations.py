"""Revoked task ids: a sorted set in Redis, mirrored in every worker's memory.

``TaskApp.revoke`` adds the id to ``<namespace>:revoked`` (scored by when the
revocation expires) and announces it on the control channel. A worker
subscribes first and loads the set second, so it misses no revocation; from
then on "is this task revoked?" is a dictionary lookup instead of a Redis
round trip for every task. After losing Redis the worker subscribes and loads
again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable

import redis.asyncio as aioredis

from .keys import RedisKeys

log = logging.getLogger("taskcore.worker")

#: Seconds between attempts to reach Redis again.
RETRY_EVERY = 2.0


class RevocationList:
    """The revoked ids a worker knows of, kept current by ``follow()``."""

    def __init__(self, client: aioredis.Redis, keys: RedisKeys) -> None:
        self.redis = client
        self.keys = keys
        #: Revoked task id -> Unix time the revocation expires.
        self.expiries: dict[str, float] = {}
        #: Set once the list was loaded from Redis (the worker waits for it before consuming).
        self.loaded = asyncio.Event()

    def __contains__(self, task_id: str) -> bool:
        expiry = self.expiries.get(task_id)
        return expiry is not None and expiry > time.time()

    async def follow(self, on_terminate: Callable[[str], object]) -> None:
        """Load the list and keep it current; call ``on_terminate(id)`` for terminate requests."""
        while True:
            try:
                pubsub = self.redis.pubsub()
                await pubsub.subscribe(self.keys.control_channel)
                await self._load()
                async for item in pubsub.listen():
                    if item.get("type") == "message":
                        self._on_command(item["data"], on_terminate)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis down: known revocations still apply
                log.warning("revocation list lost Redis (%s); retrying in %ss", exc, RETRY_EVERY)
                await asyncio.sleep(RETRY_EVERY)

    async def _load(self) -> None:
        now = time.time()
        entries = await self.redis.zrangebyscore(self.keys.revoked, now, "+inf", withscores=True)
        self.expiries = {member.decode(): score for member, score in entries}
        self.loaded.set()

    def _on_command(self, data: bytes, on_terminate: Callable[[str], object]) -> None:
        try:
            command = json.loads(data)
            task_id = str(command["revoke"])
            expires = float(command.get("expires", time.time() + 86400))
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed control message: %r", data)
            return
        self.expiries[task_id] = expires
        if command.get("mode") == "terminate":
            on_terminate(task_id)
