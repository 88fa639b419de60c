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
from typing import TYPE_CHECKING, Any

import aio_pika
import redis
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from pamqp.commands import Basic

if TYPE_CHECKING:
    from .app import TaskApp
    from .worker import Worker

log = logging.getLogger("taskcore.worker")

HEARTBEAT_SECONDS = 5.0
#: A worker whose last heartbeat is older than this is considered gone.
WORKER_TIMEOUT = 15.0
COMMANDS = ("ping", "active", "reserved", "registered", "stats", "queues")
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"


def workers_key(namespace: str) -> str:
    return f"{namespace}:workers"


class WorkerControl:
    """Heartbeats and control answers for one worker process."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.started = time.time()
        self._previous: dict[str, Any] = {"counts": {}, "at": self.started}

    def snapshot(self) -> dict[str, Any]:
        """What this worker reports about itself (``stats``)."""
        worker, handler = self.worker, self.worker.handler
        counts: dict[str, dict[str, int]] = {}
        for (queue, state), n in handler.counts.items():
            counts.setdefault(queue, {})[state] = n
        return {
            "hostname": worker.hostname,
            "pid": os.getpid(),
            "queues": worker.queues,
            "concurrency": worker.concurrency,
            "running": len(handler.running),
            "held": len(worker.held_messages()),
            "held_by_queue": dict(worker.held_by_queue),
            "processed": worker.processed,
            "started": self.started,
            "at": time.time(),
            "counts": counts,
        }

    async def heartbeat(self) -> None:
        """Write a heartbeat every HEARTBEAT_SECONDS until cancelled; remove it on the way out."""
        client = self.worker.handler.results.redis
        key = workers_key(self.worker.app.settings.namespace)
        try:
            while True:
                beat = self.snapshot()
                beat["previous"] = self._previous
                try:
                    await client.hset(key, self.worker.hostname, json.dumps(beat, default=str))
                except redis.RedisError as exc:
                    log.warning("could not write heartbeat (%s)", exc)
                self._previous = {"counts": beat["counts"], "at": beat["at"]}
                await asyncio.sleep(HEARTBEAT_SECONDS)
        finally:
            with contextlib.suppress(redis.RedisError):
                await client.hdel(key, self.worker.hostname)

    async def listen(self, channel: AbstractChannel) -> None:
        """Consume control commands on an exclusive queue bound to the control exchange."""
        topology = self.worker.app.topology
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(topology.control_exchange)
        await queue.consume(self._on_command, no_ack=True)

    async def _on_command(self, message: AbstractIncomingMessage) -> None:
        try:
            command = json.loads(message.body).get("command")
        except (ValueError, AttributeError):
            log.warning("ignoring a control message that is not JSON")
            return
        if not message.reply_to:
            return
        body = {"worker": self.worker.hostname, "command": command, "reply": self.answer(command)}
        await message.channel.basic_publish(
            json.dumps(body, default=str).encode(),
            routing_key=message.reply_to,
            properties=Basic.Properties(
                correlation_id=message.correlation_id, content_type="application/json"
            ),
        )

    def answer(self, command: str | None) -> Any:
        """The reply to one control command."""
        worker, handler = self.worker, self.worker.handler
        if command == "ping":
            return "pong"
        if command == "active":
            return [
                {
                    "id": r.context.id,
                    "task": r.context.name,
                    "queue": r.context.queue,
                    "attempt": r.context.attempt,
                }
                for r in handler.running.values()
            ]
        if command == "reserved":
            running = set(handler.running)
            return [
                {"id": m.message_id, "task": m.type}
                for m in worker.held_messages()
                if m.message_id not in running
            ]
        if command == "registered":
            return sorted(worker.app.tasks)
        if command == "stats":
            return self.snapshot()
        if command == "queues":
            return worker.queues
        return {"error": f"unknown command {command!r}; known: {', '.join(COMMANDS)}"}


async def broadcast(app: TaskApp, command: str, timeout: float) -> list[dict[str, Any]]:
    """Send ``command`` to every worker and collect the replies that arrive within ``timeout``."""
    settings = app.settings
    connection = await aio_pika.connect(settings.broker_url, timeout=settings.connect_timeout)
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
    raw = app.results.redis.hgetall(workers_key(app.settings.namespace))
    now = time.time()
    beats = [json.loads(value) for value in raw.values()]
    for beat in beats:
        beat["alive"] = now - beat["at"] <= WORKER_TIMEOUT
    return sorted(beats, key=lambda b: b["hostname"])
