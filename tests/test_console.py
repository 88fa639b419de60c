"""The console's pages and actions through Flask's test client, against the real services."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from taskcore.history import write_events
from webapp.auth.models import AuditEntry
from webapp.db import db

from .broker_tools import Probe
from .webapp_helpers import (
    add_user,
    close_web_app,
    csrf_token_from,
    log_in,
    make_console_app,
    make_web_app,
)

PAGES = ["/", "/tasks", "/queues", "/workers", "/schedules", "/rate-limits", "/performance"]


@pytest.fixture
def console_app(database_url: str, task_env: dict[str, str]) -> Iterator[Flask]:
    """The web app on this test's vhost, Redis namespace and PostgreSQL schema."""
    app = make_console_app(database_url, task_env, vera="viewer", otto="operator")
    yield app
    close_web_app(app)


def signed_in(app: Flask, name: str) -> FlaskClient:
    client = app.test_client()
    assert log_in(client, name).status_code == 302
    return client


def post(client: FlaskClient, page: str, url: str, **form: Any) -> Any:
    """Submit a form the way a browser does: with the CSRF token of the page it is on."""
    token = csrf_token_from(client.get(page).get_data(as_text=True))
    return client.post(url, data={"csrf_token": token, **form})


def audited(app: Flask) -> list[tuple[str, str, str]]:
    """The audit log's operator actions (sign-ins are audited too; left out here)."""
    with app.app_context():
        rows = db.session.query(AuditEntry).order_by(AuditEntry.id).all()
        return [(r.actor, r.action, r.target) for r in rows if r.action not in {"login", "logout"}]


def test_every_page_needs_a_sign_in(console_app: Flask) -> None:
    client = console_app.test_client()
    for page in [*PAGES, "/tasks/abc", "/queues/default/dead"]:
        response = client.get(page)
        assert response.status_code == 302 and "/login" in response.headers["Location"], page


def test_a_viewer_sees_every_page(console_app: Flask) -> None:
    client = signed_in(console_app, "vera")
    for page in PAGES:
        response = client.get(page)
        assert response.status_code == 200, (page, response.get_data(as_text=True)[:500])
    overview = client.get("/").get_data(as_text=True)
    assert "workers alive" in overview and "Tasks finished per minute" in overview
    limits = client.get("/rate-limits").get_data(as_text=True)
    assert "10/m" in limits and "30/m" in limits  # the web app's sms and email queues
    # A viewer gets no operator buttons.
    assert "Purge" not in client.get("/queues").get_data(as_text=True)


def test_a_viewer_is_refused_every_action(console_app: Flask) -> None:
    client = signed_in(console_app, "vera")
    for url, form in [
        ("/queues/default/purge", {"confirm": "default"}),
        ("/queues/default/dead/replay", {"all": "1"}),
        ("/queues/default/dead/discard", {"ids": "x"}),
        ("/tasks/abc/cancel", {}),
        ("/schedules/nightly/pause", {}),
        ("/rate-limits", {"name": "webapp.tasks.add", "rate": "1/s"}),
    ]:
        assert post(client, "/queues", url, **form).status_code == 403, url
    assert audited(console_app) == []


def test_operator_purges_only_after_typing_the_queue_name(console_app: Flask, probe: Probe) -> None:
    task_app = console_app.extensions["taskcore"]
    task_app.tasks["webapp.tasks.add"].map([(1, 2), (3, 4)])
    client = signed_in(console_app, "otto")
    wrong = post(client, "/queues", "/queues/default/purge", confirm="defualt")
    assert wrong.status_code == 302 and probe.depth("default") == 2
    assert "Nothing was removed" in client.get("/queues").get_data(as_text=True)
    right = post(client, "/queues", "/queues/default/purge", confirm="default")
    assert right.status_code == 302 and probe.depth("default") == 0
    assert audited(console_app) == [("otto", "queue.purge", "default")]


def test_operator_replays_and_discards_dead_letters(
    console_app: Flask, start_command: Any, probe: Probe
) -> None:
    task_app = console_app.extensions["taskcore"]
    worker = start_command("--loglevel", "info", "worker", "-A", "webapp.tasks:app")
    worker.wait_for_output("consuming")
    first = task_app.send_task("webapp.tasks.no_such_task", [1])  # dead-lettered: unknown task
    second = task_app.send_task("webapp.tasks.no_such_task", [2])
    assert probe.wait_depth("default.dead", 2) == 2
    client = signed_in(console_app, "otto")
    page = client.get("/queues/default/dead").get_data(as_text=True)
    assert first.id in page and "unknown-task" in page
    detail = client.get(f"/queues/default/dead/{first.id}").get_data(as_text=True)
    assert "UnknownTask" in detail and "no task named" in detail
    discarded = post(client, "/queues/default/dead", "/queues/default/dead/discard", ids=first.id)
    assert discarded.status_code == 302
    assert probe.wait_depth("default.dead", 1) == 1
    replayed = post(client, "/queues/default/dead", "/queues/default/dead/replay", ids=second.id)
    assert replayed.status_code == 302  # back to the worker, which dead-letters it again
    # Only once, although the worker dead-letters it again while the replay runs.
    assert "Replayed 1 dead letter" in client.get("/queues/default/dead").get_data(as_text=True)
    assert [a[1] for a in audited(console_app)] == ["dead_letters.discard", "dead_letters.replay"]


def test_task_page_shows_the_result_and_operator_can_cancel_and_rerun(
    console_app: Flask, start_command: Any
) -> None:
    task_app = console_app.extensions["taskcore"]
    client = signed_in(console_app, "otto")
    waiting = task_app.tasks["webapp.tasks.add"].apply_async((1, 1), countdown=60)
    cancelled = post(client, f"/tasks/{waiting.id}", f"/tasks/{waiting.id}/cancel")
    assert cancelled.status_code == 302 and waiting.state == "REVOKED"
    worker = start_command("--loglevel", "info", "worker", "-A", "webapp.tasks:app")
    worker.wait_for_output("consuming")
    done = task_app.tasks["webapp.tasks.add"].delay(2, 3)
    assert done.get(timeout=10) == 5
    page = client.get(f"/tasks/{done.id}").get_data(as_text=True)
    assert "state-success" in page and "webapp.tasks.add" in page and "Run again" in page
    rerun = post(client, f"/tasks/{done.id}", f"/tasks/{done.id}/rerun")
    new_id = rerun.headers["Location"].rsplit("/", 1)[1]
    assert new_id != done.id and task_app.result(new_id).get(timeout=10) == 5
    unknown = client.get("/tasks/never-heard-of-it").get_data(as_text=True)
    assert "PENDING" in unknown and "No worker has reported on this task yet" in unknown
    assert [a[1] for a in audited(console_app)] == ["task.cancel", "task.rerun"]


def test_tasks_list_filters_and_searches_history(console_app: Flask) -> None:
    now = time.time()
    events = [
        {"task_id": f"ok-{i}", "state": "SUCCESS", "at": now - i, "task": "webapp.tasks.add",
         "queue": "default", "args": f'{{"args": [{i}, 1], "kwargs": {{}}}}', "runtime": 0.01,
         "queue_wait": 0.002}
        for i in range(5)
    ] + [
        {"task_id": "bad-1", "state": "FAILURE", "at": now, "task": "webapp.tasks.flaky",
         "queue": "default", "args": '{"args": ["needle"], "kwargs": {}}',
         "error": {"type": "builtins.ConnectionError", "message": "hung up", "traceback": ""}},
    ]  # fmt: skip
    write_events(console_app.extensions["taskcore_ops"].engine, events)
    client = signed_in(console_app, "vera")
    failures = client.get("/tasks?state=FAILURE").get_data(as_text=True)
    assert "bad-1" in failures and "ok-1" not in failures
    assert "bad-1" in client.get("/tasks?search=needle").get_data(as_text=True)
    everything = client.get("/tasks").get_data(as_text=True)
    assert all(f"ok-{i}" in everything for i in range(5))
    bogus = client.get("/tasks?state=NOPE&after=garbage").get_data(as_text=True)
    assert "Unknown state" in bogus and "first page" in bogus
    perf = client.get("/performance?window=1h").get_data(as_text=True)
    assert "webapp.tasks.add" in perf and "webapp.tasks.flaky" in perf
    overview = client.get("/").get_data(as_text=True)
    assert "hung up" in overview  # recent failures


def test_operator_changes_a_rate_limit_live(console_app: Flask) -> None:
    client = signed_in(console_app, "otto")
    ops = console_app.extensions["taskcore_ops"]
    post(client, "/rate-limits", "/rate-limits", name="webapp.tasks.add", rate="12/m")
    assert ops.rate_limits()["webapp.tasks.add"] == "12/m"
    bad = post(client, "/rate-limits", "/rate-limits", name="webapp.tasks.add", rate="fast")
    assert bad.status_code == 302
    assert "invalid rate limit" in client.get("/rate-limits").get_data(as_text=True)
    post(client, "/rate-limits", "/rate-limits", name="webapp.tasks.add", reset="1")
    assert "webapp.tasks.add" not in ops.rate_limits()
    assert [a[1] for a in audited(console_app)] == ["rate_limit.set", "rate_limit.reset"]


def test_a_page_says_which_service_is_down(database_url: str) -> None:
    app = make_web_app(database_url, TASKCORE_BROKER_URL="amqp://guest:guest@127.0.0.1:1/")
    try:
        add_user(app, "vera", "viewer")
        response = signed_in(app, "vera").get("/queues")
        assert response.status_code == 503
        assert "cannot reach the broker at amqp://guest@127.0.0.1:1/" in response.get_data(
            as_text=True
        )
    finally:
        close_web_app(app)


def test_a_wrong_method_gets_the_console_page_with_allow(console_app: Flask) -> None:
    client = signed_in(console_app, "otto")
    response = client.get("/queues/default/purge")  # a form's target, opened as a link
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]
    assert "Method not allowed" in response.get_data(as_text=True)  # the console page
