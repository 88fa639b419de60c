"""The console and the workloads' pages under hostile use, walked from the url_map.

* Every route (not ``/api``) is listed in ``ACCESS`` with who may use it, so a new route
  fails ``test_every_route_says_who_may_use_it`` until someone decides.
* Anonymous requests are sent to the sign-in page; form posts without a valid CSRF token
  are refused (400) even for an operator, and change nothing (PostgreSQL rows, Redis keys,
  queue depths, stored files are compared before and after); a viewer is refused (403)
  every operator action, with nothing changed.
* Markup in values people control (task arguments and names, dead letters, audit entries,
  quiz answers, order fields, report filters, error and flash messages) is shown escaped.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aio_pika
import pytest
import redis
import sqlalchemy as sa
from flask import Flask, url_for
from flask.testing import FlaskClient

from taskcore.history import create_schema, write_events
from webapp import create_app
from webapp.db import db
from webapp.orders import changes
from webapp.orders.models import Notification
from webapp.quizzes.models import Question, Quiz, Submission
from webapp.quizzes.seed import seed_quizzes

from .broker_tools import Probe, management
from .conftest import REDIS_URL
from .webapp_helpers import (
    PASSWORD,
    add_user,
    close_web_app,
    csrf_token_from,
    log_in,
    make_web_app,
    wait_until,
)

pytest_plugins = ["tests.webapp_fixtures"]

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
SVG = '"><svg/onload=alert(1)>'  # for fields that take no spaces (an e-mail address)
#: How each payload reads once escaped (what a page must show instead of markup).
ESCAPED = {
    SCRIPT: "&lt;script&gt;alert(1)&lt;/script&gt;",
    IMG: "&lt;img src=x onerror=alert(1)&gt;",
    SVG: "&lt;svg/onload=alert(1)&gt;",
}

PUBLIC, VIEWER, OPERATOR = "public", "viewer", "operator"
#: Every route outside /api and who may use it. ``viewer`` means anyone signed in: the
#: workloads are used by people with the viewer role (a learner, a clerk), and their
#: documents and submissions are visible to their owner only; operating the system
#: (sending, cancelling, purging, replaying, schedules, rate limits, drills) needs an
#: operator.
ACCESS: dict[str, str] = {
    "static": PUBLIC,
    "auth.login": PUBLIC,
    "auth.logout": PUBLIC,
    "metrics.healthz": PUBLIC,
    "metrics.readyz": PUBLIC,
    "metrics.scrape": PUBLIC,  # a bearer token when WEBAPP_METRICS_TOKEN is set
    "auth.audit_log": VIEWER,
    "console.overview": VIEWER,
    "console.tasks": VIEWER,
    "console.task_detail": VIEWER,
    "console.workflows": VIEWER,
    "console.workflow_detail": VIEWER,
    "console.queues": VIEWER,
    "console.dead_letters": VIEWER,
    "console.dead_letter": VIEWER,
    "console.workers": VIEWER,
    "console.schedules": VIEWER,
    "console.rate_limits": VIEWER,
    "console.performance": VIEWER,
    "console.send_task": OPERATOR,
    "console.cancel_task": OPERATOR,
    "console.rerun_task": OPERATOR,
    "console.purge_queue": OPERATOR,
    "console.replay_dead_letters": OPERATOR,
    "console.discard_dead_letters": OPERATOR,
    "console.schedule_action": OPERATOR,
    "console.set_rate_limit": OPERATOR,
    "quizzes.index": VIEWER,
    "quizzes.take": VIEWER,
    "quizzes.submit": VIEWER,
    "quizzes.result": VIEWER,
    "quizzes.submission_status": VIEWER,
    "quizzes.grade_now": VIEWER,
    "quizzes.statistics": VIEWER,
    "documents.index": VIEWER,
    "documents.upload": VIEWER,
    "documents.show": VIEWER,
    "documents.status": VIEWER,
    "documents.retry": VIEWER,
    "documents.download": VIEWER,
    "orders.index": VIEWER,
    "orders.create": VIEWER,
    "orders.detail": VIEWER,
    "orders.change_status": VIEWER,
    "orders.notifications": VIEWER,
    "orders.send_again": OPERATOR,
    "orders.switch_failing_sender": OPERATOR,
    "reports.index": VIEWER,
    "reports.run": VIEWER,
    "reports.export_detail": VIEWER,
    "reports.download_export": VIEWER,
    "reports.aggregates_page": VIEWER,
    "reports.search_page": VIEWER,
}

QUIZ = {
    "slug": "hostile",
    "title": "Hostile input",
    "pass_mark": 50,
    "questions": [
        {"kind": "short", "prompt": "First?", "accepted": ["one"]},
        {"kind": "short", "prompt": "Second?", "accepted": ["two"]},
    ],
}
ORDER = {
    "customer_name": "Ada Lovelace",
    "phone": "+44 20 7946 0958",
    "email": "ada@example.com",
    "items": "one notebook",
    "amount": "19.90",
}


# -- what the tests look at ------------------------------------------------------------------


def rules(app: Flask) -> list[Any]:
    """Every url_map rule outside the JSON API."""
    return [r for r in app.url_map.iter_rules() if not r.endpoint.startswith("api_v1.")]


def endpoints(app: Flask, method: str) -> set[str]:
    return {r.endpoint for r in rules(app) if method in (r.methods or ())}


class _InjectedTags(HTMLParser):
    """Start tags that only injected markup would produce on these pages: an event handler
    attribute, an inline script, the payload's image."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if (
            any(name.startswith("on") for name, _ in attrs)
            or (tag == "script" and not values.get("src"))
            or (tag == "img" and values.get("src") == "x")
        ):
            self.found.append(self.get_starttag_text() or tag)


def assert_escaped(response: Any, *shown: str, what: str = "") -> str:
    """The page holds no markup from the payloads, and shows each of ``shown`` escaped
    (so the value did reach the page: an absent value would prove nothing)."""
    html = response.get_data(as_text=True)
    where = what or response.request.path
    assert response.status_code < 500, (where, response.status_code)
    check_markup(html, *shown, where=where)
    return html


def check_markup(html: str, *shown: str, where: str = "") -> None:
    """``assert_escaped`` on an HTML text."""
    for raw in ("<script>alert", "<img src=x", "<svg/onload"):
        assert raw not in html, (where, raw, html)
    parser = _InjectedTags()
    parser.feed(html)
    assert parser.found == [], (where, parser.found)
    for payload in shown:
        assert ESCAPED[payload] in html, (where, payload, html)


def assert_readable_error(response: Any, status: int, *phrases: str) -> str:
    """An error answered with the console's own page (the layout), not a bare one."""
    html = response.get_data(as_text=True)
    assert response.status_code == status, (response.request.path, response.status_code, html)
    assert response.mimetype == "text/html" and '<main class="page">' in html, html
    for phrase in phrases:
        assert phrase in html, (phrase, html)
    return html


def assert_readable_unless_json(response: Any) -> None:
    """An error page is the console's own (a JSON endpoint's errors are JSON)."""
    if response.status_code >= 400 and response.mimetype != "application/json":
        assert_readable_error(response, response.status_code)


# -- the state a refused request must leave alone --------------------------------------------


@dataclass
class World:
    """An app with something behind every route, and the handles to see what changed."""

    app: Flask
    vhost: str
    amqp_url: str
    namespace: str
    storage: Path
    ids: dict[str, Any] = field(default_factory=dict)

    def snapshot(self) -> dict[str, Any]:
        """Every table's rows, every Redis key of this test, every queue's depth, every file."""
        return {
            "tables": self._tables(),
            "redis": self._redis(),
            "queues": self._queues(),
            "files": sorted(
                (str(p.relative_to(self.storage)), p.stat().st_size)
                for p in self.storage.rglob("*")
                if p.is_file()
            ),
        }

    def _tables(self) -> dict[str, str]:
        with self.app.app_context():
            names = db.session.scalars(
                sa.text(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = current_schema() ORDER BY table_name"
                )
            ).all()
            digest = {}
            for name in names:
                digest[name] = db.session.scalar(
                    sa.text(
                        f"SELECT count(*) || ':' || md5(coalesce(string_agg(t::text, '|' "
                        f"ORDER BY t::text), '')) FROM \"{name}\" t"
                    )
                )
            db.session.rollback()
            return digest

    def _redis(self) -> dict[bytes, bytes | None]:
        client = redis.Redis.from_url(REDIS_URL)
        try:
            return {key: client.dump(key) for key in client.scan_iter(f"{self.namespace}:*")}
        finally:
            client.close()

    def _queues(self) -> dict[str, int]:
        names = [q["name"] for q in management("GET", f"/queues/{quote(self.vhost, safe='')}")]

        async def depths() -> dict[str, int]:
            connection = await aio_pika.connect(self.amqp_url)
            try:
                channel = await connection.channel()
                found = {}
                for name in sorted(names):
                    queue = await channel.declare_queue(name, passive=True)
                    found[name] = queue.declaration_result.message_count or 0
                return found
            finally:
                await connection.close()

        return asyncio.run(depths())


def changed(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What differs between two snapshots: ``{"tables": {name: (before, after)}, ...}``."""
    found: dict[str, Any] = {}
    for part in before:
        if part == "files":
            if before[part] != after[part]:
                found[part] = (before[part], after[part])
            continue
        keys = before[part].keys() | after[part].keys()
        diff = {k: (before[part].get(k), after[part].get(k)) for k in keys}
        diff = {k: v for k, v in diff.items() if v[0] != v[1]}
        if diff:
            found[part] = diff
    return found


def _build_world(
    database_url: str, task_env: dict[str, str], vhost: str, amqp_url: str, tmp_path: Path
) -> World:
    storage = tmp_path / "storage"
    settings = {k: v for k, v in task_env.items() if k.startswith("TASKCORE_")}
    app = make_web_app(database_url, **settings, STORAGE_DIR=str(storage))
    create_schema(app.extensions["taskcore_ops"].engine)
    add_user(app, "vera", "viewer")
    add_user(app, "otto", "operator")
    world = World(app, vhost, amqp_url, task_env["TASKCORE_NAMESPACE"], storage)
    task_app = app.extensions["taskcore"]
    ids = world.ids
    ids["task_id"] = task_app.tasks["webapp.tasks.add"].delay(1, 2).id  # waits in `default`
    ids["done_id"] = "done-" + uuid.uuid4().hex[:8]  # a finished run with its arguments
    write_events(
        app.extensions["taskcore_ops"].engine,
        [{"task_id": ids["done_id"], "state": "SUCCESS", "at": time.time(),
          "task": "webapp.tasks.add", "queue": "default",
          "args": '{"args": [2, 3], "kwargs": {}}', "runtime": 0.01}],
    )  # fmt: skip
    probe = Probe(amqp_url)
    for dead in ("dead-replay", "dead-discard"):
        probe.publish_raw(
            "",
            "default.dead",
            json.dumps({"args": [1, 2], "kwargs": {}}).encode(),
            message_id=dead,
            message_type="webapp.tasks.add",
            headers={"x-taskcore-reason": "failed", "x-taskcore-attempts": 1},
        )
        ids[dead] = dead
    with app.app_context():
        seed_quizzes(db.session, [QUIZ])
        db.session.commit()
        quiz = db.session.scalar(sa.select(Quiz).where(Quiz.slug == "hostile"))
        ids["slug"] = quiz.slug
        ids["questions"] = [q.id for q in quiz.questions]
        otto = db.session.scalar(sa.text("SELECT id FROM users WHERE name = 'otto'"))
        pending = Submission(quiz_id=quiz.id, user_id=otto, token="pending", status="pending")
        db.session.add(pending)
        order, _ = changes.create_order(
            db.session,
            **{k: v for k, v in ORDER.items() if k != "amount"},
            amount=Decimal(ORDER["amount"]),
        )
        db.session.commit()
        ids["submission_id"] = pending.id
        ids["order_id"] = order.id
        # Not queued (no task id): "Send again" may send it.
        ids["notification_id"] = db.session.scalar(
            sa.select(Notification.id).where(Notification.order_id == order.id).limit(1)
        )
    client = signed_in(app, "otto")
    uploaded = client.post(
        "/documents",
        data={"csrf_token": token_of(client, "/documents"), "file": paper()},
        content_type="multipart/form-data",
    )
    assert uploaded.status_code == 302, uploaded.get_data(as_text=True)
    ids["document_id"] = uploaded.headers["Location"].rsplit("/", 1)[1]
    with app.app_context():  # failed: "Try again" may send it again
        db.session.execute(
            sa.text("UPDATE documents SET status = 'failed' WHERE id = :id"),
            {"id": ids["document_id"]},
        )
        db.session.commit()
    return world


@pytest.fixture
def world(
    database_url: str, task_env: dict[str, str], vhost: str, amqp_url: str, tmp_path: Path
) -> Iterator[World]:
    built = _build_world(database_url, task_env, vhost, amqp_url, tmp_path)
    yield built
    close_web_app(built.app)


def signed_in(app: Flask, name: str) -> FlaskClient:
    client = app.test_client()
    assert log_in(client, name).status_code == 302
    return client


#: A page that carries a CSRF token and asks only the database (not the broker).
CHEAP = "/audit"


def token_of(client: FlaskClient, page: str = "/login") -> str:
    return csrf_token_from(client.get(page).get_data(as_text=True))


PAPER_BYTES = b"1. What is 2 + 2?\n"


def paper() -> tuple[io.BytesIO, str]:
    return io.BytesIO(PAPER_BYTES), "paper.txt"


#: Sample values for a rule's variables, by the variable's name.
def url_values(world: World) -> dict[str, Any]:
    ids = world.ids
    return {
        "filename": "console.css",
        "task_id": ids["task_id"],
        "name": "default",
        "action": "pause",
        "slug": ids["slug"],
        "submission_id": ids["submission_id"],
        "document_id": ids["document_id"],
        "order_id": ids["order_id"],
        "notification_id": ids["notification_id"],
        "export_id": str(uuid.uuid4()),
        "search_id": uuid.uuid4().hex,
        "workflow_id": uuid.uuid4().hex,
    }


def url_of(world: World, rule: Any) -> str:
    values = url_values(world)
    missing = rule.arguments - values.keys()
    assert not missing, f"{rule.rule}: give a sample value for {sorted(missing)} in url_values"
    with world.app.test_request_context():
        return url_for(rule.endpoint, **{k: values[k] for k in rule.arguments})


def effective_posts(world: World, client: FlaskClient) -> dict[str, tuple[str, Callable[[], dict]]]:
    """For every POST route: a URL and a form that does something when an operator posts it
    with a valid token (fresh form data on each call: uploads are read once)."""
    ids = world.ids
    q1, q2 = ids["questions"]

    attempt: list[str] = []

    def quiz_form() -> dict[str, Any]:
        if not attempt:  # opening the quiz starts an attempt: once, not on every call
            html = client.get(f"/quizzes/{ids['slug']}").get_data(as_text=True)
            token = re.search(r'name="token" value="([^"]+)"', html)
            attempt.append(token.group(1) if token else "")
        return {"token": attempt[0], f"q{q1}": "one", f"q{q2}": "two"}

    return {
        "auth.login": ("/login", lambda: {"name": "otto", "password": PASSWORD}),
        "console.send_task": (
            "/tasks/send",
            lambda: {"task": "webapp.tasks.add", "args": "[1, 2]", "kwargs": "{}"},
        ),
        "console.cancel_task": (f"/tasks/{ids['task_id']}/cancel", dict),
        "console.rerun_task": (f"/tasks/{ids['done_id']}/rerun", dict),
        "console.purge_queue": ("/queues/default/purge", lambda: {"confirm": "default"}),
        "console.replay_dead_letters": (
            "/queues/default/dead/replay",
            lambda: {"ids": "dead-replay"},
        ),
        "console.discard_dead_letters": (
            "/queues/default/dead/discard",
            lambda: {"ids": "dead-discard"},
        ),
        "console.schedule_action": ("/schedules/ping-every-minute/pause", dict),
        "console.set_rate_limit": (
            "/rate-limits",
            lambda: {"name": "webapp.tasks.add", "rate": "5/m"},
        ),
        "quizzes.submit": (f"/quizzes/{ids['slug']}", quiz_form),
        "quizzes.grade_now": (f"/quizzes/submissions/{ids['submission_id']}/grade", dict),
        "documents.upload": ("/documents", lambda: {"file": paper()}),
        "documents.retry": (f"/documents/{ids['document_id']}/retry", dict),
        "orders.create": ("/orders", lambda: dict(ORDER)),
        "orders.change_status": (f"/orders/{ids['order_id']}/status", lambda: {"status": "paid"}),
        "orders.send_again": (f"/orders/notifications/{ids['notification_id']}/send", dict),
        "orders.switch_failing_sender": (
            "/orders/notifications/failing",
            lambda: {"channel": "sms", "on": "1"},
        ),
        "reports.run": ("/reports/run", lambda: {"action": "search", "text": "road"}),
        "auth.logout": ("/logout", dict),  # last: it signs the client out
    }


def post(client: FlaskClient, url: str, form: dict[str, Any], **kwargs: Any) -> Any:
    multipart = any(isinstance(v, tuple) for v in form.values())
    return client.post(
        url,
        data=form,
        content_type="multipart/form-data" if multipart else None,
        **kwargs,
    )


# -- the tests -------------------------------------------------------------------------------


def test_every_route_says_who_may_use_it(database_url: str) -> None:
    app = create_app({"TESTING": True, "DATABASE_URL": database_url})
    try:
        listed = {r.endpoint for r in rules(app)}
        assert listed - ACCESS.keys() == set(), "new routes: add them to ACCESS"
        assert ACCESS.keys() - listed == set(), "routes that are gone: remove them from ACCESS"
        assert {ACCESS[e] for e in endpoints(app, "POST")} == {PUBLIC, VIEWER, OPERATOR}
    finally:
        close_web_app(app)


def test_anonymous_requests_are_sent_to_sign_in_and_change_nothing(world: World) -> None:
    app = world.app
    client = app.test_client()
    for rule in rules(app):
        if "GET" not in (rule.methods or ()):
            continue
        url = url_of(world, rule)
        response = client.get(url)
        if ACCESS[rule.endpoint] == PUBLIC:
            assert response.status_code == 200, (url, response.status_code)
            continue
        assert response.status_code == 302, (url, response.status_code)
        location = response.headers["Location"]
        assert location.startswith("/login?next="), (url, location)
        # An API client (JSON) gets a 401 instead of a page.
        as_json = client.get(url, headers={"Accept": "application/json"})
        assert as_json.status_code == 401, (url, as_json.status_code)
        assert as_json.get_json()["error"]["message"]

    before = world.snapshot()
    token = token_of(client)  # an anonymous session's valid token
    for endpoint, (url, form) in effective_posts(world, client).items():
        if endpoint == "auth.login":
            continue
        without = post(client, url, form())
        if endpoint == "documents.upload":  # its CSRF check comes after sign-in
            assert without.status_code == 302, (url, without.status_code)
        else:
            assert_readable_error(without, 400, "The form could not be checked")
        with_token = post(client, url, {**form(), "csrf_token": token})
        assert with_token.status_code == 302, (url, with_token.status_code)
        assert with_token.headers["Location"].startswith("/login"), url
    assert changed(before, world.snapshot()) == {}


def test_posts_without_a_valid_csrf_token_are_refused_and_change_nothing(world: World) -> None:
    app = world.app
    client = signed_in(app, "otto")
    other = signed_in(app, "vera")
    foreign = token_of(other, CHEAP)  # valid, but for another session
    posts = effective_posts(world, client)
    assert set(posts) == endpoints(app, "POST"), "give every POST route a form here"
    for _, form in posts.values():
        form()  # whatever building a form needs (opening the quiz) happens before
    before = world.snapshot()
    for endpoint, (url, form) in posts.items():
        for token in (None, "", "forged", foreign, foreign[:-4] + "AAAA"):
            data = form()
            if token is not None:
                data["csrf_token"] = token
            assert_readable_error(post(client, url, data), 400, "The form could not be checked")
        if ACCESS[endpoint] != PUBLIC:
            # A bearer header skips the CSRF check, but then only the token counts, not the
            # session cookie: a garbage one is refused (401) without a sign-in.
            bearer = post(client, url, form(), headers={"Authorization": "Bearer garbage"})
            assert bearer.status_code == 401, (url, bearer.status_code)
        assert changed(before, world.snapshot()) == {}, f"{endpoint}: a refused post changed it"

        # The same form with the page's token does something: the refusals above were real.
        accepted = post(client, url, {**form(), "csrf_token": token_of(client, CHEAP)})
        assert accepted.status_code in (200, 302, 303), (url, accepted.status_code)
        after = world.snapshot()
        assert changed(before, after), f"{endpoint}: the accepted post changed nothing"
        before = after


def test_a_viewer_is_refused_every_operator_action(world: World) -> None:
    app = world.app
    client = signed_in(app, "vera")
    posts = effective_posts(world, client)
    operator_only = {e for e in endpoints(app, "POST") if ACCESS[e] == OPERATOR}
    assert operator_only <= posts.keys()
    before = world.snapshot()
    for endpoint in sorted(operator_only):
        url, form = posts[endpoint]
        refused = post(client, url, {**form(), "csrf_token": token_of(client, CHEAP)})
        assert_readable_error(refused, 403, "This needs the operator role")
        # Nor through the JSON API's shape of the same request.
        as_json = post(
            client,
            url,
            {**form(), "csrf_token": token_of(client, CHEAP)},
            headers={"Accept": "application/json"},
        )
        assert as_json.status_code == 403, url
    assert changed(before, world.snapshot()) == {}, "a refused operator action changed it"

    # What a viewer may use: every page, and the workloads' own actions.
    for rule in rules(app):
        if "GET" in (rule.methods or ()) and ACCESS[rule.endpoint] == VIEWER:
            url = url_of(world, rule)
            response = client.get(url)
            # 404: the sample ids (an operator's document, no such export) are not hers.
            assert response.status_code in (200, 404), (url, response.status_code)
            assert_readable_unless_json(response)
    for endpoint, (url, form) in posts.items():
        if ACCESS[endpoint] == VIEWER:
            response = post(client, url, {**form(), "csrf_token": token_of(client, CHEAP)})
            assert response.status_code in (200, 302, 303, 400, 404), (url, response.status_code)
            assert_readable_unless_json(response)


# -- markup in what people control is shown escaped ------------------------------------------


@pytest.fixture
def hostile_app(database_url: str, task_env: dict[str, str], tmp_path: Path) -> Iterator[Flask]:
    """The web app on this test's services (history tables too), with vera (viewer), otto
    (operator), a two-question quiz and document storage in tmp_path."""
    settings = {k: v for k, v in task_env.items() if k.startswith("TASKCORE_")}
    app = make_web_app(database_url, **settings, STORAGE_DIR=str(tmp_path / "storage"))
    create_schema(app.extensions["taskcore_ops"].engine)
    add_user(app, "vera", "viewer")
    add_user(app, "otto", "operator")
    with app.app_context():
        seed_quizzes(db.session, [QUIZ])
        db.session.commit()
    yield app
    close_web_app(app)


def test_the_markup_check_finds_markup_and_missing_values() -> None:
    page = '<p>{}</p><script src="/static/console.js"></script>'
    check_markup(page.format(ESCAPED[SCRIPT]), SCRIPT)
    for raw in (SCRIPT, IMG, SVG, "<IMG SRC=x OnError=alert(1)>", "<a href=# onclick=x>"):
        with pytest.raises(AssertionError):
            check_markup(page.format(raw))
    with pytest.raises(AssertionError):  # shown nowhere: escaping proves nothing then
        check_markup(page.format("nothing"), IMG)


def test_markup_in_what_people_control_is_shown_escaped(
    hostile_app: Flask, start_webapp_worker: Any, probe: Probe, tmp_path: Path
) -> None:
    """Tasks, dead letters, history, rate limits, the audit log, error and flash messages
    as an operator sees them; quiz answers, orders, report filters and documents as a
    viewer uses them. One worker runs the tasks, grades and processes documents."""
    storage = {"WEBAPP_STORAGE_DIR": str(tmp_path / "storage")}
    start_webapp_worker("default", "grading", "documents", env=storage)
    console_pages_escape_markup(hostile_app, probe)
    workload_pages_escape_markup(hostile_app)


def console_pages_escape_markup(app: Flask, probe: Probe) -> None:
    task_app = app.extensions["taskcore"]
    client = signed_in(app, "otto")
    # Arguments typed into the console's send form; an unknown task named with markup,
    # sent through the TaskApp, which the worker dead-letters.
    sent = post(
        client,
        "/tasks/send",
        {"task": "webapp.tasks.add", "args": json.dumps([SCRIPT, IMG]),
         "csrf_token": token_of(client, "/tasks")},
    )  # fmt: skip
    assert sent.status_code == 302, sent.get_data(as_text=True)
    task_id = sent.headers["Location"].rsplit("/", 1)[1]
    dead = task_app.send_task(SCRIPT, [IMG], {"note": SVG})
    assert task_app.result(task_id).get(timeout=15) == SCRIPT + IMG
    assert probe.wait_depth("default.dead", 1) == 1
    # History with markup in every column a page shows, the task id included.
    write_events(
        app.extensions["taskcore_ops"].engine,
        [{"task_id": IMG, "state": "FAILURE", "at": time.time(), "task": SCRIPT,
          "queue": "default", "worker": SVG, "args": json.dumps({"args": [IMG], "kwargs": {}}),
          "runtime": 0.5, "queue_wait": 0.1,
          "error": {"type": SCRIPT, "message": IMG, "traceback": SCRIPT}}],
    )  # fmt: skip

    pages = {
        f"/tasks/{task_id}": (SCRIPT, IMG),  # arguments and result
        "/queues/default/dead": (SCRIPT,),  # the task's name (its arguments are cut short)
        f"/queues/default/dead/{dead.id}": (SCRIPT, IMG, SVG),
        "/tasks": (SCRIPT, IMG, SVG),  # name, id, worker
        "/tasks?search=alert": (SCRIPT, IMG),
        f"/tasks/{quote(IMG, safe='')}": (SCRIPT, IMG, SVG),
        "/": (IMG,),  # recent failures
        "/performance?window=1h": (SCRIPT,),
        # Filters and bad values echoed back, in inputs and flash messages.
        f"/tasks?state={quote(SCRIPT)}&task={quote(IMG)}&since={quote(SVG)}": (SCRIPT, IMG, SVG),
        f"/audit?actor={quote(IMG)}&action={quote(SCRIPT)}": (SCRIPT, IMG),
    }
    for url, shown in pages.items():
        assert_escaped(client.get(url), *shown, what=url)

    # Operator actions on names with markup: audited, flashed and refused in escaped text.
    cancelled = post(
        client, f"/tasks/{quote(IMG, safe='')}/cancel", {"csrf_token": token_of(client, CHEAP)}
    )
    assert cancelled.status_code == 302
    limited = post(
        client,
        "/rate-limits",
        {"name": f"queue:{SVG}", "rate": "5/m", "csrf_token": token_of(client, CHEAP)},
    )
    assert limited.status_code == 302
    refused = post(
        client, "/rate-limits", {"name": SCRIPT, "rate": IMG, "csrf_token": token_of(client, CHEAP)}
    )
    assert_escaped(client.get(refused.headers["Location"]), IMG, what="bad rate flash")
    assert_escaped(client.get("/rate-limits"), SVG, what="/rate-limits")
    assert_escaped(client.get("/audit"), IMG, SVG, what="/audit")
    schedule = post(
        client, f"/schedules/{quote(IMG, safe='')}/pause", {"csrf_token": token_of(client, CHEAP)}
    )
    assert_readable_error(schedule, 404)
    assert_escaped(schedule, IMG, what="unknown schedule")
    # A name no queue can have (it was a 500: the AMQP client refuses it) and a queue the
    # broker does not have (it was a 503, "unavailable") are both not found.
    for url in (f"/queues/{quote(IMG, safe='')}/dead", f"/queues/{quote(IMG, safe='')}/dead/x"):
        assert_escaped(client.get(url), IMG, what=url)
        assert_readable_error(client.get(url), 404, "There is no queue named")
    assert_readable_error(client.get("/queues/nope/dead"), 404, "No queue named")
    purge = post(
        client,
        f"/queues/{quote(IMG, safe='')}/purge",
        {"confirm": IMG, "csrf_token": token_of(client, CHEAP)},
    )
    assert_readable_error(purge, 404, "There is no queue named")
    # A task whose arguments were never recorded cannot run again: a page says so.
    waiting = task_app.tasks["webapp.tasks.add"].apply_async((1, 1), countdown=60)
    rerun = post(client, f"/tasks/{waiting.id}/rerun", {"csrf_token": token_of(client, CHEAP)})
    assert_readable_error(rerun, 409, "cannot be rerun")
    # The sign-in page echoes ``next`` into its form.
    anonymous = app.test_client()
    assert_escaped(anonymous.get(f"/login?next={quote(IMG)}"), IMG, what="/login?next=")


def workload_pages_escape_markup(app: Flask) -> None:
    client = signed_in(app, "vera")

    # Quizzes: an answer left out shows the form again with the others in their inputs;
    # once graded, the result page shows what was answered.
    with app.app_context():
        q1, q2 = db.session.scalars(
            sa.select(Question.id)
            .join(Quiz)
            .where(Quiz.slug == "hostile")
            .order_by(Question.position)
        ).all()
    page = client.get("/quizzes/hostile").get_data(as_text=True)
    form = {
        "csrf_token": csrf_token_from(page),
        "token": re.search(r'name="token" value="([^"]+)"', page).group(1),
    }
    incomplete = client.post("/quizzes/hostile", data={**form, f"q{q1}": IMG, f"q{q2}": ""})
    assert incomplete.status_code == 400
    assert_escaped(incomplete, IMG, what="quiz form shown again")
    submitted = client.post("/quizzes/hostile", data={**form, f"q{q1}": IMG, f"q{q2}": SCRIPT})
    assert submitted.status_code == 303, submitted.get_data(as_text=True)
    result = submitted.headers["Location"]
    wait_until(
        lambda: client.get(f"{result}/status").get_json()["state"] == "graded",
        timeout=15,
        what="the submission graded",
    )
    assert_escaped(client.get(result), SCRIPT, IMG, what="quiz result")
    assert_readable_error(client.get(f"/quizzes/{quote(IMG, safe='')}"), 404, "no quiz called")
    assert_escaped(client.get(f"/quizzes/{quote(IMG, safe='')}"), IMG, what="unknown quiz")

    # Orders: the name, items and e-mail address on the list, the order and the
    # notifications; a form with an error shows the values again.
    order = {**ORDER, "customer_name": SCRIPT, "items": IMG, "email": f"x{SVG}@example.com"}
    placed = client.post("/orders", data={**order, "csrf_token": token_of(client, "/orders")})
    assert placed.status_code == 302, placed.get_data(as_text=True)
    assert_escaped(client.get(placed.headers["Location"]), SCRIPT, IMG, SVG, what="order")
    assert_escaped(client.get("/orders"), SCRIPT, IMG, SVG, what="/orders")
    assert_escaped(client.get("/orders/notifications"), what="/orders/notifications")
    wrong = client.post(
        "/orders", data={**order, "phone": IMG, "csrf_token": token_of(client, "/orders")}
    )
    assert wrong.status_code == 400
    assert_escaped(wrong, SCRIPT, IMG, SVG, what="order form shown again")

    # Reports: the filter described on the search, export and aggregates pages, and
    # echoed into the form (with its error messages).
    filters = {"agency": IMG, "category": SVG, "text": SCRIPT}
    for action in ("search", "export_csv"):
        started = client.post(
            "/reports/run",
            data={**filters, "action": action, "csrf_token": token_of(client, "/reports")},
        )
        assert started.status_code == 302, started.get_data(as_text=True)
        assert_escaped(client.get(started.headers["Location"]), SCRIPT, IMG, SVG, what=action)
    query = "&".join(f"{k}={quote(v)}" for k, v in filters.items())
    assert_escaped(client.get(f"/reports/aggregates?{query}"), SCRIPT, IMG, SVG)
    assert_escaped(client.get(f"/reports?{query}"), SCRIPT)
    assert_escaped(client.get("/reports"), SCRIPT, IMG, SVG, what="recent exports")
    bad = client.post(
        "/reports/run",
        data={**filters, "date_from": IMG, "action": SCRIPT, "csrf_token": token_of(client, CHEAP)},
    )
    assert bad.status_code == 400
    assert_escaped(bad, SCRIPT, IMG, what="reports form shown again")

    # Documents: the uploaded file's name, and the questions found in it once processed.
    paper_text = f"1. Is {SCRIPT} a question?\n2. And {IMG}?\n"
    uploaded = client.post(
        "/documents",
        data={
            "csrf_token": token_of(client, "/documents"),
            # A browser sends a file named '"><img ...>.md' with its quote as %22.
            "file": (io.BytesIO(paper_text.encode()), IMG.replace('"', "%22") + ".md"),
        },
        content_type="multipart/form-data",
    )
    assert uploaded.status_code == 302, uploaded.get_data(as_text=True)
    document = uploaded.headers["Location"]
    assert_escaped(client.get("/documents"), IMG, what="/documents")
    wait_until(
        lambda: client.get(f"{document}/status").get_json()["finished"],
        timeout=20,
        what="the document processed",
    )
    assert client.get(f"{document}/status").get_json()["status"] == "done"
    assert_escaped(client.get(document), SCRIPT, IMG, what="document")


def test_an_unexpected_error_gets_a_page_without_the_traceback(database_url: str) -> None:
    """Outside tests and debugging an exception is a 500: the console's page (it was
    werkzeug's bare one), or JSON for an API client; never the exception's text."""
    app = create_app({"SECRET_KEY": "s" * 32, "DATABASE_URL": database_url})

    def fail() -> str:
        raise ZeroDivisionError(SCRIPT)

    app.add_url_rule("/_fail", "fail", fail)
    try:
        client = app.test_client()
        html = assert_readable_error(client.get("/_fail"), 500, "Something went wrong")
        assert "ZeroDivisionError" not in html and "alert(1)" not in html
        as_json = client.get("/_fail", headers={"Accept": "application/json"})
        assert as_json.status_code == 500
        assert as_json.get_json()["error"]["message"].startswith("Something went wrong")
    finally:
        close_web_app(app)


#: Values put in every URL variable and query parameter of every page.
HOSTILE_VALUES = [IMG, "9" * 25, "x" * 3000, "a\x00b", "../日本語\\%25_"]
#: Values put in every field of every form.
HOSTILE_FIELDS = [IMG, "9" * 25, "x" * 3000, "[" * 5000, "[1e999, NaN]", "NaN", ""]
#: Every query parameter a page reads.
QUERY_PARAMETERS = [
    "page", "after", "since", "until", "state", "task", "queue", "worker", "search", "window",
    "actor", "action", "agency", "category", "date_from", "date_to", "text", "next", "kind",
]  # fmt: skip


def test_hostile_values_in_urls_and_forms_never_make_a_500(world: World) -> None:
    """Each URL variable of every page, every query parameter, each field of every form
    (posted by an operator, who may post them all) set to values a person could type or a
    script could send: an answer below 500 (a 500 raises here: tests propagate errors),
    readable when an error, with nothing of the markup unescaped."""
    app = world.app
    client = signed_in(app, "otto")
    pages = [r for r in rules(app) if "GET" in (r.methods or ()) and r.endpoint != "static"]
    for rule in pages:
        base = url_values(world)
        for variable in sorted(rule.arguments):
            for value in HOSTILE_VALUES:
                converter = rule._converters[variable]
                if type(converter).__name__ == "IntegerConverter" and not value.isdigit():
                    continue  # not routed: a 404 by the router itself
                with app.test_request_context():
                    url = url_for(rule.endpoint, **{**base, variable: value})
                response = client.get(url)
                assert response.status_code < 500, (url[:200], response.status_code)
                assert_readable_unless_json(response)
                if response.mimetype == "text/html":
                    check_markup(response.get_data(as_text=True), where=url[:200])
        for value in HOSTILE_VALUES:
            query = "&".join(f"{name}={quote(value)}" for name in QUERY_PARAMETERS)
            url = f"{url_of(world, rule)}?{query}"
            response = client.get(url)
            assert response.status_code < 500, (url[:200], response.status_code)
            assert_readable_unless_json(response)
            if response.mimetype == "text/html":
                check_markup(response.get_data(as_text=True), where=url[:200])

    token = token_of(client, CHEAP)
    posts = effective_posts(world, client)
    for endpoint, (url, form) in posts.items():
        if endpoint in ("auth.login", "auth.logout"):  # test_auth.py; each try costs a hash
            continue
        for name in form():
            for value in HOSTILE_FIELDS:
                data = {**form(), name: value, "csrf_token": token}
                if isinstance(form()[name], tuple):  # the file: its name is the field
                    data[name] = (io.BytesIO(PAPER_BYTES), value)
                response = post(client, url, data)
                where = f"{endpoint} {name}={value[:20]!r}"
                assert response.status_code < 500, (where, response.status_code)
                assert_readable_unless_json(response)
                check_markup(response.get_data(as_text=True), where=where)
    sent = post(
        client, "/tasks/send", {"task": "webapp.tasks.add", "args": "[" * 5000, "csrf_token": token}
    )
    assert "Not sent: the args are nested too deeply" in client.get(
        sent.headers["Location"]
    ).get_data(as_text=True)
