"""How a notification leaves the system: one pluggable ``Sender`` per channel.

The default sender of both channels writes the message to the ``outbox`` table with its
send time and logs a line (no outside network). A deployment plugs in a real gateway
by naming a factory in ``WEBAPP_SMS_SENDER`` / ``WEBAPP_EMAIL_SENDER``
(``package.module:make_sender``, called once per process with the channel's name), or
in code with ``use_sender("sms", MyGateway())``.

A sender raises any exception to say "not sent"; the send task then retries with
backoff and dead-letters after the last try. Senders should be idempotent on
``message.notification_id`` where the far end allows it (the outbox is: one row per
notification), because a task is delivered at least once.

For drills an operator switches a *failing* sender on per channel (the toggle on
``/orders/notifications``). The switch is a Redis set under the task app's namespace,
``<namespace>:orders:failing-senders``, so every worker process sees it at its next send.
"""

from __future__ import annotations

import importlib
import logging
import os
from dataclasses import dataclass
from typing import Protocol

import redis
import sqlalchemy as sa

from taskcore import TaskApp

from ..db import task_session, utcnow
from .models import CHANNELS, OutboxMessage

log = logging.getLogger("webapp.orders.outbox")

#: Environment variables naming a sender factory per channel ("module:callable").
SENDER_ENV = {"sms": "WEBAPP_SMS_SENDER", "email": "WEBAPP_EMAIL_SENDER"}


@dataclass(frozen=True)
class OutgoingMessage:
    """What a sender gets: who, what, and the notification it belongs to."""

    notification_id: int
    channel: str
    recipient: str
    subject: str
    body: str


class Sender(Protocol):
    """Delivers messages of one channel; raises when a message was not delivered."""

    def send(self, message: OutgoingMessage) -> None: ...


class SendError(Exception):
    """A message was not delivered (the send task retries it)."""


class OutboxSender:
    """The default: one ``outbox`` row per notification, with its send time, and a log line.

    A second send of the same notification (a redelivered task) finds the row there and
    writes nothing: the unique ``notification_id`` is the outbox's idempotency key.
    """

    def __init__(self, channel: str) -> None:
        self.channel = channel

    def send(self, message: OutgoingMessage) -> None:
        with task_session() as session:
            session.add(
                OutboxMessage(
                    notification_id=message.notification_id,
                    channel=message.channel,
                    recipient=message.recipient,
                    subject=message.subject,
                    body=message.body,
                    sent_at=utcnow(),
                )
            )
            try:
                session.commit()
            except sa.exc.IntegrityError:
                session.rollback()
                log.info(
                    "%s for notification %d is already in the outbox: not sent again",
                    message.channel,
                    message.notification_id,
                )
                return
        log.info(
            "%s to %s (notification %d): %s",
            message.channel,
            message.recipient,
            message.notification_id,
            message.subject,
        )


class FailingSender:
    """Fails every send: for rehearsing retries and dead letters (switched on per channel)."""

    def __init__(self, channel: str) -> None:
        self.channel = channel

    def send(self, message: OutgoingMessage) -> None:
        raise SendError(f"the failing {self.channel} sender is switched on (a drill)")


_senders: dict[str, Sender] = {}


def use_sender(channel: str, sender: Sender | None) -> None:
    """Plug ``sender`` in for ``channel`` in this process (None: back to the configured one)."""
    _check_channel(channel)
    if sender is None:
        _senders.pop(channel, None)
    else:
        _senders[channel] = sender


def configured_sender(channel: str) -> Sender:
    """This process's sender for ``channel``: plugged in, named in the environment, or the
    outbox."""
    _check_channel(channel)
    if channel not in _senders:
        spec = os.environ.get(SENDER_ENV[channel], "").strip()
        _senders[channel] = _load(spec, channel) if spec else OutboxSender(channel)
    return _senders[channel]


def sender_for(app: TaskApp, channel: str) -> Sender:
    """The sender a send task uses now: the failing one while switched on, else the
    configured one."""
    if failing_switched_on(app, channel):
        return FailingSender(channel)
    return configured_sender(channel)


def _load(spec: str, channel: str) -> Sender:
    module, _, name = spec.partition(":")
    if not module or not name:
        raise ValueError(f"{SENDER_ENV[channel]}={spec!r}: write it as package.module:factory")
    factory = getattr(importlib.import_module(module), name)
    return factory(channel)


def _check_channel(channel: str) -> None:
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}: use one of {', '.join(CHANNELS)}")


# -- the failing-sender switch -------------------------------------------------------


def failing_key(app: TaskApp) -> str:
    """The Redis set of channels whose failing sender is on."""
    return f"{app.keys.namespace}:orders:failing-senders"


def failing_switched_on(app: TaskApp, channel: str) -> bool:
    """Whether the failing sender is on for ``channel`` (read on every send)."""
    return bool(app.redis.sismember(failing_key(app), channel))


def failing_channels(app: TaskApp) -> set[str] | None:
    """Channels whose failing sender is on; None if Redis cannot be reached."""
    try:
        return {c.decode() for c in app.redis.smembers(failing_key(app))}
    except redis.RedisError:
        return None


def switch_failing(app: TaskApp, channel: str, on: bool) -> None:
    """Switch the failing sender of ``channel`` on or off, for every worker."""
    _check_channel(channel)
    if on:
        app.redis.sadd(failing_key(app), channel)
    else:
        app.redis.srem(failing_key(app), channel)
