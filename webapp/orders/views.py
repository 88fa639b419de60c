"""Orders and notifications pages.

``/orders`` lists orders and takes new ones; ``/orders/<id>`` changes an order's status
and shows its notifications; ``/orders/notifications`` shows every notification (live)
and, for operators, the failing-sender switch and "Send again". Saving an order never
depends on the broker: when the broker or Redis is down the order and its notifications
are stored (``queued``, no task id) and the page says they will go out later.
"""

from __future__ import annotations

from typing import Any

import redis
import sqlalchemy as sa
from flask import abort, current_app, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from taskcore import TaskApp

from ..auth.access import audit, requires
from ..db import db, utcnow
from . import changes, orders
from .forms import FailingSenderForm, OrderForm, StatusForm
from .models import (
    CHANNELS,
    NEXT_STATUSES,
    NOTIFICATION_STATES,
    DeliveryAttempt,
    Notification,
    Order,
)
from .notify import NotQueued, requeue
from .senders import failing_channels, switch_failing

PAGE_SIZE = 100
#: A notification's state as a badge class of the console's stylesheet.
STATE_BADGES = {"queued": "received", "sent": "success", "retrying": "retry", "dead": "dead"}


def _task_app() -> TaskApp:
    return current_app.extensions["taskcore"]


@orders.app_template_filter("notification_badge")
def _notification_badge(state: str) -> str:
    return f"state-{STATE_BADGES.get(state, 'received')}"


def _queue(ids: list[int]) -> None:
    """Publish the sends of just-committed notifications; say so if they must wait."""
    exc = changes.send(db.session, ids)
    if exc is not None:
        flash(
            f"Saved, but {exc.failed} notification(s) could not be queued ({exc.reason}). "
            "They stay queued and go out with the next re-drive (every 5 minutes), "
            "or an operator can send them again.",
            "warning",
        )


@orders.get("")
@requires("viewer")
def index() -> str:
    return _index(OrderForm())


def _index(form: OrderForm, status: int = 200) -> Any:
    rows = db.session.scalars(sa.select(Order).order_by(Order.id.desc()).limit(PAGE_SIZE)).all()
    total = db.session.scalar(sa.select(sa.func.count()).select_from(Order))
    return render_template("orders/index.html", form=form, orders=rows, total=total), status


@orders.post("")
@requires("viewer")
def create() -> Any:
    form = OrderForm()
    if not form.validate_on_submit():
        return _index(form, 400)
    order, ids = changes.create_order(
        db.session,
        customer_name=form.customer_name.data,
        phone=form.phone.data,
        email=form.email.data,
        items=form.items.data,
        amount=form.amount.data,
    )
    flash(f"Order #{order.id} saved; confirmation queued by SMS and e-mail.", "success")
    _queue(ids)
    return redirect(url_for("orders.detail", order_id=order.id))


def _order_or_404(order_id: int) -> Order:
    order = db.session.get(Order, order_id)
    if order is None:
        abort(404, description=f"There is no order #{order_id}.")
    return order


def _status_form(order: Order) -> StatusForm:
    form = StatusForm()
    form.status.choices = list(NEXT_STATUSES[order.status])
    return form


@orders.get("/<int:order_id>")
@requires("viewer")
def detail(order_id: int) -> str:
    order = _order_or_404(order_id)
    return _detail(order, _status_form(order))


def _detail(order: Order, form: StatusForm, status: int = 200) -> Any:
    notifications = db.session.scalars(
        sa.select(Notification)
        .where(Notification.order_id == order.id)
        .order_by(Notification.id.desc())
    ).all()
    attempts = _attempts_of([n.id for n in notifications])
    return (
        render_template(
            "orders/detail.html",
            order=order,
            form=form,
            notifications=notifications,
            attempts=attempts,
        ),
        status,
    )


def _attempts_of(ids: list[int]) -> dict[int, list[DeliveryAttempt]]:
    found: dict[int, list[DeliveryAttempt]] = {i: [] for i in ids}
    if ids:
        for attempt in db.session.scalars(
            sa.select(DeliveryAttempt)
            .where(DeliveryAttempt.notification_id.in_(ids))
            .order_by(DeliveryAttempt.id)
        ):
            found[attempt.notification_id].append(attempt)
    return found


@orders.post("/<int:order_id>/status")
@requires("viewer")
def change_status(order_id: int) -> Any:
    order = _order_or_404(order_id)
    form = _status_form(order)
    if not form.validate_on_submit():
        if not form.status.choices:
            form.status.errors = [f"Order #{order.id} is {order.status}: it does not change now."]
        return _detail(order, form, 400)
    old, ids = changes.change_status(db.session, order, form.status.data)
    flash(f"Order #{order.id}: {old} → {order.status}; the customer is being told.", "success")
    _queue(ids)
    return redirect(url_for("orders.detail", order_id=order.id))


@orders.get("/notifications")
@requires("viewer")
def notifications() -> str:
    state = request.args.get("state", "")
    query = sa.select(Notification).order_by(Notification.id.desc()).limit(PAGE_SIZE)
    if state in NOTIFICATION_STATES:
        query = query.where(Notification.state == state)
    else:
        state = ""
    rows = db.session.scalars(query).all()
    counts = dict(
        db.session.execute(
            sa.select(Notification.state, sa.func.count()).group_by(Notification.state)
        ).all()
    )
    return render_template(
        "orders/notifications.html",
        notifications=rows,
        counts={s: counts.get(s, 0) for s in NOTIFICATION_STATES},
        state=state,
        failing=failing_channels(_task_app()),
        limits=_rate_limits(),
        channels=CHANNELS,
        switch_form=FailingSenderForm(),
        now=utcnow(),
    )


def _rate_limits() -> dict[str, tuple[str, str]] | None:
    """(in force, declared) limits of the sms and email queues; None if Redis is down."""
    ops = current_app.extensions["taskcore_ops"]
    try:
        limits = ops.rate_limits()
    except redis.RedisError:
        return None
    declared = ops.declared_rate_limits()
    return {
        c: (limits.get(f"queue:{c}", "none"), declared.get(f"queue:{c}", "none")) for c in CHANNELS
    }


@orders.post("/notifications/failing")
@requires("operator")
def switch_failing_sender() -> Response:
    """Switch a channel's failing sender on or off (a drill), for every worker; audited."""
    form = FailingSenderForm()
    if not form.validate_on_submit():
        flash("Choose a channel and on or off.", "error")
        return redirect(url_for("orders.notifications"))
    channel, on = form.channel.data, form.on.data == "1"
    try:
        switch_failing(_task_app(), channel, on)
    except redis.RedisError as exc:
        flash(f"Redis cannot be reached ({exc}): the {channel} sender was not switched.", "error")
        return redirect(url_for("orders.notifications"))
    audit("orders.failing_sender", channel, "on" if on else "off")
    if on:
        flash(f"The failing {channel} sender is on: every {channel} send fails.", "warning")
    else:
        flash(f"The failing {channel} sender is off: {channel} sends go out again.", "success")
    return redirect(url_for("orders.notifications"))


@orders.post("/notifications/<int:notification_id>/send")
@requires("operator")
def send_again(notification_id: int) -> Response:
    """Queue a fresh send of a dead or never-queued notification now; audited."""
    notification = db.session.get(Notification, notification_id)
    if notification is None:
        abort(404, description=f"There is no notification #{notification_id}.")
    back = request.form.get("next", "")
    target = (
        url_for("orders.detail", order_id=notification.order_id)
        if back == "order"
        else url_for("orders.notifications")
    )
    if not (
        notification.state == "dead"
        or (notification.state == "queued" and notification.task_id is None)
    ):
        flash(
            f"Notification #{notification_id} is {notification.state}: "
            "only dead or unqueued ones are sent again.",
            "warning",
        )
        return redirect(target)
    try:
        queued = requeue(db.session, _task_app(), [notification_id])
    except NotQueued as exc:
        flash(f"Not queued ({exc.reason}): the re-drive will try again.", "error")
        return redirect(target)
    audit("orders.send_again", f"notification {notification_id}", notification.channel)
    if queued:
        flash(f"Notification #{notification_id} queued again.", "success")
    return redirect(target)
