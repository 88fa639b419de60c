"""Test helpers that talk to the real RabbitMQ: per-test vhosts and queue inspection."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aio_pika
from pamqp.commands import Basic


def rabbitmqctl(*args: str) -> str:
    """Run rabbitmqctl and return its output; raise with its message if it fails."""
    done = subprocess.run(
        ["rabbitmqctl", *args], capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {done.stderr or done.stdout}")
    return done.stdout


#: RabbitMQ's management API (scripts/ensure_services.sh enables the plugin). A vhost made
#: over HTTP takes milliseconds; each rabbitmqctl call starts an Erlang VM (about 1 s).
MANAGEMENT_URL = os.environ.get("TEST_RABBITMQ_MANAGEMENT_URL", "http://127.0.0.1:15672/api")


def management(method: str, path: str, body: Any = None) -> Any:
    """Call RabbitMQ's management API as guest; raise with the broker's answer if it fails."""
    request = urllib.request.Request(
        MANAGEMENT_URL + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={
            "content-type": "application/json",
            "authorization": "Basic " + base64.b64encode(b"guest:guest").decode(),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = response.read()
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"{method} {path}: {exc.code} {exc.read().decode()}") from exc
    except urllib.error.URLError as exc:
        raise RuntimeError(
            f"RabbitMQ's management API does not answer at {MANAGEMENT_URL} ({exc.reason}):"
            " run scripts/ensure_services.sh (it enables rabbitmq_management)"
        ) from exc
    return json.loads(answer) if answer else None


def create_vhost(prefix: str = "taskcore-test") -> str:
    """A fresh vhost the guest user may use."""
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    vhost = quote(name, safe="")
    management("PUT", f"/vhosts/{vhost}")
    everything = {"configure": ".*", "write": ".*", "read": ".*"}
    management("PUT", f"/permissions/{vhost}/guest", everything)
    return name


def delete_vhost(name: str) -> None:
    """Delete ``name`` and everything in it."""
    management("DELETE", f"/vhosts/{quote(name, safe='')}")


def broker_url(vhost: str, password: str = "guest") -> str:
    return f"amqp://guest:{password}@127.0.0.1:5672/{quote(vhost, safe='')}"


@dataclass
class Got:
    """A message read from a queue with basic.get."""

    body: bytes
    headers: dict[str, Any]
    message_id: str | None
    type: str | None
    delivery_mode: int | None
    content_type: str | None
    priority: int | None = None

    def json(self) -> Any:
        return json.loads(self.body)


class Probe:
    """Synchronous look into a vhost: queue depths, reading and publishing raw messages."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _run(self, coro_fn: Any) -> Any:
        async def main() -> Any:
            connection = await aio_pika.connect(self.url)
            try:
                channel = await connection.channel()
                return await coro_fn(channel)
            finally:
                await connection.close()

        return asyncio.run(main())

    def depth(self, queue: str) -> int:
        """Messages ready in ``queue`` (not counting unacknowledged ones)."""

        async def go(channel: Any) -> int:
            declared = await channel.declare_queue(queue, passive=True)
            return declared.declaration_result.message_count

        return self._run(go)

    def wait_depth(self, queue: str, expected: int, timeout: float = 10.0) -> int:
        """Poll until ``queue`` holds ``expected`` ready messages; return the last depth seen."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.depth(queue)
            if seen == expected or time.monotonic() > deadline:
                return seen
            time.sleep(0.1)

    def get_all(self, queue: str) -> list[Got]:
        """Take every ready message out of ``queue``."""

        async def go(channel: Any) -> list[Got]:
            declared = await channel.declare_queue(queue, passive=True)
            found: list[Got] = []
            while (message := await declared.get(no_ack=True, fail=False)) is not None:
                found.append(
                    Got(
                        message.body,
                        dict(message.headers or {}),
                        message.message_id,
                        message.type,
                        int(message.delivery_mode) if message.delivery_mode else None,
                        message.content_type,
                        message.priority,
                    )
                )
            return found

        return self._run(go)

    def publish_raw(self, exchange: str, routing_key: str, body: bytes, **properties: Any) -> None:
        """Publish bytes as they are, with confirm, bypassing taskcore."""

        async def go(channel: Any) -> None:
            raw = await channel.get_underlay_channel()
            await raw.basic_publish(
                body,
                exchange=exchange,
                routing_key=routing_key,
                properties=Basic.Properties(delivery_mode=2, **properties),
            )

        self._run(go)

    def queue_arguments(self, vhost: str) -> dict[str, dict[str, Any]]:
        """Every queue of ``vhost`` with its durable flag and arguments, as the broker sees them."""
        out = rabbitmqctl(
            "list_queues", "-p", vhost, "name", "durable", "arguments", "--formatter", "json", "-q"
        )
        rows = json.loads(out or "[]")
        for row in rows:  # arguments come as [name, type, value] triples
            row["arguments"] = {name: value for name, _, value in row["arguments"]}
        return {row["name"]: row for row in rows}
