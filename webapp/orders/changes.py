"""Placing an order and moving it to its next status, shared by the pages and the JSON API.

Each writes the order, its event and one queued notification per channel in one commit,
and only then publishes the sends (``notify.queue_sends``): an order is saved whether or
not the broker is up, and notifications that could not be queued wait for the re-drive.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy.orm import Session

from ..db import utcnow
from .models import NEXT_STATUSES, Order
from .notify import NotQueued, queue_sends, record_event


def create_order(
    session: Session, *, customer_name: str, phone: str, email: str, items: str, amount: Decimal
) -> tuple[Order, list[int]]:
    """Store a new ``placed`` order with its ``created`` event and notifications
    (committed); returns it and the notifications' ids, for ``send``."""
    now = utcnow()
    order = Order(
        customer_name=customer_name.strip(),
        phone=phone,
        email=email,
        items=items.strip(),
        amount=amount,
        status="placed",
        created_at=now,
        updated_at=now,
    )
    session.add(order)
    session.flush()
    ids = [n.id for n in record_event(session, order, "created")]
    session.commit()
    return order, ids


def can_move(order: Order, status: str) -> bool:
    """Whether ``order`` may go to ``status`` now."""
    return status in NEXT_STATUSES[order.status]


def change_status(session: Session, order: Order, status: str) -> tuple[str, list[int]]:
    """Move ``order`` to ``status`` (check ``can_move`` first) with a ``status`` event and
    its notifications (committed); returns the old status and the notifications' ids."""
    old = order.status
    order.status = status
    order.updated_at = utcnow()
    ids = [n.id for n in record_event(session, order, "status")]
    session.commit()
    return old, ids


def send(session: Session, ids: list[int]) -> NotQueued | None:
    """Publish the sends of just-committed notifications; the NotQueued problem (they
    stay queued for the re-drive) or None when every one was queued."""
    try:
        queue_sends(session, ids)
    except NotQueued as exc:
        return exc
    return None
