"""Orders: place one (its customer is told by SMS and e-mail in the background), read it
with its notifications, move it to its next status, list the notifications.

Saving an order never depends on the broker: when it (or Redis) is down the order and
its notifications are stored, the answer is still 201, and ``warning`` says the
notifications wait for the re-drive (every 5 minutes), as the page says. A 503 there
would invite a client to send the order again and make a second one.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..db import db
from ..orders import changes
from ..orders.forms import normalize_phone
from ..orders.models import NEXT_STATUSES, NOTIFICATION_STATES, Notification, Order
from ..orders.notify import NotQueued
from . import api
from .endpoint import endpoint
from .errors import Conflict, NotFound
from .schemas_workloads import (
    INTEGER_ID,
    NotificationsPageSchema,
    NotificationsQuerySchema,
    OrderBodySchema,
    OrderSchema,
    StatusChangeSchema,
)

TAG = "orders"
ORDER_ID = {"order_id": INTEGER_ID}


def _order(order_id: str) -> Order:
    order = db.session.get(Order, int(order_id))
    if order is None:
        raise NotFound(f"There is no order #{order_id}.")
    return order


def notification(row: Notification) -> dict[str, Any]:
    shown = {
        name: getattr(row, name)
        for name in (
            "id", "order_id", "channel", "recipient", "subject", "body", "state", "attempts",
            "redrives", "last_error", "next_retry_at", "sent_at", "created_at", "updated_at",
        )
    }  # fmt: skip
    shown["queued"] = row.task_id is not None
    return shown


def _shown(order: Order, problem: NotQueued | None = None) -> dict[str, Any]:
    rows = db.session.scalars(
        sa.select(Notification)
        .where(Notification.order_id == order.id)
        .order_by(Notification.id.desc())
    ).all()
    warning = None
    if problem is not None:
        warning = (
            f"Saved, but {problem.failed} notification(s) could not be queued "
            f"({problem.reason}). They stay queued and go out with the next re-drive "
            "(every 5 minutes)."
        )
    return {
        **{
            name: getattr(order, name)
            for name in ("id", "customer_name", "phone", "email", "items", "status")
        },
        "amount": f"{order.amount:.2f}",
        "next_statuses": list(NEXT_STATUSES[order.status]),
        "created_at": order.created_at,
        "updated_at": order.updated_at,
        "notifications": [notification(row) for row in rows],
        "warning": warning,
    }


@api.post("/orders")
@endpoint(
    "Place an order (its customer is notified by SMS and e-mail)",
    tag=TAG,
    body=OrderBodySchema,
    response=OrderSchema,
    status=201,
    errors=(503,),
)
def place_order(body: dict[str, Any]) -> Any:
    """The order form's fields and checks: the phone number is kept as digits (with its
    +), the amount to two decimal places. 201 with the order and its two notifications
    (queued); ``warning`` when their sends could not be queued (they go out later)."""
    order, ids = changes.create_order(
        db.session,
        customer_name=body["customer_name"],
        phone=normalize_phone(body["phone"]),
        email=body["email"].strip(),
        items=body["items"],
        amount=body["amount"],
    )
    problem = changes.send(db.session, ids)
    db.session.refresh(order)
    return _shown(order, problem)


@api.get("/orders/<order_id>")
@endpoint(
    "An order and its notifications",
    tag=TAG,
    response=OrderSchema,
    errors=(404, 503),
    path_patterns=ORDER_ID,
)
def order_detail(order_id: str) -> Any:
    """Notifications newest first, each with its state, tries and last error."""
    return _shown(_order(order_id))


@api.post("/orders/<order_id>/status")
@endpoint(
    "Move an order to its next status (the customer is notified)",
    tag=TAG,
    body=StatusChangeSchema,
    response=OrderSchema,
    errors=(404, 409, 503),
    path_patterns=ORDER_ID,
)
def change_order_status(order_id: str, body: dict[str, Any]) -> Any:
    """placed → paid or cancelled; paid → shipped or cancelled; shipped → delivered.
    Any other move is a 409 that says which are possible (``next_statuses``)."""
    order = _order(order_id)
    if not changes.can_move(order, body["status"]):
        allowed = NEXT_STATUSES[order.status]
        then = f"it can move to {' or '.join(allowed)}" if allowed else "it does not change now"
        raise Conflict(f"Order #{order.id} is {order.status}: {then}.")
    _, ids = changes.change_status(db.session, order, body["status"])
    problem = changes.send(db.session, ids)
    db.session.refresh(order)
    return _shown(order, problem)


@api.get("/orders/notifications")
@endpoint(
    "Notifications, newest first",
    tag=TAG,
    query=NotificationsQuerySchema,
    response=NotificationsPageSchema,
    errors=(503,),
)
def order_notifications(query: dict[str, Any]) -> Any:
    """Of every order, optionally in one ``state``; page with ``after=<next>``.
    ``counts`` are by state, over all of them."""
    select = sa.select(Notification).order_by(Notification.id.desc()).limit(query["limit"] + 1)
    if query["state"]:
        select = select.where(Notification.state == query["state"])
    if query["after"]:
        select = select.where(Notification.id < int(query["after"]))
    rows = db.session.scalars(select).all()
    more = len(rows) > query["limit"]
    rows = rows[: query["limit"]]
    counts = dict(
        db.session.execute(
            sa.select(Notification.state, sa.func.count()).group_by(Notification.state)
        ).all()
    )
    return {
        "notifications": [notification(row) for row in rows],
        "counts": {state: counts.get(state, 0) for state in NOTIFICATION_STATES},
        "next": str(rows[-1].id) if more and rows else None,
    }
