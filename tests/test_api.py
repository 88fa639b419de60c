"""The JSON API for sending tasks: good requests are queued, bad ones get a clear 4xx/503."""

from __future__ import annotations

import pytest

from webapp import create_app

from .broker_tools import Probe


@pytest.fixture
def client(amqp_url: str):
    app = create_app({"TESTING": True, "TASKCORE_BROKER_URL": amqp_url})
    yield app.test_client()
    app.extensions["taskcore"].close()


def test_post_a_task_queues_it(client, probe: Probe) -> None:
    response = client.post("/api/tasks", json={"task": "webapp.tasks.add", "args": [2, 3]})
    assert response.status_code == 202
    body = response.get_json()
    assert body["task"] == "webapp.tasks.add" and body["queue"] == "default"
    (got,) = probe.get_all("default")
    assert got.message_id == body["id"]
    assert got.json() == {"args": [2, 3], "kwargs": {}}


@pytest.mark.parametrize(
    ("payload", "status", "says"),
    [
        ("not json at all", 400, "send a JSON object"),
        ([1, 2], 400, "send a JSON object"),
        ({"args": [1]}, 400, "invalid request body"),
        ({"task": "webapp.tasks.add", "args": "1,2"}, 400, "invalid request body"),
        ({"task": "webapp.tasks.add", "countdown": -1}, 400, "invalid request body"),
        ({"task": "os.system", "args": ["rm -rf /"]}, 404, "no task named 'os.system'"),
        ({"task": "webapp.tasks.add", "args": [1]}, 400, "missing a required argument"),
        ({"task": "webapp.tasks.add", "args": [1, 2], "queue": "a b"}, 400, "invalid queue name"),
    ],
)
def test_bad_requests_get_a_clear_error(client, probe: Probe, payload, status, says) -> None:
    if isinstance(payload, str):
        response = client.post("/api/tasks", data=payload, content_type="application/json")
    else:
        response = client.post("/api/tasks", json=payload)
    assert response.status_code == status
    assert says in response.get_json()["error"] + str(response.get_json().get("fields", ""))


def test_broker_down_is_a_503() -> None:
    app = create_app({"TESTING": True, "TASKCORE_BROKER_URL": "amqp://guest:guest@127.0.0.1:1/"})
    try:
        response = app.test_client().post(
            "/api/tasks", json={"task": "webapp.tasks.add", "args": [1, 2]}
        )
        assert response.status_code == 503
        assert "amqp://guest@127.0.0.1:1/" in response.get_json()["error"]
    finally:
        app.extensions["taskcore"].close()


@pytest.fixture
def history_client(amqp_url: str, database_url: str, namespace: str):
    from taskcore.history import create_schema

    app = create_app(
        {
            "TESTING": True,
            "TASKCORE_BROKER_URL": amqp_url,
            "TASKCORE_NAMESPACE": namespace,
            "DATABASE_URL": database_url,
        }
    )
    create_schema(app.extensions["taskcore_history"])
    yield app
    app.extensions["taskcore"].close()
    app.extensions["taskcore_history"].dispose()


def test_status_and_revoke_endpoints(history_client) -> None:
    client = history_client.test_client()
    sent = client.post("/api/tasks", json={"task": "webapp.tasks.add", "args": [1, 2]}).get_json()
    status = client.get(f"/api/tasks/{sent['id']}")
    assert status.status_code == 200 and status.get_json()["state"] == "PENDING"
    revoked = client.post(f"/api/tasks/{sent['id']}/revoke", json={"terminate": False})
    assert revoked.status_code == 202 and revoked.get_json()["state"] == "REVOKED"
    bad = client.post(f"/api/tasks/{sent['id']}/revoke", json={"terminate": "perhaps"})
    assert bad.status_code == 400


def test_status_with_results_off_is_a_409_that_says_why(amqp_url: str, namespace: str) -> None:
    app = create_app(
        {
            "TESTING": True,
            "TASKCORE_BROKER_URL": amqp_url,
            "TASKCORE_NAMESPACE": namespace,
            "TASKCORE_STORE_RESULTS": False,
        }
    )
    try:
        client = app.test_client()
        sent = client.post("/api/tasks", json={"task": "webapp.tasks.add", "args": [1, 2]})
        task_id = sent.get_json()["id"]
        status = client.get(f"/api/tasks/{task_id}")
        assert status.status_code == 409
        assert "TASKCORE_STORE_RESULTS is off" in status.get_json()["error"]
        revoked = client.post(f"/api/tasks/{task_id}/revoke")
        assert revoked.status_code == 202 and revoked.get_json() == {"id": task_id, "revoked": True}
    finally:
        app.extensions["taskcore"].close()


def test_history_endpoint_filters_runs(history_client) -> None:
    import time

    from taskcore.history import write_events

    now = time.time()
    write_events(
        history_client.extensions["taskcore_history"],
        [
            {"task_id": "old", "state": "SUCCESS", "at": now - 10 * 86400, "task": "t.a"},
            {"task_id": "new", "state": "FAILURE", "at": now - 60, "task": "t.b"},
            {"task_id": "ok", "state": "SUCCESS", "at": now - 30, "task": "t.a"},
        ],
    )
    client = history_client.test_client()
    week_ago = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 7 * 86400))
    found = client.get(f"/api/history?since={week_ago}").get_json()["runs"]
    assert [r["task_id"] for r in found] == ["ok", "new"]
    failed = client.get("/api/history?state=FAILURE").get_json()["runs"]
    assert [r["task_id"] for r in failed] == ["new"]
    assert client.get("/api/history?state=NOPE").status_code == 400
    assert client.get("/api/history?limit=0").status_code == 400
