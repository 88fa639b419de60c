"""Orders, their events, one notification per (event, channel), and the outbox.

An order's creation and each status change is an ``OrderEvent``; every event gets one
``Notification`` per channel (``sms``, ``email``), which the send tasks move through
``queued -> sent`` or ``queued -> retrying -> ... -> dead``. Each try is an
``DeliveryAttempt``. ``OutboxMessage`` is what the default sender "sends": one row per
notification at most (unique ``notification_id``), so a redelivered send cannot
write a second message. The outbox deliberately has no foreign key: it stands in for
the outside world, and a send task holds the notification's row lock while it sends.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db import UTCDateTime, db, utcnow

#: An order's statuses, in the order they normally follow each other.
STATUSES = ("placed", "paid", "shipped", "delivered", "cancelled")
#: Statuses an order may move to from each status.
NEXT_STATUSES: dict[str, tuple[str, ...]] = {
    "placed": ("paid", "cancelled"),
    "paid": ("shipped", "cancelled"),
    "shipped": ("delivered",),
    "delivered": (),
    "cancelled": (),
}
CHANNELS = ("sms", "email")
#: queued: waiting for (or in) its send task; retrying: the last try failed and another
#: is scheduled; sent: in the outbox (or handed to the real sender); dead: out of tries,
#: in ``<channel>.dead`` until the periodic re-drive (or "send again") queues it anew.
NOTIFICATION_STATES = ("queued", "sent", "retrying", "dead")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Order(db.Model):  # type: ignore[name-defined,misc]
    """A customer's order."""

    __tablename__ = "orders"
    __table_args__ = (sa.CheckConstraint(_in("status", STATUSES), name="orders_status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_name: Mapped[str] = mapped_column(sa.String(120))
    phone: Mapped[str] = mapped_column(sa.String(20))
    email: Mapped[str] = mapped_column(sa.String(254))
    items: Mapped[str] = mapped_column(sa.Text)
    amount: Mapped[Decimal] = mapped_column(sa.Numeric(10, 2))
    status: Mapped[str] = mapped_column(sa.String(16), default="placed")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    events: Mapped[list[OrderEvent]] = relationship(
        back_populates="order", order_by="OrderEvent.id", cascade="all, delete-orphan"
    )


class OrderEvent(db.Model):  # type: ignore[name-defined,misc]
    """Something that happened to an order and is told to the customer."""

    __tablename__ = "order_events"
    __table_args__ = (sa.CheckConstraint(_in("kind", ("created", "status")), name="events_kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(
        sa.ForeignKey("orders.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(sa.String(16))
    status: Mapped[str] = mapped_column(sa.String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    order: Mapped[Order] = relationship(back_populates="events")
    notifications: Mapped[list[Notification]] = relationship(
        back_populates="event", order_by="Notification.id"
    )


class Notification(db.Model):  # type: ignore[name-defined,misc]
    """One message about one event on one channel, and how its sending goes."""

    __tablename__ = "notifications"
    __table_args__ = (
        sa.UniqueConstraint("event_id", "channel", name="uq_notifications_event_channel"),
        sa.CheckConstraint(_in("channel", CHANNELS), name="notifications_channel"),
        sa.CheckConstraint(_in("state", NOTIFICATION_STATES), name="notifications_state"),
        sa.Index("ix_notifications_state_created", "state", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(sa.ForeignKey("order_events.id", ondelete="CASCADE"))
    order_id: Mapped[int] = mapped_column(
        sa.ForeignKey("orders.id", ondelete="CASCADE"), index=True
    )
    channel: Mapped[str] = mapped_column(sa.String(8))
    recipient: Mapped[str] = mapped_column(sa.String(254))
    subject: Mapped[str] = mapped_column(sa.String(200))
    body: Mapped[str] = mapped_column(sa.Text)
    state: Mapped[str] = mapped_column(sa.String(16), default="queued")
    #: Tries made by send tasks, over every send and re-drive of this notification.
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    next_retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The send task that holds it; None while no send was confirmed by the broker.
    task_id: Mapped[str | None] = mapped_column(sa.String(200))
    #: How many times the re-drive (or "send again") queued it after it died.
    redrives: Mapped[int] = mapped_column(default=0)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    event: Mapped[OrderEvent] = relationship(back_populates="notifications")
    attempt_log: Mapped[list[DeliveryAttempt]] = relationship(
        order_by="DeliveryAttempt.id", cascade="all, delete-orphan", passive_deletes=True
    )


class DeliveryAttempt(db.Model):  # type: ignore[name-defined,misc]
    """One try of a send task at one notification: its outcome and the wait it asked for."""

    __tablename__ = "delivery_attempts"
    __table_args__ = (
        sa.CheckConstraint(
            _in("outcome", ("sent", "retrying", "dead", "skipped")), name="attempts_outcome"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    notification_id: Mapped[int] = mapped_column(
        sa.ForeignKey("notifications.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column()
    task_id: Mapped[str] = mapped_column(sa.String(200))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    outcome: Mapped[str] = mapped_column(sa.String(16))
    error: Mapped[str | None] = mapped_column(sa.Text)
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OutboxMessage(db.Model):  # type: ignore[name-defined,misc]
    """A message the default sender delivered: the stand-in for the SMS gateway and mailer."""

    __tablename__ = "outbox"
    __table_args__ = (sa.Index("ix_outbox_channel_sent", "channel", "sent_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    notification_id: Mapped[int] = mapped_column(unique=True)
    channel: Mapped[str] = mapped_column(sa.String(8))
    recipient: Mapped[str] = mapped_column(sa.String(254))
    subject: Mapped[str] = mapped_column(sa.String(200))
    body: Mapped[str] = mapped_column(sa.Text)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
