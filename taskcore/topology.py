"""Names of everything taskcore declares on the broker, and the declarations.

Declarations are idempotent: every process declares what it uses when it
connects, so a fresh broker (or vhost) needs no set-up step.
"""

from __future__ import annotations

import re

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange
from aiormq.exceptions import ChannelPreconditionFailed

from . import delays
from .errors import ConfigurationError

DEAD_SUFFIX = ".dead"
_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,200}$")


def check_queue_name(name: str) -> str:
    """Return ``name`` if it can be a work queue; raise ConfigurationError otherwise."""
    if not isinstance(name, str) or not _QUEUE_NAME.match(name):
        raise ConfigurationError(
            f"invalid queue name {name!r}: use letters, digits and _ . : - "
            "(at most 200 characters, not starting with a dot or dash)"
        )
    if name.endswith(DEAD_SUFFIX):
        raise ConfigurationError(
            f"invalid queue name {name!r}: '{DEAD_SUFFIX}' is for dead letters"
        )
    return name


def dead_queue(queue: str) -> str:
    """The dead-letter queue that belongs to work queue ``queue``."""
    return queue + DEAD_SUFFIX


class Topology:
    """Exchange and queue names under one namespace, and how to declare them."""

    def __init__(self, namespace: str = "taskcore") -> None:
        self.namespace = namespace
        #: Direct exchange: a task message's routing key is its queue's name.
        self.work_exchange = namespace
        #: Direct exchange for dead letters, routing key ``<queue>.dead``.
        self.dead_exchange = f"{namespace}.dead"
        #: Topic exchange at the bottom of the delay cascade.
        self.delivery_exchange = f"{namespace}.delay.deliver"

    def delay_exchange(self, level: int) -> str:
        """Exchange (and queue) name of delay level ``level``."""
        return f"{self.namespace}.delay.{level:02d}"

    async def declare_base(self, channel: AbstractChannel) -> None:
        """Declare the exchanges and the whole delay cascade."""
        await channel.declare_exchange(
            self.work_exchange, aio_pika.ExchangeType.DIRECT, durable=True
        )
        await channel.declare_exchange(
            self.dead_exchange, aio_pika.ExchangeType.DIRECT, durable=True
        )
        below: AbstractExchange = await channel.declare_exchange(
            self.delivery_exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        for level in range(delays.LEVELS):
            name = self.delay_exchange(level)
            exchange = await channel.declare_exchange(
                name, aio_pika.ExchangeType.TOPIC, durable=True
            )
            queue = await channel.declare_queue(
                name,
                durable=True,
                arguments={
                    "x-message-ttl": int(2**level * delays.UNIT * 1000),
                    "x-dead-letter-exchange": below.name,
                },
            )
            await queue.bind(exchange, delays.level_binding(level, "1"))
            await below.bind(exchange, delays.level_binding(level, "0"))
            below = exchange

    async def declare_queue(self, channel: AbstractChannel, queue: str) -> None:
        """Declare work queue ``queue``, its dead-letter queue, and their bindings."""
        check_queue_name(queue)
        dead = dead_queue(queue)
        try:
            work = await channel.declare_queue(
                queue,
                durable=True,
                arguments={
                    # Anything the broker itself rejects or expires lands in the
                    # dead-letter queue too: nothing is dropped silently.
                    "x-dead-letter-exchange": self.dead_exchange,
                    "x-dead-letter-routing-key": dead,
                },
            )
        except ChannelPreconditionFailed as exc:
            raise ConfigurationError(
                f"queue {queue!r} already exists with other arguments ({exc}); "
                f"delete it (rabbitmqctl delete_queue {queue}) or use another name"
            ) from exc
        await work.bind(self.work_exchange, queue)
        await work.bind(self.delivery_exchange, delays.delivery_binding(queue))
        dead_q = await channel.declare_queue(dead, durable=True)
        await dead_q.bind(self.dead_exchange, dead)
