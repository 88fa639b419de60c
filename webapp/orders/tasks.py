"""Order notification tasks (on webapp.taskapp.app; queues by webapp.taskapp.ROUTES).

``send_sms`` and ``send_email`` land on the ``sms`` and ``email`` queues by their names
(no ``queue=`` here: the routes decide), where the queues' global rate limits
(10/min and 30/min, changeable at run time) pace them. Every other task here goes to
``notifications``.

A failed send is retried after ``B``, ``2B`` and ``4B`` seconds, ``B`` being
``WEBAPP_NOTIFY_RETRY_BASE`` (default 60: 60 s, 120 s, 240 s, without jitter so the
notification's next retry time is exact), in the broker's delay cascade; after the 4th
try (3 retries) the message goes to ``<queue>.dead`` with reason
``max-retries-exceeded`` and the notification is ``dead``.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from taskcore import Reject, Retry, current_task

from ..db import task_session, utcnow
from ..taskapp import app
from .models import DeliveryAttempt, Notification, OutboxMessage
from .notify import NotQueued, idempotency_key, requeue, retry_base
from .senders import OutgoingMessage, sender_for

log = logging.getLogger("webapp.orders")

#: Seconds before the first retry (read once, at import, in every process).
RETRY_BASE = retry_base()
MAX_RETRIES = 3
SEND_OPTIONS: dict[str, Any] = {
    "max_retries": MAX_RETRIES,
    "retry_backoff": RETRY_BASE,
    "retry_backoff_max": RETRY_BASE * 2 ** (MAX_RETRIES - 1),
    "retry_jitter": False,
    "idempotency_key": idempotency_key,
    # The key outlives every retry (the longest path is 7 times RETRY_BASE) by far.
    "idempotency_window": 86400.0,
}
#: How often and how far back the periodic tasks look.
REDRIVE_EVERY = timedelta(minutes=5)
PURGE_EVERY = timedelta(hours=1)
KEEP_FOR = timedelta(days=7)


@app.task(**SEND_OPTIONS)
def send_sms(notification_id: int) -> str:
    """Send one SMS notification (queue ``sms``, 10/min across all workers)."""
    return deliver(notification_id, "sms")


@app.task(**SEND_OPTIONS)
def send_email(notification_id: int) -> str:
    """Send one e-mail notification (queue ``email``, 30/min across all workers)."""
    return deliver(notification_id, "email")


def deliver(notification_id: int, channel: str) -> str:
    """Send a notification once; record the try; ask for a retry if the sender failed.

    Idempotent: the notification's row is locked for the whole try, and one already
    ``sent`` is not sent again (a redelivered message, a replayed dead letter); the
    default sender's outbox also refuses a second row for a notification.
    """
    task_id = current_task.id if current_task else f"direct-{channel}-{notification_id}"
    retries = current_task.retries if current_task else 0
    options = (send_sms if channel == "sms" else send_email).options
    retry_in: float | None = None
    error: Exception | None = None
    with task_session() as session, session.begin():
        notification = session.get(Notification, notification_id, with_for_update=True)
        if notification is None:
            log.info("notification %d is gone (purged?): nothing to send", notification_id)
            return "gone"
        if notification.channel != channel:
            raise Reject(f"notification {notification_id} is for {notification.channel}")
        now = utcnow()
        if notification.state == "sent":
            session.add(
                DeliveryAttempt(
                    notification_id=notification_id,
                    number=notification.attempts,
                    task_id=task_id,
                    at=now,
                    outcome="skipped",
                )
            )
            return "already sent"
        number = notification.attempts + 1
        message = OutgoingMessage(
            notification_id=notification.id,
            channel=channel,
            recipient=notification.recipient,
            subject=notification.subject,
            body=notification.body,
        )
        try:
            sender_for(app, channel).send(message)
        except Exception as exc:  # any failure of a sender is a try that did not send
            error = exc
            outcome = "dead" if retries >= options.max_retries else "retrying"
            if outcome == "retrying":
                retry_in = options.retry_delay(retries)
            notification.state = outcome
            notification.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            notification.next_retry_at = (
                now + timedelta(seconds=retry_in) if retry_in is not None else None
            )
        else:
            outcome = "sent"
            notification.state = "sent"
            notification.sent_at = _outbox_time(session, notification_id) or utcnow()
            notification.next_retry_at = None
        notification.attempts = number
        notification.task_id = task_id
        notification.updated_at = utcnow()
        session.add(
            DeliveryAttempt(
                notification_id=notification_id,
                number=number,
                task_id=task_id,
                at=now,
                outcome=outcome,
                error=notification.last_error if error is not None else None,
                retry_at=notification.next_retry_at,
            )
        )
    if error is not None:
        # The countdown is the one recorded above; past the last retry taskcore
        # dead-letters the message (reason max-retries-exceeded, this error's headers).
        raise Retry(countdown=retry_in if retry_in is not None else 0, exc=error)
    return "sent"


def _outbox_time(session: Any, notification_id: int) -> Any:
    return session.scalar(
        sa.select(OutboxMessage.sent_at).where(OutboxMessage.notification_id == notification_id)
    )


@app.task
def redrive_failed_notifications(limit: int = 200) -> dict[str, int]:
    """Queue a fresh send for each ``dead`` notification and each one whose send was
    never queued (the broker was down when its order was saved); every 5 minutes.

    Why a fresh send and not a replay of the dead letter (``Operations.replay``): the
    notification row, not the broker, is the record of what still has to go out. A fresh
    send works whether or not the dead letter is still there (an operator may have
    discarded or purged it, and a never-queued send has none), it goes through the same
    publish path as the first send (idempotency key, confirms), and it starts a new
    round of retries. The old dead letter is then discarded from ``<channel>.dead``;
    should that fail, a later replay of it finds the notification sent and sends nothing.
    """
    with task_session() as session:
        ids = list(
            session.scalars(
                sa.select(Notification.id)
                .where(
                    sa.or_(
                        Notification.state == "dead",
                        sa.and_(Notification.state == "queued", Notification.task_id.is_(None)),
                    )
                )
                .order_by(Notification.id)
                .limit(limit)
            )
        )
        try:
            queued = requeue(session, app, ids)
        except NotQueued as exc:
            log.warning("re-drive: %s", exc)
            return {"found": len(ids), "queued": exc.queued, "not_queued": exc.failed}
    if ids:
        log.info("re-drive: %d notification(s) found, %d queued", len(ids), queued)
    return {"found": len(ids), "queued": queued, "not_queued": 0}


@app.task
def purge_old_notifications(days: float = KEEP_FOR.days) -> dict[str, int]:
    """Delete notifications (with their delivery attempts) and outbox rows older than
    ``days`` (7); every hour. Orders and their events stay."""
    cutoff = utcnow() - timedelta(days=days)
    with task_session() as session, session.begin():
        old = sa.select(Notification.id).where(Notification.created_at < cutoff)
        attempts = session.execute(
            sa.delete(DeliveryAttempt).where(DeliveryAttempt.notification_id.in_(old))
        ).rowcount
        notifications = session.execute(
            sa.delete(Notification).where(Notification.created_at < cutoff)
        ).rowcount
        outbox = session.execute(
            sa.delete(OutboxMessage).where(OutboxMessage.sent_at < cutoff)
        ).rowcount
    log.info(
        "purged %d notification(s), %d attempt(s), %d outbox row(s) older than %s days",
        notifications,
        attempts,
        outbox,
        days,
    )
    return {"notifications": notifications, "attempts": attempts, "outbox": outbox}


app.schedule("orders-redrive-failed", redrive_failed_notifications, every=REDRIVE_EVERY)
app.schedule("orders-purge-old", purge_old_notifications, every=PURGE_EVERY)
