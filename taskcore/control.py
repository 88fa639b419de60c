"""Worker heartbeats (Redis) and remote control (a fanout exchange with replies).

Every worker process writes a heartbeat to the Redis hash
``<ns>:workers`` every ``HEARTBEAT_SECONDS``: who it is, what it consumes,
what it runs, and cumulative counts of outcomes per queue (with the previous
heartbeat's, so readers can compute rates). It also consumes its own
exclusive queue bound to the fanout exchange ``<ns>.control`` and answers
commands (ping, active, reserved, registered, stats, queues) to the
``reply_to`` of the request: ``taskcore inspect`` uses RabbitMQ's direct
reply-to and collects answers until its timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aio_pika
import redis
import redis.asyncio as aioredis
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from pamqp.commands import Basic

from .broker import connect

if TYPE_CHECKING:
    from .app import TaskApp
    from .keys import RedisKeys
    from .states import State
    from .topology import Topology

log = logging.getLogger("taskcore.worker")

HEARTBEAT_SECONDS = 5.0
#: A worker whose last heartbeat is older than this is considered gone.
WORKER_TIMEOUT = 15.0
COMMANDS = ("ping", "active", "reserved", "registered", "stats", "queues")
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"


class OutcomeCounts(Counter[tuple[str, str]]):
    """A state listener: how many changes to each state this process saw, by queue."""

    def __call__(self, task_id: str, state: State, fields: dict[str, Any]) -> None:
        self[(str(fields.get("queue")), str(state))] += 1

    def by_queue(self) -> dict[str, dict[str, int]]:
        """``{queue: {state: count}}``, as heartbeats carry it."""
        counts: dict[str, dict[str, int]] = {}
        for (queue, state), n in self.items():
            counts.setdefault(queue, {})[state] = n
        return counts


@dataclass
class WorkerSnapshot:
    """What a worker process is doing now, as its heartbeat and control answers tell it."""

    hostname: str
    queues: list[str]
    concurrency: int
    processed: int
    started: float
    counts: dict[str, dict[str, int]]
    #: Unacknowledged messages held, by queue (running or waiting for a slot).
    held_by_queue: dict[str, int]
    #: Tasks running now: id, task, queue, attempt.
    active: list[dict[str, Any]]
    #: Messages held but not started: id, task.
    reserved: list[dict[str, Any]]
    registered: list[str]
    pid: int = field(default_factory=os.getpid)

    def stats(self) -> dict[str, Any]:
        """The heartbeat: counts and sizes, not the lists of tasks."""
        return {
            "hostname": self.hostname,
            "pid": self.pid,
            "queues": self.queues,
            "concurrency": self.concurrency,
            "running": len(self.active),
            "held": len(self.active) + len(self.reserved),
            "held_by_queue": self.held_by_queue,
            "processed": self.processed,
            "started": self.started,
            "at": time.time(),
            "counts": self.counts,
        }


class WorkerControl:
    """Heartbeats and control answers for one worker process."""

    def __init__(
        self,
        topology: Topology,
        keys: RedisKeys,
        client: aioredis.Redis,
        snapshot: Callable[[], WorkerSnapshot],
    ) -> None:
        self.topology = topology
        self.keys = keys
        self.redis = client
        self.snapshot = snapshot
        self._previous: dict[str, Any] | None = None

    async def heartbeat(self) -> None:
        """Write a heartbeat every HEARTBEAT_SECONDS until cancelled; remove it on the way out."""
        hostname = self.snapshot().hostname
        try:
            while True:
                beat = self.snapshot().stats()
                beat["previous"] = self._previous or {"counts": {}, "at": beat["started"]}
                try:
                    await self.redis.hset(
                        self.keys.workers, hostname, json.dumps(beat, default=str)
                    )
                except redis.RedisError as exc:
                    log.warning("could not write heartbeat (%s)", exc)
                self._previous = {"counts": beat["counts"], "at": beat["at"]}
                await asyncio.sleep(HEARTBEAT_SECONDS)
        finally:
            with contextlib.suppress(redis.RedisError):
                await self.redis.hdel(self.keys.workers, hostname)

    async def listen(self, channel: AbstractChannel) -> None:
        """Consume control commands on an exclusive queue bound to the control exchange."""
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(self.topology.control_exchange)
        await queue.consume(self._on_command, no_ack=True)

    async def _on_command(self, message: AbstractIncomingMessage) -> None:
        try:
            command = json.loads(message.body).get("command")
        except (ValueError, AttributeError):
            log.warning("ignoring a control message that is not JSON")
            return
        if not message.reply_to:
            return
        snapshot = self.snapshot()
        body = {"worker": snapshot.hostname, "command": command, "reply": answer(snapshot, command)}
        await message.channel.basic_publish(
            json.dumps(body, default=str).encode(),
            routing_key=message.reply_to,
            properties=Basic.Properties(
                correlation_id=message.correlation_id, content_type="application/json"
            ),
        )


def answer(snapshot: WorkerSnapshot, command: str | None) -> Any:
    """The reply to one control command."""
    replies: dict[str, Callable[[], Any]] = {
        "ping": lambda: "pong",
        "active": lambda: snapshot.active,
        "reserved": lambda: snapshot.reserved,
        "registered": lambda: snapshot.registered,
        "stats": snapshot.stats,
        "queues": lambda: snapshot.queues,
    }
    reply = replies.get(command or "")
    if reply is None:
        return {"error": f"unknown command {command!r}; known: {', '.join(COMMANDS)}"}
    return reply()


async def broadcast(app: TaskApp, command: str, timeout: float) -> list[dict[str, Any]]:
    """Send ``command`` to every worker and collect the replies that arrive within ``timeout``."""
    connection = await connect(app.settings)
    try:
        channel = await connection.channel()
        await app.topology.declare_base(channel)
        replies: list[dict[str, Any]] = []
        correlation = uuid.uuid4().hex

        async def on_reply(message: AbstractIncomingMessage) -> None:
            if message.correlation_id == correlation:
                replies.append(json.loads(message.body))

        reply_queue = await channel.get_queue(DIRECT_REPLY_TO, ensure=False)
        await reply_queue.consume(on_reply, no_ack=True)
        exchange = await channel.get_exchange(app.topology.control_exchange, ensure=False)
        await exchange.publish(
            aio_pika.Message(
                json.dumps({"command": command}).encode(),
                reply_to=DIRECT_REPLY_TO,
                correlation_id=correlation,
                content_type="application/json",
            ),
            routing_key="",
        )
        await asyncio.sleep(timeout)
        return sorted(replies, key=lambda r: r["worker"])
    finally:
        await connection.close()


def read_heartbeats(app: TaskApp) -> list[dict[str, Any]]:
    """Every worker's last heartbeat, with ``alive`` set by its age."""
    raw = app.redis.hgetall(app.keys.workers)
    now = time.time()
    beats = [json.loads(value) for value in raw.values()]
    for beat in beats:
        beat["alive"] = now - beat["at"] <= WORKER_TIMEOUT
    return sorted(beats, key=lambda b: b["hostname"])
