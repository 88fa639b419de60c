"""Orders and notifications: pages, fan-out, rate limits, retries, dead letters, re-drive.

Real RabbitMQ, Redis, PostgreSQL and worker processes. Sends are paced by the ``sms`` and
``email`` queues' global limits; tests that need many sends raise them at run time
through the operations API (as the console's rate-limit page does), and one test
measures the declared 10/min itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from taskcore.history import make_engine
from webapp.auth.models import AuditEntry
from webapp.db import db, utcnow
from webapp.migrations import WEBAPP
from webapp.orders import senders
from webapp.orders.models import (
    DeliveryAttempt,
    Notification,
    Order,
    OrderEvent,
    OutboxMessage,
)
from webapp.orders.notify import idempotency_key, queue_sends, record_event, retry_base

from .webapp_helpers import close_web_app, csrf_token_from, log_in, make_console_app, wait_until

pytest_plugins = ["tests.webapp_fixtures"]

FAST = {"queue:sms": "100/s", "queue:email": "100/s"}
GOOD_ORDER = {
    "customer_name": "Ada Lovelace",
    "phone": "+44 20 7946 0958",
    "email": "ada@example.com",
    "items": "2 notebooks, 1 pen",
    "amount": "19.90",
}


@pytest.fixture
def console_app(
    database_url: str, task_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Flask]:
    """The web app on this test's vhost, namespace and schema; task bodies called here
    (the re-drive, the purge) use the same database."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    app = make_console_app(database_url, task_env, olivia="operator", victor="viewer")
    yield app
    close_web_app(app)


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def signed_in(app: Flask, name: str) -> FlaskClient:
    client = app.test_client()
    log_in(client, name)
    return client


def post_form(client: FlaskClient, page: str, action: str, data: dict[str, str]) -> Any:
    token = csrf_token_from(client.get(page).get_data(as_text=True))
    return client.post(action, data={**data, "csrf_token": token})


def notifications(engine: sa.Engine, **where: Any) -> list[Notification]:
    with Session(engine) as session:
        query = sa.select(Notification).filter_by(**where).order_by(Notification.id)
        return list(session.scalars(query))


def outbox(engine: sa.Engine, channel: str | None = None) -> list[OutboxMessage]:
    with Session(engine) as session:
        query = sa.select(OutboxMessage).order_by(OutboxMessage.sent_at)
        if channel:
            query = query.where(OutboxMessage.channel == channel)
        return list(session.scalars(query))


def attempts_of(engine: sa.Engine, notification_id: int) -> list[DeliveryAttempt]:
    with Session(engine) as session:
        return list(
            session.scalars(
                sa.select(DeliveryAttempt)
                .where(DeliveryAttempt.notification_id == notification_id)
                .order_by(DeliveryAttempt.id)
            )
        )


def make_orders(app: Flask, count: int, *, send: bool = True) -> list[int]:
    """``count`` orders made as the page makes them; returns their notification ids."""
    with app.app_context():
        ids: list[int] = []
        for i in range(count):
            now = utcnow()
            order = Order(
                customer_name=f"Customer {i}",
                phone=f"+4477009000{i:02d}",
                email=f"c{i}@example.com",
                items="1 mug",
                amount=Decimal("4.50"),
                status="placed",
                created_at=now,
                updated_at=now,
            )
            db.session.add(order)
            db.session.flush()
            ids += [n.id for n in record_event(db.session, order, "created")]
        db.session.commit()
        if send:
            queue_sends(db.session, ids)
        return ids


def set_limits(app: Flask, limits: dict[str, str | None]) -> None:
    ops = app.extensions["taskcore_ops"]
    for name, rate in limits.items():
        ops.set_rate_limit(name, rate)


def most_in_any_window(times: list[float], window: float) -> int:
    times = sorted(times)
    return max((sum(1 for u in times if t <= u < t + window) for t in times), default=0)


# -- without a worker ---------------------------------------------------------------


def test_models_and_migrations_agree(engine: sa.Engine) -> None:
    WEBAPP.upgrade(engine)
    assert WEBAPP.differences(engine) == []
    names = {"orders", "order_events", "notifications", "delivery_attempts", "outbox"}
    assert names <= set(sa.inspect(engine).get_table_names())
    WEBAPP.downgrade(engine, "0003_documents")
    assert not names & set(sa.inspect(engine).get_table_names())
    WEBAPP.upgrade(engine)
    assert WEBAPP.differences(engine) == []


def test_sends_are_routed_to_rate_limited_queues(console_app: Flask) -> None:
    task_app = console_app.extensions["taskcore"]
    declared = console_app.extensions["taskcore_ops"].declared_rate_limits()
    assert declared["queue:sms"] == "10/m"
    assert declared["queue:email"] == "30/m"
    assert task_app.queue_for("webapp.orders.tasks.send_sms") == "sms"
    assert task_app.queue_for("webapp.orders.tasks.send_email") == "email"
    for name in ("redrive_failed_notifications", "purge_old_notifications"):
        assert task_app.queue_for(f"webapp.orders.tasks.{name}") == "notifications"
    options = task_app.tasks["webapp.orders.tasks.send_sms"].options
    assert options.max_retries == 3 and not options.retry_jitter
    # Without WEBAPP_NOTIFY_RETRY_BASE (as in this test process): 60 s, 120 s, 240 s.
    assert [options.retry_delay(n) for n in range(3)] == [60, 120, 240]
    schedules = {s["name"]: s for s in console_app.extensions["taskcore_ops"].schedules()}
    assert schedules["orders-redrive-failed"]["when"] == "every 300s"
    assert schedules["orders-purge-old"]["when"] == "every 3600s"


def test_retry_base_from_the_environment() -> None:
    assert retry_base({}) == 60.0
    assert retry_base({"WEBAPP_NOTIFY_RETRY_BASE": "0.2"}) == 0.2
    for bad in ("soon", "0", "-1"):
        with pytest.raises(ValueError, match="WEBAPP_NOTIFY_RETRY_BASE"):
            retry_base({"WEBAPP_NOTIFY_RETRY_BASE": bad})


def test_invalid_phone_and_email_show_the_form_again(console_app: Flask, engine: sa.Engine) -> None:
    client = signed_in(console_app, "victor")
    bad = {**GOOD_ORDER, "phone": "call me", "email": "ada.example.com", "amount": "-3"}
    response = post_form(client, "/orders", "/orders", bad)
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "Use digits, spaces and + ( ) - only" in html
    assert "That is not an e-mail address" in html
    assert "The amount must be between" in html
    assert 'value="Ada Lovelace"' in html  # what was typed is kept
    short = post_form(client, "/orders", "/orders", {**GOOD_ORDER, "phone": "+44 123"})
    assert "8 to 15 digits" in short.get_data(as_text=True)
    with Session(engine) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Order)) == 0


def test_a_stored_order_survives_a_broker_that_is_down(
    database_url: str, task_env: dict[str, str], engine: sa.Engine
) -> None:
    down = {**task_env, "TASKCORE_BROKER_URL": "amqp://guest:guest@127.0.0.1:1/"}
    app = make_console_app(database_url, down, victor="viewer")
    try:
        client = signed_in(app, "victor")
        response = post_form(client, "/orders", "/orders", GOOD_ORDER)
        assert response.status_code == 302
        page = client.get(response.headers["Location"]).get_data(as_text=True)
    finally:
        close_web_app(app)
    assert "could not be queued" in page and "re-drive" in page
    with Session(engine) as session:
        order = session.scalars(sa.select(Order)).one()
        assert (order.customer_name, order.phone, order.email) == (
            "Ada Lovelace",
            "+442079460958",
            "ada@example.com",
        )
    rows = notifications(engine)
    assert [(n.channel, n.state, n.task_id) for n in rows] == [
        ("sms", "queued", None),
        ("email", "queued", None),
    ]


def test_purge_deletes_rows_older_than_seven_days(console_app: Flask, engine: sa.Engine) -> None:
    from webapp.orders.tasks import purge_old_notifications

    ids = make_orders(console_app, 2, send=False)
    old, new = ids[:2], ids[2:]
    long_ago = utcnow() - timedelta(days=8)
    with engine.begin() as connection:
        connection.execute(
            sa.update(Notification).where(Notification.id.in_(old)).values(created_at=long_ago)
        )
        for nid in ids:
            sent_at = long_ago if nid in old else utcnow()
            connection.execute(
                sa.insert(OutboxMessage).values(
                    notification_id=nid,
                    channel="sms",
                    recipient="+1",
                    subject="s",
                    body="b",
                    sent_at=sent_at,
                )
            )
            connection.execute(
                sa.insert(DeliveryAttempt).values(
                    notification_id=nid, number=1, task_id="t", at=utcnow(), outcome="sent"
                )
            )
    assert purge_old_notifications() == {"notifications": 2, "attempts": 2, "outbox": 2}
    assert [n.id for n in notifications(engine)] == new
    assert sorted(m.notification_id for m in outbox(engine)) == new
    with Session(engine) as session:  # the orders and their events stay
        assert session.scalar(sa.select(sa.func.count()).select_from(OrderEvent)) == 2


def test_only_operators_switch_the_failing_sender(console_app: Flask) -> None:
    task_app = console_app.extensions["taskcore"]
    viewer = signed_in(console_app, "victor")
    page = "/orders/notifications"
    assert "Make sms fail" not in viewer.get(page).get_data(as_text=True)
    denied = post_form(viewer, "/orders", f"{page}/failing", {"channel": "sms", "on": "1"})
    assert denied.status_code == 403
    assert not senders.failing_switched_on(task_app, "sms")

    operator = signed_in(console_app, "olivia")
    response = post_form(operator, page, f"{page}/failing", {"channel": "sms", "on": "1"})
    assert response.status_code == 302
    assert senders.failing_switched_on(task_app, "sms")
    assert not senders.failing_switched_on(task_app, "email")
    html = operator.get(page).get_data(as_text=True)
    assert "Fix the sms sender" in html and "Make email fail" in html
    post_form(operator, page, f"{page}/failing", {"channel": "sms", "on": "0"})
    assert not senders.failing_switched_on(task_app, "sms")
    with console_app.app_context():
        entries = db.session.scalars(
            sa.select(AuditEntry).where(AuditEntry.action == "orders.failing_sender")
        ).all()
        assert [(e.actor, e.target, e.detail) for e in entries] == [
            ("olivia", "sms", "on"),
            ("olivia", "sms", "off"),
        ]


def test_a_redrive_waits_while_the_dead_task_still_holds_its_key(
    console_app: Flask, engine: sa.Engine
) -> None:
    """Between its last try (row marked dead) and its dead letter, the task still holds the
    idempotency key: a re-drive then publishes nothing and leaves the notification dead."""
    from taskcore import State
    from webapp.orders.tasks import redrive_failed_notifications

    task_app = console_app.extensions["taskcore"]
    sms_id = make_orders(console_app, 1, send=False)[0]
    with engine.begin() as connection:
        connection.execute(
            sa.update(Notification)
            .where(Notification.id == sms_id)
            .values(state="dead", task_id="dying", attempts=4)
        )
        connection.execute(
            sa.update(Notification).where(Notification.id != sms_id).values(state="sent")
        )
    task_app.redis.set(task_app.keys.idempotency(idempotency_key(sms_id)), "dying")
    task_app.results.set_state("dying", State.STARTED)
    assert redrive_failed_notifications() == {"found": 1, "queued": 0, "not_queued": 0}
    sms = notifications(engine, id=sms_id)[0]
    assert (sms.state, sms.task_id) == ("dead", "dying")
    task_app.results.set_state("dying", State.FAILURE)  # dead-lettered: the next one goes
    assert redrive_failed_notifications() == {"found": 1, "queued": 1, "not_queued": 0}
    sms = notifications(engine, id=sms_id)[0]
    assert sms.state == "queued" and sms.task_id not in (None, "dying")


def test_in_process_an_order_sends_at_once_and_a_failing_sms_uses_its_retries(
    console_app: Flask, engine: sa.Engine, taskcore_in_process: Any
) -> None:
    """The order page's sends run in-process (taskcore.testing): no worker, no broker,
    and the failing SMS's three backoffs (60 s, 120 s, 240 s by default) are not waited."""
    from webapp.orders.tasks import RETRY_BASE, send_email, send_sms

    operator = signed_in(console_app, "olivia")
    page = "/orders/notifications"
    post_form(operator, page, f"{page}/failing", {"channel": "sms", "on": "1"})
    calls = taskcore_in_process(console_app.extensions["taskcore"])
    created = post_form(signed_in(console_app, "victor"), "/orders", "/orders", GOOD_ORDER)
    assert created.status_code == 302

    sms_call, email_call = calls
    assert (email_call.task, email_call.state, email_call.result) == (
        send_email.name,
        "SUCCESS",
        "sent",
    )
    assert sms_call.task == send_sms.name
    assert [a.state for a in sms_call.attempts] == ["RETRY", "RETRY", "RETRY", "FAILURE"]
    assert [a.retry_in for a in sms_call.attempts[:3]] == [RETRY_BASE * 2**n for n in range(3)]
    assert sms_call.reason == "max-retries-exceeded"
    assert sms_call.error["message"] == "the failing sms sender is switched on (a drill)"
    sms, email = notifications(engine)
    assert (sms.channel, sms.state, sms.attempts) == ("sms", "dead", 4)
    assert (email.channel, email.state, email.attempts) == ("email", "sent", 1)
    assert [a.outcome for a in attempts_of(engine, sms.id)] == ["retrying"] * 3 + ["dead"]
    assert [m.channel for m in outbox(engine)] == ["email"]


# -- with a worker ----------------------------------------------------------------


def test_an_order_fans_out_and_each_status_change_notifies(
    console_app: Flask, engine: sa.Engine, start_webapp_worker: Any
) -> None:
    set_limits(console_app, FAST)
    start_webapp_worker("notifications", "sms", "email")
    client = signed_in(console_app, "victor")
    created = post_form(client, "/orders", "/orders", GOOD_ORDER)
    assert created.status_code == 302
    detail = created.headers["Location"]
    wait_until(lambda: len(outbox(engine)) == 2, what="the confirmation by SMS and e-mail")
    sms, email = outbox(engine, "sms"), outbox(engine, "email")
    assert sms[0].recipient == "+442079460958" and "is confirmed" in sms[0].body
    assert email[0].recipient == "ada@example.com" and email[0].subject.endswith("confirmed")

    changed = post_form(client, detail, f"{detail}/status", {"status": "paid"})
    assert changed.status_code == 302
    wait_until(lambda: len(outbox(engine)) == 4, what="the status update")
    assert "now paid" in outbox(engine, "sms")[-1].body
    # The sender writes the outbox (the outside world) before the task marks its
    # notification sent, in a transaction of its own: wait for the marks too.
    wait_until(
        lambda: [n.state for n in notifications(engine)] == ["sent"] * 4,
        what="four notifications marked sent",
    )
    rows = notifications(engine)
    assert [(n.channel, n.state, n.attempts) for n in rows] == [
        ("sms", "sent", 1),
        ("email", "sent", 1),
        ("sms", "sent", 1),
        ("email", "sent", 1),
    ]
    assert all(n.sent_at is not None and n.task_id for n in rows)
    # A status the order cannot move to is refused with the form again.
    refused = post_form(client, detail, f"{detail}/status", {"status": "placed"})
    assert refused.status_code == 400 and "Not a valid choice" in refused.get_data(as_text=True)
    html = client.get(detail).get_data(as_text=True)
    assert "Order #" in html and html.count("badge state-success") == 4
    listing = client.get("/orders/notifications").get_data(as_text=True)
    assert 'id="count-sent">4<' in listing


def test_a_duplicate_delivery_does_not_send_twice(
    console_app: Flask, engine: sa.Engine, start_webapp_worker: Any
) -> None:
    from webapp.orders.tasks import send_sms

    set_limits(console_app, FAST)
    task_app = console_app.extensions["taskcore"]
    sms_id = make_orders(console_app, 1)[0]
    # A second send while the first holds the idempotency key is not queued at all.
    with console_app.app_context():
        first = notifications(engine, id=sms_id)[0].task_id
        assert send_sms.delay(sms_id).id == first
    start_webapp_worker("sms", "email")
    wait_until(lambda: notifications(engine, id=sms_id)[0].state == "sent", what="the send")
    # The broker delivers the same send again (at-least-once): raw messages, no key.
    task_app.publish([(send_sms.message((sms_id,)), 0.0), (send_sms.message((sms_id,)), 0.0)])
    wait_until(lambda: len(attempts_of(engine, sms_id)) == 3, what="the duplicates to run")
    assert [a.outcome for a in attempts_of(engine, sms_id)] == ["sent", "skipped", "skipped"]
    assert len(outbox(engine, "sms")) == 1
    assert notifications(engine, id=sms_id)[0].attempts == 1
    assert idempotency_key(sms_id) == f"orders:notification:{sms_id}"


def test_sends_keep_to_a_rate_limit_changed_at_run_time(
    console_app: Flask, engine: sa.Engine, start_webapp_worker: Any
) -> None:
    """The console's rate-limit page sets 5/s and 10/s; the outbox's send times keep to them."""
    set_limits(console_app, {"queue:sms": "5/s", "queue:email": "10/s"})
    ops = console_app.extensions["taskcore_ops"]
    assert ops.rate_limits()["queue:sms"] == "5/s"
    start_webapp_worker("sms", "email", options=("--concurrency", "8"))
    # A worker's first send of each kind opens its database connection, which can take
    # longer than a slot and bunch its send time with the next ones': warm up first.
    make_orders(console_app, 1)
    wait_until(lambda: len(outbox(engine)) == 2, timeout=30, what="the warm-up sends")
    warm = {m.id for m in outbox(engine)}
    make_orders(console_app, 12)
    wait_until(lambda: len(outbox(engine)) == 26, timeout=30, what="24 sends")
    sms = [m.sent_at.timestamp() for m in outbox(engine, "sms") if m.id not in warm]
    email = [m.sent_at.timestamp() for m in outbox(engine, "email") if m.id not in warm]
    # In any window of w seconds at most rate x w + 1 starts (GCRA, burst 1); the send
    # is written a few milliseconds after the start, hence the small slack on the window.
    assert most_in_any_window(sms, 0.95) <= 5 + 1
    assert most_in_any_window(email, 0.95) <= 10 + 1
    assert max(sms) - min(sms) >= 11 / 5 - 0.3  # really paced, not all at once
    assert max(email) - min(email) >= 11 / 10 - 0.3


def test_the_declared_ten_sms_a_minute(
    console_app: Flask, engine: sa.Engine, start_webapp_worker: Any
) -> None:
    """10/min is one SMS start every 6 s across every worker: two workers, two SMS."""
    set_limits(console_app, {"queue:email": "100/s"})
    assert console_app.extensions["taskcore_ops"].rate_limits()["queue:sms"] == "10/m"
    start_webapp_worker("sms", "email")
    start_webapp_worker("sms")
    make_orders(console_app, 2)
    wait_until(lambda: len(outbox(engine, "sms")) == 2, timeout=15, what="two SMS")
    first, second = (m.sent_at.timestamp() for m in outbox(engine, "sms"))
    assert second - first >= 6 - 0.5  # slots 6 s apart; a cold first send lags its slot


def test_retries_back_off_then_dead_letter_and_the_redrive_sends(
    console_app: Flask, engine: sa.Engine, start_webapp_worker: Any
) -> None:
    from webapp.orders.tasks import redrive_failed_notifications

    set_limits(console_app, FAST)
    task_app = console_app.extensions["taskcore"]
    ops = console_app.extensions["taskcore_ops"]
    operator = signed_in(console_app, "olivia")
    page = "/orders/notifications"
    post_form(operator, page, f"{page}/failing", {"channel": "sms", "on": "1"})
    start_webapp_worker("notifications", "sms", "email", env={"WEBAPP_NOTIFY_RETRY_BASE": "0.2"})
    sms_id, email_id = make_orders(console_app, 1)

    wait_until(lambda: notifications(engine, id=sms_id)[0].state == "dead", what="dead")
    sms = notifications(engine, id=sms_id)[0]
    assert sms.attempts == 4 and sms.next_retry_at is None
    assert sms.last_error == "SendError: the failing sms sender is switched on (a drill)"
    tries = attempts_of(engine, sms_id)
    assert [a.outcome for a in tries] == ["retrying", "retrying", "retrying", "dead"]
    asked = [(a.retry_at - a.at).total_seconds() for a in tries[:3]]
    assert asked == pytest.approx([0.2, 0.4, 0.8], abs=0.01)  # exponential, no jitter
    gaps = [(b.at - a.at).total_seconds() for a, b in pairwise(tries)]
    assert gaps[0] >= 0.15 and gaps[1] >= 0.35 and gaps[2] >= 0.75
    assert gaps[0] < gaps[1] < gaps[2]
    assert notifications(engine, id=email_id)[0].state == "sent"  # e-mail was not failing

    dead = wait_until(lambda: ops.dead_letters("sms"), what="the dead letter")
    assert len(dead) == 1
    assert dead[0]["id"] == sms.task_id
    assert dead[0]["reason"] == "max-retries-exceeded"
    assert dead[0]["attempts"] == 4
    assert "failing sms sender" in dead[0]["error"]
    html = operator.get(page).get_data(as_text=True)
    assert 'id="count-dead">1<' in html and "Send again" in html

    # Still failing: the re-drive queues it, it dies again (a fresh round of 4 tries).
    assert redrive_failed_notifications() == {"found": 1, "queued": 1, "not_queued": 0}
    assert ops.dead_letters("sms") == []  # the old dead letter was discarded
    wait_until(
        lambda: (
            notifications(engine, id=sms_id)[0].attempts == 8
            and notifications(engine, id=sms_id)[0].state == "dead"
        ),
        what="the second round",
    )
    # Fixed: the next re-drive sends it.
    post_form(operator, page, f"{page}/failing", {"channel": "sms", "on": "0"})
    assert redrive_failed_notifications() == {"found": 1, "queued": 1, "not_queued": 0}
    wait_until(lambda: notifications(engine, id=sms_id)[0].state == "sent", what="the re-drive")
    sms = notifications(engine, id=sms_id)[0]
    assert sms.attempts == 9 and sms.redrives == 2
    assert [m.notification_id for m in outbox(engine, "sms")] == [sms_id]
    assert ops.dead_letters("sms") == []
    assert task_app.status(sms.task_id).state.value == "SUCCESS"
    assert redrive_failed_notifications()["found"] == 0


def test_send_again_after_the_broker_came_back(
    database_url: str,
    task_env: dict[str, str],
    engine: sa.Engine,
    start_webapp_worker: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    down = {**task_env, "TASKCORE_BROKER_URL": "amqp://guest:guest@127.0.0.1:1/"}
    app = make_console_app(database_url, down, victor="viewer")
    try:
        post_form(signed_in(app, "victor"), "/orders", "/orders", GOOD_ORDER)
    finally:
        close_web_app(app)
    sms_id, email_id = (n.id for n in notifications(engine))
    app = make_console_app(database_url, task_env, olivia="operator")
    try:
        set_limits(app, FAST)
        start_webapp_worker("sms", "email")
        operator = signed_in(app, "olivia")
        response = post_form(
            operator, "/orders/1", f"/orders/notifications/{sms_id}/send", {"next": "order"}
        )
        assert response.status_code == 302 and response.headers["Location"] == "/orders/1"
        wait_until(lambda: notifications(engine, id=sms_id)[0].state == "sent", what="sms")
        assert notifications(engine, id=email_id)[0].state == "queued"  # not sent again yet
        from webapp.orders.tasks import redrive_failed_notifications

        assert redrive_failed_notifications()["queued"] == 1  # the periodic path
        wait_until(lambda: notifications(engine, id=email_id)[0].state == "sent", what="email")
        assert len(outbox(engine)) == 2
    finally:
        close_web_app(app)
