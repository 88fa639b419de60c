"""The JSON API /api/v1: tokens and roles, every endpoint, every kind of bad input, audit."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from taskcore.history import create_schema, write_events
from webapp.auth.models import AuditEntry
from webapp.db import db

from .broker_tools import Probe
from .conftest import REDIS_URL, WorkerProcess
from .webapp_helpers import (
    add_token,
    add_user,
    close_web_app,
    csrf_token_from,
    log_in,
    make_web_app,
)

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


class Api:
    """A test client that sends one bearer token (or none) to /api/v1."""

    def __init__(self, app: Flask, token: str | None) -> None:
        self.app = app
        self.client = app.test_client()
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return self.client.open(f"/api/v1{path}", method=method, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.call("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> Any:
        return self.call("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.call("DELETE", path, **kwargs)


def build_app(database_url: str, **config: Any) -> Flask:
    """The web app on this test's PostgreSQL schema, with the history tables."""
    app = make_web_app(database_url, **{"TASKCORE_REDIS_URL": REDIS_URL, **config})
    create_schema(app.extensions["taskcore_ops"].engine)
    return app


def close_app(app: Flask) -> None:
    close_web_app(app)
    app.extensions["taskcore_ops"].engine.dispose()


#: A broker nobody listens on: tests that need none must not queue anything anywhere.
NO_BROKER = "amqp://guest:guest@127.0.0.1:1/"


@pytest.fixture
def app(request: pytest.FixtureRequest, database_url: str, namespace: str) -> Iterator[Flask]:
    """The web app on this test's Redis namespace and PostgreSQL schema, and on a vhost of
    its own if the test asks for one (``amqp_url`` or ``probe``: creating one takes ~3 s);
    otherwise on a broker that cannot be reached."""
    wants_broker = {"amqp_url", "probe"} & set(request.fixturenames)
    broker = request.getfixturevalue("amqp_url") if wants_broker else NO_BROKER
    built = build_app(database_url, TASKCORE_BROKER_URL=broker, TASKCORE_NAMESPACE=namespace)
    yield built
    close_app(built)


@pytest.fixture
def operator(app: Flask) -> Api:
    return Api(app, add_token(app, "ops-bot", "operator"))


@pytest.fixture
def viewer(app: Flask) -> Api:
    return Api(app, add_token(app, "dashboard", "viewer"))


@pytest.fixture
def anonymous(app: Flask) -> Api:
    return Api(app, None)


def error_of(response: Any) -> dict[str, Any]:
    """The error object of a response in the API's one error shape."""
    body = response.get_json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


def error_text(response: Any) -> str:
    error = error_of(response)
    return error["message"] + str(error.get("fields", ""))


def audit_log(app: Flask) -> list[tuple[str, str, str, str]]:
    with app.app_context():
        rows = db.session.scalars(sa.select(AuditEntry).order_by(AuditEntry.id))
        return [(r.actor, r.action, r.target, r.detail) for r in rows]


def operations(app: Flask) -> list[tuple[str, str, bool]]:
    """(method, path with parameters filled in, needs operator) of every documented call."""
    document = app.test_client().get("/api/v1/openapi.json").get_json()
    found = []
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            if operation.get("security") == []:
                continue
            concrete = re.sub(r"\{[^}]+\}", "default", path).removeprefix("/api/v1")
            found.append((method.upper(), concrete, "403" in operation["responses"]))
    return found


# --- who may do what -------------------------------------------------------------


def test_anonymous_calls_get_a_401_with_the_error_shape(app: Flask, anonymous: Api) -> None:
    calls = operations(app)
    assert len(calls) >= 18
    for method, path, _ in calls:
        response = anonymous.call(method, path, json={})
        assert response.status_code == 401, (method, path)
        assert "Bearer" in error_of(response)["message"]
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_an_invalid_token_is_a_401(app: Flask) -> None:
    response = Api(app, "not-a-token").get("/queues")
    assert response.status_code == 401
    assert "invalid or was revoked" in error_of(response)["message"]


def test_health_and_the_document_need_no_token(anonymous: Api) -> None:
    assert anonymous.get("/health").get_json() == {"status": "ok"}
    assert anonymous.get("/openapi.json").status_code == 200


def test_a_viewer_reads_but_every_action_is_a_403(app: Flask, viewer: Api, probe: Probe) -> None:
    viewer.app.extensions["taskcore"].send_task("webapp.tasks.add", (1, 2))  # declares default
    reads = ["/queues", "/workers", "/schedules", "/rate-limits", "/history", "/performance"]
    reads += ["/tasks/some-id", "/queues/default/dead-letters"]
    for path in reads:
        response = viewer.get(path)
        assert response.status_code == 200, (path, response.get_json())
    actions = [(m, p) for m, p, operator_only in operations(app) if operator_only]
    assert ("POST", "/tasks") in actions and ("PUT", "/rate-limits/default") in actions
    for method, path in actions:
        response = viewer.call(method, path, json={})
        assert response.status_code == 403, (method, path)
        assert "operator role" in error_of(response)["message"]
    assert probe.depth("default") == 1  # nothing more was queued, nothing purged
    assert audit_log(app) == []


def test_a_signed_in_session_works_and_its_actions_need_the_csrf_token(app: Flask) -> None:
    add_user(app, "alice", "operator")
    client = app.test_client()
    log_in(client, "alice")
    assert client.get("/api/v1/rate-limits").status_code == 200
    refused = client.put("/api/v1/rate-limits/webapp.tasks.add", json={"rate": "5/m"})
    assert refused.status_code == 400 and "CSRF" in error_of(refused)["message"]
    token = csrf_token_from(client.get("/audit").get_data(as_text=True))
    done = client.put(
        "/api/v1/rate-limits/webapp.tasks.add", json={"rate": "5/m"}, headers={"X-CSRFToken": token}
    )
    assert done.status_code == 200 and done.get_json() == {
        "name": "webapp.tasks.add",
        "rate": "5/m",
    }
    assert audit_log(app)[-1] == ("alice", "rate_limit.set", "webapp.tasks.add", "5/m")


# --- submitting tasks (ported from the /api tests) -------------------------------


def test_post_a_task_queues_it(app: Flask, operator: Api, probe: Probe) -> None:
    response = operator.post("/tasks", json={"task": "webapp.tasks.add", "args": [2, 3]})
    assert response.status_code == 202
    body = response.get_json()
    assert body["task"] == "webapp.tasks.add" and body["queue"] == "default"
    (got,) = probe.get_all("default")
    assert got.message_id == body["id"]
    assert got.json() == {"args": [2, 3], "kwargs": {}}
    assert audit_log(app) == [
        ("token:ops-bot", "task.submit", body["id"], "webapp.tasks.add on default")
    ]


def test_submit_options_reach_the_message(operator: Api, probe: Probe) -> None:
    body = {"task": "webapp.tasks.add", "kwargs": {"a": 1, "b": 2}, "queue": "high"}
    body |= {"priority": 5, "idempotency_key": "order-7"}
    first = operator.post("/tasks", json=body)
    again = operator.post("/tasks", json=body)
    assert first.status_code == again.status_code == 202
    assert first.get_json()["id"] == again.get_json()["id"]  # the key held: not queued twice
    (got,) = probe.get_all("high")
    assert got.json() == {"args": [], "kwargs": {"a": 1, "b": 2}}
    nulls = operator.post("/tasks", json={"task": "webapp.tasks.add", "args": [None, None]})
    assert nulls.status_code == 202  # null is a JSON value like any other


@pytest.mark.parametrize(
    ("payload", "status", "says"),
    [
        ("not json at all", 400, "send a JSON object"),
        ('{"task": "webapp.tasks.add", ', 400, "not valid JSON"),
        ("", 400, "send a JSON object"),
        ([1, 2], 400, "send a JSON object"),
        ({"args": [1]}, 400, "invalid request body"),
        ({"task": "webapp.tasks.add", "args": "1,2"}, 400, "invalid request body"),
        ({"task": "webapp.tasks.add", "countdown": -1}, 400, "invalid request body"),
        ({"task": "webapp.tasks.add", "priority": 10}, 400, "priority"),
        ({"task": 7}, 400, "Not a valid string"),
        ({"task": "webapp.tasks.add", "args": [1, 2], "surprise": 1}, 400, "Unknown field"),
        ({"task": "os.system", "args": ["rm -rf /"]}, 404, "no task named 'os.system'"),
        ({"task": "webapp.tasks.add", "args": [1]}, 400, "missing a required argument"),
        ({"task": "webapp.tasks.add", "args": [1, 2], "queue": "a b"}, 400, "invalid queue name"),
        ({"task": "webapp.tasks.add", "args": [1, 2], "queue": "x.dead"}, 400, "invalid queue"),
    ],
)
def test_bad_requests_get_a_clear_error(
    operator: Api, payload: Any, status: int, says: str
) -> None:
    if isinstance(payload, str):
        response = operator.post("/tasks", data=payload, content_type="application/json")
    else:
        response = operator.post("/tasks", json=payload)
    assert response.status_code == status
    assert says in error_text(response)


def test_taskcore_s_own_queues_are_not_for_tasks(app: Flask, operator: Api) -> None:
    namespace = app.extensions["taskcore"].settings.namespace
    body = {"task": "webapp.tasks.add", "args": [1, 2], "queue": f"{namespace}.delay.03"}
    response = operator.post("/tasks", json=body)
    assert response.status_code == 400 and "taskcore's own" in error_of(response)["message"]


def test_a_task_not_marked_for_the_api_is_a_404_like_an_unknown_one(
    app: Flask, operator: Api
) -> None:
    task_app = app.extensions["taskcore"]

    def hidden() -> None: ...

    task_app.task(name="webapp.tasks.hidden")(hidden)
    try:
        refused = operator.post("/tasks", json={"task": "webapp.tasks.hidden"})
        unknown = operator.post("/tasks", json={"task": "webapp.tasks.nothing"})
    finally:
        task_app.tasks.pop("webapp.tasks.hidden")
    assert refused.status_code == unknown.status_code == 404
    assert error_of(refused)["message"] == error_of(unknown)["message"].replace("nothing", "hidden")


def test_a_body_over_the_limit_is_a_413(operator: Api) -> None:
    big = {"task": "webapp.tasks.add", "args": ["x" * (1024 * 1024), 1]}
    response = operator.post("/tasks", json=big)
    assert response.status_code == 413
    assert "larger than the limit of 1048576 bytes" in error_of(response)["message"]


def test_broker_down_is_a_503(operator: Api) -> None:
    response = operator.post("/tasks", json={"task": "webapp.tasks.add", "args": [1, 2]})
    assert response.status_code == 503
    assert "amqp://guest@127.0.0.1:1/" in error_of(response)["message"]
    assert "guest:guest" not in response.get_data(as_text=True)
    for path in ("/queues", "/queues/default/dead-letters"):
        assert operator.get(path).status_code == 503
    assert operator.post("/queues/default/purge").status_code == 503


def test_redis_down_is_a_503(database_url: str) -> None:
    app = build_app(
        database_url, TASKCORE_BROKER_URL=NO_BROKER, TASKCORE_REDIS_URL="redis://127.0.0.1:1/0"
    )
    try:
        operator = Api(app, add_token(app, "ops", "operator"))
        for method, path in [
            ("GET", "/tasks/abc"),
            ("GET", "/schedules"),
            ("GET", "/rate-limits"),
            ("GET", "/workers"),
            ("POST", "/tasks/abc/cancel"),
        ]:
            response = operator.call(method, path)
            assert response.status_code == 503, (path, response.get_json())
            assert "Redis" in error_of(response)["message"]
    finally:
        close_app(app)


def test_history_database_down_is_a_503(app: Flask, viewer: Api) -> None:
    from taskcore.history import make_engine

    ops = app.extensions["taskcore_ops"]
    working, ops.engine = ops.engine, make_engine("postgresql://nobody:secret@127.0.0.1:1/x")
    try:
        for path in ("/history", "/performance"):
            response = viewer.get(path)
            assert response.status_code == 503, path
            assert error_of(response)["message"].startswith("the history database is unavailable")
            assert "secret" not in response.get_data(as_text=True)
        assert viewer.get("/tasks/abc").get_json()["state"] == "PENDING"  # Redis still answers
    finally:
        ops.engine.dispose()
        ops.engine = working


# --- status, cancel and history ---------------------------------------------------


def test_status_and_cancel(app: Flask, operator: Api, amqp_url: str) -> None:
    sent = operator.post("/tasks", json={"task": "webapp.tasks.add", "args": [1, 2]}).get_json()
    status = operator.get(f"/tasks/{sent['id']}")
    assert status.status_code == 200 and status.get_json()["state"] == "PENDING"
    revoked = operator.post(f"/tasks/{sent['id']}/cancel", json={"terminate": False})
    assert revoked.status_code == 202 and revoked.get_json()["state"] == "REVOKED"
    bad = operator.post(f"/tasks/{sent['id']}/cancel", json={"terminate": "perhaps"})
    assert bad.status_code == 400
    after = operator.get(f"/tasks/{sent['id']}").get_json()
    assert after["state"] == "REVOKED" and after["source"] == "redis"
    assert ISO_UTC.match(after["times"]["REVOKED"]) and ISO_UTC.match(after["updated_at"])
    assert audit_log(app)[-1] == ("token:ops-bot", "task.cancel", sent["id"], "revoke")


def test_status_with_results_off_is_a_409_that_says_why(
    database_url: str, amqp_url: str, namespace: str
) -> None:
    app = build_app(
        database_url,
        TASKCORE_BROKER_URL=amqp_url,
        TASKCORE_NAMESPACE=namespace,
        TASKCORE_STORE_RESULTS=False,
    )
    try:
        operator = Api(app, add_token(app, "ops", "operator"))
        sent = operator.post("/tasks", json={"task": "webapp.tasks.add", "args": [1, 2]})
        task_id = sent.get_json()["id"]
        status = operator.get(f"/tasks/{task_id}")
        assert status.status_code == 409
        assert "TASKCORE_STORE_RESULTS is off" in error_of(status)["message"]
        revoked = operator.post(f"/tasks/{task_id}/cancel")
        assert revoked.status_code == 202 and revoked.get_json() == {"id": task_id, "revoked": True}
        keyed = {"task": "webapp.tasks.add", "args": [1, 2], "idempotency_key": "k"}
        assert operator.post("/tasks", json=keyed).status_code == 409
    finally:
        close_app(app)


def _write_history(app: Flask, now: float) -> None:
    write_events(
        app.extensions["taskcore_ops"].engine,
        [
            {"task_id": "old", "state": "SUCCESS", "at": now - 10 * 86400, "task": "t.a"},
            {"task_id": "new", "state": "FAILURE", "at": now - 60, "task": "t.b"},
            {"task_id": "ok", "state": "SUCCESS", "at": now - 30, "task": "t.a"},
        ],
    )


def test_history_endpoint_filters_runs(app: Flask, viewer: Api) -> None:
    now = time.time()
    _write_history(app, now)
    week_ago = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 7 * 86400))
    found = viewer.get(f"/history?since={week_ago}").get_json()["runs"]
    assert [r["id"] for r in found] == ["ok", "new"]
    assert [r["id"] for r in viewer.get("/history?since=7d").get_json()["runs"]] == ["ok", "new"]
    failed = viewer.get("/history?state=FAILURE").get_json()["runs"]
    assert [r["id"] for r in failed] == ["new"]
    assert [r["id"] for r in viewer.get("/history?task=t.a").get_json()["runs"]] == ["ok", "old"]
    assert viewer.get("/history?state=NOPE").status_code == 400
    assert viewer.get("/history?limit=0").status_code == 400
    for bad in ("since=yesterday", "limit=x", "after=!!", "search=%00"):
        response = viewer.get(f"/history?{bad}")
        assert response.status_code == 400, bad
        error_of(response)


def test_history_pages_with_a_cursor(app: Flask, viewer: Api) -> None:
    now = time.time()
    write_events(
        app.extensions["taskcore_ops"].engine,
        [{"task_id": f"t{i}", "state": "SUCCESS", "at": now - i, "task": "t.a"} for i in range(5)],
    )
    seen, after = [], ""
    for _ in range(5):
        page = viewer.get(f"/history?limit=2{after}").get_json()
        seen += [r["id"] for r in page["runs"]]
        if page["next"] is None:
            break
        after = f"&after={page['next']}"
    assert seen == ["t0", "t1", "t2", "t3", "t4"]


def test_status_from_history_once_redis_forgot_the_task(app: Flask, viewer: Api) -> None:
    now = time.time()
    summary = '{"args": [2, 3], "kwargs": {"round": true}}'
    common = {"task_id": "gone", "task": "webapp.tasks.add", "queue": "default", "worker": "w1"}
    write_events(
        app.extensions["taskcore_ops"].engine,
        [
            {**common, "state": "STARTED", "at": now - 2, "args": summary, "attempts": 1},
            {**common, "state": "SUCCESS", "at": now - 1, "result": [5, "five"], "runtime": 0.5},
        ],
    )
    status = viewer.get("/tasks/gone").get_json()
    assert status["source"] == "history" and status["state"] == "SUCCESS"
    assert status["args"] == [2, 3] and status["kwargs"] == {"round": True}
    assert status["result"] == [5, "five"] and status["runtime"] == 0.5
    assert [e["state"] for e in status["events"]] == ["STARTED", "SUCCESS"]
    for moment in (status["started_at"], status["finished_at"], status["events"][0]["at"]):
        assert ISO_UTC.match(moment), moment
    row = viewer.get("/history?task=webapp.tasks.add").get_json()["runs"][0]
    assert row["result"] == [5, "five"] and row["args"] == [2, 3]
    assert ISO_UTC.match(row["updated_at"])
    unknown = viewer.get("/tasks/never-sent").get_json()
    assert unknown == {"id": "never-sent", "state": "PENDING", "source": "none"}


def test_performance(app: Flask, viewer: Api) -> None:
    now = time.time()
    engine = app.extensions["taskcore_ops"].engine
    write_events(
        engine,
        [
            {"task_id": f"p{i}", "state": "SUCCESS", "at": now - 5, "task": "t.a", "runtime": i}
            for i in range(1, 5)
        ]
        + [{"task_id": "p9", "state": "FAILURE", "at": now - 5, "task": "t.a", "runtime": 9}],
    )
    report = viewer.get("/performance?since=1h").get_json()
    assert ISO_UTC.match(report["since"])
    (row,) = report["tasks"]
    assert row["task"] == "t.a" and row["count"] == 5 and row["failed"] == 1
    assert viewer.get("/performance?task=t.zzz").get_json()["tasks"] == []
    assert viewer.get("/performance?since=soon").status_code == 400


# --- queues, dead letters, a real worker -----------------------------------------


@pytest.fixture
def webapp_worker(
    task_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    """Start ``taskcore worker -A webapp.tasks:app`` on this test's vhost."""
    started: list[WorkerProcess] = []

    def start(*options: str) -> WorkerProcess:
        args = ["--loglevel", "info", "worker", "-A", "webapp.tasks:app", *options]
        worker = WorkerProcess(args, task_env, tmp_path / f"worker-{len(started)}.log")
        started.append(worker)
        worker.wait_for_output("consuming")
        return worker

    yield start
    for worker in started:
        worker.stop()


def wait_for_state(api: Api, task_id: str, states: set[str], timeout: float = 15) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = api.get(f"/tasks/{task_id}").get_json()
        if status["state"] in states or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def test_operate_a_live_worker(
    app: Flask, operator: Api, viewer: Api, webapp_worker: Any, probe: Probe
) -> None:
    webapp_worker("-Q", "default", "--concurrency", "2")
    ok = operator.post("/tasks", json={"task": "webapp.tasks.add", "args": [2, 3]}).get_json()
    bad = operator.post("/tasks", json={"task": "webapp.tasks.add", "args": ["a", 1]}).get_json()
    done = wait_for_state(viewer, ok["id"], {"SUCCESS"})
    assert done["result"] == 5 and done["worker"] and done["args"] == [2, 3]
    assert ISO_UTC.match(done["finished_at"])
    assert wait_for_state(viewer, bad["id"], {"FAILURE", "DEAD"})["state"] in {"FAILURE", "DEAD"}
    probe.wait_depth("default.dead", 1)

    (worker,) = viewer.get("/workers").get_json()["workers"]
    assert worker["alive"] and worker["queues"] == ["default"] and worker["concurrency"] == 2
    assert ISO_UTC.match(worker["last_heartbeat"]) and ISO_UTC.match(worker["started"])
    reading = viewer.get("/queues").get_json()
    assert ISO_UTC.match(reading["at"])
    default = next(q for q in reading["queues"] if q["queue"] == "default")
    assert default["dead"] == 1 and default["consumers"] == 1

    (letter,) = viewer.get("/queues/default/dead-letters").get_json()["dead_letters"]
    assert letter["id"] == bad["id"] and letter["args"] == ["a", 1] and letter["reason"] == "failed"
    assert "TypeError" in letter["error"] and ISO_UTC.match(letter["dead_at"])

    replayed = operator.post("/queues/default/dead-letters/replay", json={"ids": [bad["id"]]})
    assert replayed.get_json() == {"queue": "default", "replayed": 1, "left": 0}
    probe.wait_depth("default.dead", 1)  # it fails again, of course
    discarded = operator.post("/queues/default/dead-letters/discard", json={"ids": [bad["id"]]})
    assert discarded.get_json() == {"queue": "default", "discarded": 1}
    assert viewer.get("/queues/default/dead-letters").get_json()["dead_letters"] == []

    actions = [(action, target) for _, action, target, _ in audit_log(app)]
    assert actions[-2:] == [("dead_letters.replay", "default"), ("dead_letters.discard", "default")]


def test_purge_and_queue_errors(app: Flask, operator: Api, probe: Probe) -> None:
    for _ in range(3):
        operator.post("/tasks", json={"task": "webapp.tasks.add", "args": [1, 1]})
    assert operator.post("/queues/default/purge").get_json() == {"queue": "default", "purged": 3}
    assert probe.depth("default") == 0
    assert audit_log(app)[-1][1:] == ("queue.purge", "default", "3 messages")
    assert operator.post("/queues/nope/purge").status_code == 404
    assert operator.get("/queues/nope/dead-letters").status_code == 404
    namespace = app.extensions["taskcore"].settings.namespace
    internal = operator.post(f"/queues/{namespace}.delay.00/purge")
    assert internal.status_code == 404 and "taskcore's own" in error_of(internal)["message"]
    assert operator.post("/queues/default.dead/purge").status_code == 400
    for body, says in [
        ({}, "ids, task or all"),
        ({"all": True, "ids": ["x"]}, "either all"),
        ({"ids": []}, "Length must be between 1 and 1000"),
        ({"ids": "x"}, "Not a valid list"),
    ]:
        response = operator.post("/queues/default/dead-letters/replay", json=body)
        assert response.status_code == 400 and says in error_text(response), body
    assert operator.post("/queues/default/dead-letters/discard", json={}).status_code == 400
    everything = operator.post("/queues/default/dead-letters/replay", json={"all": True})
    assert everything.get_json() == {"queue": "default", "replayed": 0, "left": 0}


# --- schedules and rate limits -----------------------------------------------------


def test_schedules(app: Flask, operator: Api, viewer: Api, probe: Probe) -> None:
    task_app = app.extensions["taskcore"]
    task_app.schedule("tick", "webapp.tasks.ping", every=3600)
    task_app.schedule("nightly", "webapp.tasks.ping", cron="0 2 * * *", tz="Asia/Manila")
    try:

        def tick() -> dict[str, Any]:
            found = viewer.get("/schedules").get_json()["schedules"]
            return next(s for s in found if s["name"] == "tick")

        assert tick()["task"] == "webapp.tasks.ping" and not tick()["paused"]
        assert ISO_UTC.match(tick()["next_fire"]) and tick()["last_fire"] is None
        found = viewer.get("/schedules").get_json()["schedules"]
        nightly = next(s for s in found if s["name"] == "nightly")
        assert nightly["tz"] == "Asia/Manila" and nightly["next_fire"].endswith("T18:00:00.000Z")
        assert nightly["next_fire_local"].endswith("02:00:00+08:00")
        paused = operator.post("/schedules/tick/pause")
        assert paused.get_json() == {"name": "tick", "paused": True}
        assert tick()["paused"] is True
        assert operator.post("/schedules/tick/resume").get_json()["paused"] is False
        run = operator.post("/schedules/tick/run")
        assert run.status_code == 202 and run.get_json()["task"] == "webapp.tasks.ping"
        assert probe.depth("default") == 1
        assert operator.post("/schedules/nope/pause").status_code == 404
        assert operator.post("/schedules/nope/run").status_code == 404
    finally:
        task_app.schedules.pop("tick")
        task_app.schedules.pop("nightly")
    actions = [row[1] for row in audit_log(app)]
    assert actions == ["schedule.pause", "schedule.resume", "schedule.run"]


def test_rate_limits(app: Flask, operator: Api, viewer: Api) -> None:
    declared = {"queue:sms": "10/m", "queue:email": "30/m"}  # webapp/taskapp.py QUEUES
    assert viewer.get("/rate-limits").get_json() == {"limits": declared}
    changed = operator.put("/rate-limits/webapp.tasks.add", json={"rate": "10/m"})
    assert changed.get_json() == {"name": "webapp.tasks.add", "rate": "10/m"}
    assert viewer.get("/rate-limits").get_json() == {
        "limits": {**declared, "webapp.tasks.add": "10/m"}
    }
    bad = operator.put("/rate-limits/webapp.tasks.add", json={"rate": "fast"})
    assert bad.status_code == 400 and "invalid rate limit" in error_of(bad)["fields"]["rate"][0]
    assert operator.put("/rate-limits/webapp.tasks.add", json={}).status_code == 400
    reset = operator.delete("/rate-limits/webapp.tasks.add")
    assert reset.get_json() == {"name": "webapp.tasks.add", "rate": None}
    assert [row[1:] for row in audit_log(app)] == [
        ("rate_limit.set", "webapp.tasks.add", "10/m"),
        ("rate_limit.reset", "webapp.tasks.add", ""),
    ]


# --- the document ------------------------------------------------------------------


def test_the_openapi_document(anonymous: Api) -> None:
    document = anonymous.get("/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
    }
    assert document["security"] == [{"bearer": []}]
    assert document["paths"]["/api/v1/health"]["get"]["security"] == []
    submit = document["paths"]["/api/v1/tasks"]["post"]
    assert submit["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/SubmitTask"
    }
    assert set(submit["responses"]) == {"202", "400", "401", "403", "404", "409", "413", "503"}
    assert "/api/tasks" not in str(document["paths"])  # the old routes are gone
    assert anonymous.client.post("/api/tasks", json={}).status_code == 404


def test_workflows_as_one_unit(app: Flask, viewer: Api) -> None:
    from taskcore.workflows import workflow_event

    now = time.time()
    steps = [{"id": f"s{i}", "task": "t.step", "queue": "default"} for i in range(3)]
    write_events(
        app.extensions["taskcore_ops"].engine,
        [
            {**workflow_event("wf-chain", "chain", steps), "at": now - 10},
            {**workflow_event("wf-group", "group", steps[:1]), "at": now - 20},
            {"task_id": "s0", "state": "SUCCESS", "at": now - 5, "workflow_id": "wf-chain"},
            {
                "task_id": "s1",
                "state": "DEAD",
                "at": now - 4,
                "workflow_id": "wf-chain",
                "error": {"type": "taskcore.Reject", "message": "no"},
            },
        ],
    )
    listed = viewer.get("/workflows").get_json()
    assert [w["workflow_id"] for w in listed["workflows"]] == ["wf-chain", "wf-group"]
    assert listed["workflows"][0]["tasks"] == ["t.step"] * 3  # a chain's steps, in order
    assert listed["workflows"][1]["tasks"] == ["t.step"] and listed["next"] is None
    assert [w["kind"] for w in viewer.get("/workflows?kind=group").get_json()["workflows"]] == [
        "group"
    ]
    found = viewer.get("/workflows/wf-chain").get_json()
    assert (found["kind"], found["state"], found["done"], found["total"]) == (
        "chain",
        "FAILURE",
        2,
        3,
    )
    assert [m["state"] for m in found["members"]] == ["SUCCESS", "DEAD", "PENDING"]
    assert found["members"][1]["error"] == {"type": "taskcore.Reject", "message": "no"}
    assert found["callback"] is None
    assert viewer.get("/tasks/s0").get_json()["workflow_id"] == "wf-chain"
    missing = viewer.get("/workflows/nope")
    assert missing.status_code == 404 and "recorder" in error_of(missing)["message"]
    for bad in ("kind=pipeline", "limit=0", "after=!!"):
        assert viewer.get(f"/workflows?{bad}").status_code == 400, bad
