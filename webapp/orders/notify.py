"""Turning order events into notifications and queueing their sends.

Both the web process (a new order, a status change, "send again") and the worker (the
periodic re-drive) go through ``queue_sends``. Its order of work is what keeps a
notification from being lost or sent twice:

1. the notification row is committed first (state ``queued``, no ``task_id``);
2. its send task is published with the idempotency key ``orders:notification:<id>``;
   a second publish while the first is pending, running or succeeded returns the first
   (taskcore keeps the key in Redis);
3. the confirmed task id is written to the row.

If the broker (or Redis) is down at step 2, the row stays ``queued`` without a task id:
the re-drive every 5 minutes, or the "Send again" button, publishes it later.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import redis
import sqlalchemy as sa
from sqlalchemy.orm import Session

from taskcore import TaskApp, TaskcoreError
from taskcore.operations import Operations

from ..db import utcnow
from .models import CHANNELS, Notification, Order, OrderEvent

log = logging.getLogger("webapp.orders")

#: Seconds before the first retry of a send; later ones double it (60, 120, 240 s).
DEFAULT_RETRY_BASE = 60.0


def retry_base(environ: dict[str, str] | None = None) -> float:
    """``WEBAPP_NOTIFY_RETRY_BASE`` (seconds, > 0), else 60: read once at import by the
    send tasks, in the web process and the worker alike (tests set 0.2)."""
    raw = (environ if environ is not None else os.environ).get("WEBAPP_NOTIFY_RETRY_BASE", "")
    if not raw.strip():
        return DEFAULT_RETRY_BASE
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"WEBAPP_NOTIFY_RETRY_BASE={raw!r}: give a number of seconds") from None
    if not value > 0:
        raise ValueError(f"WEBAPP_NOTIFY_RETRY_BASE={raw!r}: must be more than 0 seconds")
    return value


def idempotency_key(notification_id: int) -> str:
    """The send task's idempotency key: one live send per notification."""
    return f"orders:notification:{notification_id}"


# -- what the customer is told ---------------------------------------------------


def _money(amount: Decimal) -> str:
    return f"{amount:,.2f}"


def render(order: Order, event: OrderEvent, channel: str) -> tuple[str, str]:
    """(subject, body) of ``event``'s message on ``channel``."""
    if event.kind == "created":
        subject = f"Order #{order.id} confirmed"
        short = (
            f"Thanks {order.customer_name}! "
            f"Order #{order.id} ({_money(order.amount)}) is confirmed."
        )
    else:
        subject = f"Order #{order.id} is {event.status}"
        short = f"Order #{order.id}: now {event.status}."
    if channel == "sms":
        return subject, short[:160]
    body = "\n".join(
        [
            f"Hello {order.customer_name},",
            "",
            short,
            "",
            f"Items: {order.items}",
            f"Amount: {_money(order.amount)}",
            f"Status: {order.status}",
        ]
    )
    return subject, body


def record_event(session: Session, order: Order, kind: str) -> list[Notification]:
    """Add an event of ``order`` (``created`` or ``status``) and one queued notification
    per channel to ``session`` (flushed, not committed)."""
    event = OrderEvent(order=order, kind=kind, status=order.status, created_at=utcnow())
    session.add(event)
    session.flush()
    notifications = []
    for channel in CHANNELS:
        subject, body = render(order, event, channel)
        now = utcnow()
        notifications.append(
            Notification(
                event_id=event.id,
                order_id=order.id,
                channel=channel,
                recipient=order.phone if channel == "sms" else order.email,
                subject=subject,
                body=body,
                state="queued",
                attempts=0,
                redrives=0,
                created_at=now,
                updated_at=now,
            )
        )
    session.add_all(notifications)
    session.flush()
    return notifications


# -- queueing sends ----------------------------------------------------------------


class NotQueued(Exception):
    """Some sends could not be published; their notifications wait for the re-drive."""

    def __init__(self, queued: int, failed: int, reason: str) -> None:
        super().__init__(f"{failed} send(s) not queued: {reason}")
        self.queued = queued
        self.failed = failed
        self.reason = reason


def send_task_for(channel: str) -> Any:
    """The send task of ``channel`` (imported late: the tasks module imports this one)."""
    from . import tasks

    return {"sms": tasks.send_sms, "email": tasks.send_email}[channel]


def queue_sends(session: Session, ids: Iterable[int], dead: dict[int, str] | None = None) -> int:
    """Publish the send task of each notification (committed, state ``queued``) and note
    its task id; returns how many were queued. NotQueued if the broker or Redis refused
    some (those stay queued without a task id).

    ``dead`` maps re-driven notifications to the task that died with them: if that task
    still holds the idempotency key (it is between its last try and its dead letter),
    nothing was published and the notification goes back to ``dead`` for the next
    re-drive."""
    dead = dead or {}
    queued, failed, reason = 0, 0, ""
    for notification_id in ids:
        channel = session.scalar(
            sa.select(Notification.channel).where(Notification.id == notification_id)
        )
        if channel is None:
            continue
        if reason:  # the broker or Redis just refused: do not wait on it once per send
            failed += 1
            continue
        try:
            handle = send_task_for(channel).delay(notification_id)
        except (TaskcoreError, redis.RedisError, OSError) as exc:
            failed += 1
            reason = str(exc) or type(exc).__name__
            log.warning("send of notification %d not queued: %s", notification_id, reason)
            continue
        if handle.id == dead.get(notification_id):
            session.execute(
                sa.update(Notification)
                .where(Notification.id == notification_id, Notification.task_id.is_(None))
                .values(state="dead", task_id=handle.id)
            )
            session.commit()
            continue
        session.execute(
            sa.update(Notification)
            .where(Notification.id == notification_id, Notification.task_id.is_(None))
            .values(task_id=handle.id)
        )
        session.commit()
        queued += 1
    if failed:
        raise NotQueued(queued, failed, reason)
    return queued


def requeue(session: Session, app: TaskApp, ids: Iterable[int]) -> int:
    """Queue fresh sends of dead or never-queued notifications; returns how many.

    A dead notification goes back to ``queued`` (``redrives`` + 1) before its send is
    published, then its old dead letter is discarded from ``<channel>.dead`` (best
    effort: a dead letter left behind is harmless, a replay of it finds the notification
    sent and sends nothing). Raises NotQueued like ``queue_sends``.
    """
    chosen: list[int] = []
    died_with: dict[int, str] = {}
    stale: dict[str, list[str]] = {}
    for notification in session.scalars(
        sa.select(Notification)
        .where(Notification.id.in_(list(ids)))
        .order_by(Notification.id)
        .with_for_update(skip_locked=True)
    ):
        if notification.state == "dead":
            if notification.task_id:
                died_with[notification.id] = notification.task_id
                stale.setdefault(notification.channel, []).append(notification.task_id)
            notification.redrives += 1
        elif not (notification.state == "queued" and notification.task_id is None):
            continue  # sent, retrying, or queued in the broker already: leave it
        notification.state = "queued"
        notification.task_id = None
        notification.next_retry_at = None
        notification.updated_at = utcnow()
        chosen.append(notification.id)
    session.commit()
    try:
        return queue_sends(session, chosen, died_with)
    finally:
        _discard_dead_letters(app, stale)


def _discard_dead_letters(app: TaskApp, stale: dict[str, list[str]]) -> None:
    ops = Operations(app)
    for channel, task_ids in stale.items():
        try:
            ops.discard(channel, task_ids)
        except (TaskcoreError, OSError) as exc:
            log.info("old dead letters of %s left in %s.dead: %s", task_ids, channel, exc)
