"""The web app's /metrics, /healthz and /readyz against the real RabbitMQ, Redis and PostgreSQL."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

import taskcore.operations
from taskcore.history import create_schema, make_engine, write_events
from webapp.metrics import UNMATCHED

from .broker_tools import Probe
from .conftest import ROOT
from .webapp_helpers import close_web_app, make_web_app

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
#: Nothing listens on port 1 of loopback: connecting is refused at once.
CLOSED_PORT = 1


@pytest.fixture
def make_app(database_url: str, task_env: dict[str, str]) -> Iterator[Callable[..., Flask]]:
    """``make_app(**config)``: the web app on this test's vhost, namespace and schema."""
    made: list[Flask] = []

    def make(**config: Any) -> Flask:
        settings = {key: value for key, value in task_env.items() if key.startswith("TASKCORE_")}
        app = make_web_app(database_url, **{**settings, **config})
        made.append(app)
        return app

    yield make
    for app in made:
        app.extensions["taskcore_ops"].engine.dispose()
        close_web_app(app)


def scrape(app: Flask, **headers: str) -> str:
    response = app.test_client().get("/metrics", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type.startswith("text/plain; version=0.0.4")  # no Accept: 0.0.4
    return response.get_data(as_text=True)


def samples(text: str) -> Samples:
    """Every sample of an exposition: (name, labels) -> value."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


def names(found: Samples) -> set[str]:
    return {name for name, _ in found}


def declare(probe: Probe, app: Flask, *queues: str, recorder: bool = False) -> None:
    """Declare what taskcore declares on connect, these work queues, the recorder's queue."""
    topology = app.extensions["taskcore"].topology

    async def go(channel: Any) -> None:
        await topology.declare_base(channel)
        for queue in queues:
            await topology.declare_queue(channel, queue)
        if recorder:
            await topology.declare_recorder_queue(channel)

    probe._run(go)


def test_requests_are_counted_by_endpoint_method_and_status(make_app: Any) -> None:
    app = make_app()
    client = app.test_client()
    for _ in range(3):
        assert client.get("/healthz").status_code == 200
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/login").status_code == 200
    assert client.get("/no/such/page/42").status_code == 404
    assert client.get("/no/such/page/43").status_code == 404
    assert client.post("/healthz").status_code == 405  # no route for POST: unmatched too
    assert client.get("/api/v1/queues").status_code == 401
    found = samples(scrape(app))
    counts = "taskcore_http_requests_total"
    assert value(found, counts, endpoint="metrics.healthz", method="GET", status="200") == 4
    assert value(found, counts, endpoint="auth.login", method="GET", status="200") == 1
    assert value(found, counts, endpoint="unmatched", method="GET", status="404") == 2
    assert value(found, counts, endpoint="unmatched", method="POST", status="405") == 1
    assert value(found, counts, endpoint="api_v1.queues", method="GET", status="401") == 1
    durations = "taskcore_http_request_duration_seconds"
    assert value(found, f"{durations}_count", endpoint="metrics.healthz", method="GET") == 4
    assert value(found, f"{durations}_bucket", endpoint="unmatched", method="GET", le="+Inf") == 2
    # The scrape itself shows in the next one, and label values stay endpoint names.
    again = samples(scrape(app))
    assert value(again, counts, endpoint="metrics.scrape", method="GET", status="200") == 1
    endpoints = {dict(labels)["endpoint"] for name, labels in again if name == counts}
    assert "/no/such/page/42" not in endpoints and UNMATCHED in endpoints


def test_two_apps_in_one_process_count_their_own_requests(make_app: Any) -> None:
    first, second = make_app(), make_app()
    first.test_client().get("/healthz")
    first.test_client().get("/healthz")
    second.test_client().get("/healthz")
    counts = "taskcore_http_requests_total"
    labels = {"endpoint": "metrics.healthz", "method": "GET", "status": "200"}
    assert value(samples(scrape(first)), counts, **labels) == 2
    assert value(samples(scrape(second)), counts, **labels) == 1


def test_the_endpoints_need_no_sign_in_and_are_not_cached(make_app: Any) -> None:
    client = make_app().test_client()
    for url in ("/metrics", "/healthz", "/readyz"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.headers["Cache-Control"] == "no-store"
        assert "Location" not in response.headers


def test_queue_gauges_show_the_messages_published(make_app: Any, probe: Probe) -> None:
    app = make_app(METRICS_CACHE_SECONDS=0)
    task_app = app.extensions["taskcore"]
    task_app.tasks["webapp.tasks.add"].map([(1, 2), (3, 4), (5, 6)])
    probe.publish_raw("", "default.dead", b"{}", message_id="dead-1")
    found = samples(scrape(app))
    assert value(found, "taskcore_queue_messages_ready", queue="default") == 3
    assert value(found, "taskcore_queue_dead_letters", queue="default") == 1
    assert value(found, "taskcore_queue_consumers", queue="default") == 0
    assert value(found, "taskcore_queue_messages_unacked", queue="default") == 0
    assert value(found, "taskcore_queue_workers_alive", queue="default") == 0
    assert value(found, "taskcore_workers_alive") == 0
    for source in ("broker", "redis", "database"):
        assert value(found, "taskcore_scrape_errors_total", source=source) == 0
    # With no cache every scrape reads again.
    task_app.tasks["webapp.tasks.add"].delay(7, 8)
    assert value(samples(scrape(app)), "taskcore_queue_messages_ready", queue="default") == 4


def test_a_live_worker_shows_as_alive_and_consuming(make_app: Any, start_command: Any) -> None:
    app = make_app(METRICS_CACHE_SECONDS=0)
    worker = start_command("--loglevel", "info", "worker", "-A", "webapp.tasks:app")
    worker.wait_for_output("consuming")
    deadline = time.monotonic() + 15
    while value(found := samples(scrape(app)), "taskcore_workers_alive") != 1:
        assert time.monotonic() < deadline, "no heartbeat seen within 15 s"
        time.sleep(0.2)
    assert value(found, "taskcore_queue_workers_alive", queue="default") == 1
    assert value(found, "taskcore_queue_consumers", queue="default") == 1


def test_many_scrapes_open_one_broker_connection(
    make_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[float] = []
    real_connect = taskcore.operations.connect

    async def counting_connect(settings: Any) -> Any:
        opened.append(time.monotonic())
        return await real_connect(settings)

    monkeypatch.setattr(taskcore.operations, "connect", counting_connect)
    app = make_app(METRICS_CACHE_SECONDS=30)
    task_app = app.extensions["taskcore"]
    task_app.tasks["webapp.tasks.add"].delay(1, 2)
    for _ in range(20):
        assert value(samples(scrape(app)), "taskcore_queue_messages_ready", queue="default") == 1
    # Scrapes at the same moment wait for one reading instead of each making their own.
    answers: list[int] = []
    threads = [
        threading.Thread(
            target=lambda: answers.append(app.test_client().get("/metrics").status_code)
        )
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [200] * 8
    assert len(opened) == 1
    # The cached reading is served as it was until it is older than the cache time.
    task_app.tasks["webapp.tasks.add"].delay(3, 4)
    assert value(samples(scrape(app)), "taskcore_queue_messages_ready", queue="default") == 1
    app.extensions["webapp_metrics"].collector.cache_seconds = 0.3
    time.sleep(0.35)
    assert value(samples(scrape(app)), "taskcore_queue_messages_ready", queue="default") == 2
    assert len(opened) == 2


def test_broker_down_scrape_answers_without_its_gauges(make_app: Any) -> None:
    app = make_app(
        TASKCORE_BROKER_URL=f"amqp://guest:guest@127.0.0.1:{CLOSED_PORT}/",
        METRICS_CACHE_SECONDS=30,
    )
    found = samples(scrape(app))
    assert value(found, "taskcore_scrape_errors_total", source="broker") == 1
    assert value(found, "taskcore_scrape_errors_total", source="redis") == 0
    broker_gauges = {
        "taskcore_queue_messages_ready",
        "taskcore_queue_consumers",
        "taskcore_queue_dead_letters",
        "taskcore_recorder_backlog_messages",
        "taskcore_recorder_lag_seconds",
    }
    assert not broker_gauges & names(found)
    # What comes from Redis is still there.
    assert value(found, "taskcore_workers_alive") == 0
    assert value(found, "taskcore_schedule_lag_seconds", schedule="ping-every-minute") == 0
    # The failed reading is cached too: a scrape storm does not retry the broker each time.
    assert value(samples(scrape(app)), "taskcore_scrape_errors_total", source="broker") == 1
    ready = app.test_client().get("/readyz")
    assert ready.status_code == 503
    body = ready.get_json()
    assert body["status"] == "unavailable" and body["failing"] == ["broker"]
    statuses = {c["check"]: c["status"] for c in body["checks"]}
    assert statuses == {"broker": "fail", "redis": "ok", "database": "ok"}
    broker_check = next(c for c in body["checks"] if c["check"] == "broker")
    assert "cannot reach the broker" in broker_check["detail"]


def test_redis_down_scrape_answers_without_its_gauges(make_app: Any, probe: Probe) -> None:
    app = make_app(TASKCORE_REDIS_URL=f"redis://127.0.0.1:{CLOSED_PORT}/0")
    declare(probe, app, "default")
    found = samples(scrape(app))
    assert value(found, "taskcore_scrape_errors_total", source="redis") == 1
    assert value(found, "taskcore_scrape_errors_total", source="broker") == 0
    redis_gauges = {
        "taskcore_workers_alive",
        "taskcore_queue_workers_alive",
        "taskcore_queue_messages_unacked",
        "taskcore_schedule_lag_seconds",
    }
    assert not redis_gauges & names(found)
    assert value(found, "taskcore_queue_messages_ready", queue="default") is not None
    ready = app.test_client().get("/readyz")
    assert ready.status_code == 503 and ready.get_json()["failing"] == ["redis"]


def test_readyz_is_ok_when_everything_answers(make_app: Any) -> None:
    response = make_app().test_client().get("/readyz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok" and "failing" not in body
    assert [c["check"] for c in body["checks"]] == ["broker", "redis", "database"]
    assert all(c["status"] == "ok" for c in body["checks"])


def test_a_broker_that_never_answers_costs_a_scrape_its_timeout_once(make_app: Any) -> None:
    # Accepts connections (the kernel's backlog) but never says a word.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        app = make_app(
            TASKCORE_BROKER_URL=f"amqp://guest:guest@127.0.0.1:{silent.getsockname()[1]}/",
            TASKCORE_CONNECT_TIMEOUT=0.5,
            READYZ_TIMEOUT=0.5,
        )
        started = time.monotonic()
        response = app.test_client().get("/readyz")
        assert time.monotonic() - started < 1.5
        assert response.status_code == 503 and response.get_json()["failing"] == ["broker"]
        started = time.monotonic()
        found = samples(scrape(app))
        assert time.monotonic() - started < 1.5
        assert value(found, "taskcore_scrape_errors_total", source="broker") == 1
        started = time.monotonic()
        scrape(app)  # the failed reading is cached
        assert time.monotonic() - started < 0.2
    finally:
        silent.close()


def test_schedule_lag(make_app: Any, rdb: Any) -> None:
    app = make_app(METRICS_CACHE_SECONDS=0)
    keys = app.extensions["taskcore"].keys
    name = "ping-every-minute"  # every 60 s, in webapp/tasks.py
    lag = "taskcore_schedule_lag_seconds"
    # No beat ever recorded a fire: nothing is late yet.
    assert value(samples(scrape(app)), lag, schedule=name) == 0
    # The last fire 300 s ago: the next one (within 60 s of it) is 240-300 s late.
    rdb.hset(keys.schedules_last, name, repr(time.time() - 300))
    assert 240 <= (value(samples(scrape(app)), lag, schedule=name) or 0) <= 301
    # A fire just recorded: on time.
    rdb.hset(keys.schedules_last, name, repr(time.time()))
    assert value(samples(scrape(app)), lag, schedule=name) == 0
    # Paused: 0, however long ago it fired.
    rdb.hset(keys.schedules_last, name, repr(time.time() - 3600))
    rdb.sadd(keys.schedules_paused, name)
    assert value(samples(scrape(app)), lag, schedule=name) == 0


def test_recorder_backlog_and_lag(make_app: Any, probe: Probe) -> None:
    app = make_app(METRICS_CACHE_SECONDS=0)
    task_app = app.extensions["taskcore"]
    engine = app.extensions["taskcore_ops"].engine
    create_schema(engine)
    backlog, lag = "taskcore_recorder_backlog_messages", "taskcore_recorder_lag_seconds"
    # The recorder's queue was never declared: nothing to report.
    assert not {backlog, lag} & names(samples(scrape(app)))
    declare(probe, app, recorder=True)
    found = samples(scrape(app))
    assert value(found, backlog) == 0 and value(found, lag) == 0
    # History last written 120 s ago, and events waiting that no recorder takes.
    event = {"task_id": "t-1", "state": "SUCCESS", "task": "webapp.tasks.add", "queue": "default"}
    write_events(engine, [{**event, "at": time.time() - 120}])
    for n in range(2):
        body = json.dumps([{**event, "task_id": f"t-{n + 2}", "at": time.time()}]).encode()
        probe.publish_raw(task_app.topology.events_exchange, "task.SUCCESS", body)
    found = samples(scrape(app))
    assert value(found, backlog) == 2
    assert 119 <= (value(found, lag) or 0) <= 130
    # The database down while there is a backlog: its value absent, the error counted.
    ops = app.extensions["taskcore_ops"]
    ops.engine = make_engine(f"postgresql://postgres@127.0.0.1:{CLOSED_PORT}/test")
    try:
        found = samples(scrape(app))
        assert value(found, "taskcore_scrape_errors_total", source="database") == 1
        assert value(found, backlog) == 2 and lag not in names(found)
        ready = app.test_client().get("/readyz")
        assert ready.status_code == 503 and ready.get_json()["failing"] == ["database"]
    finally:
        ops.engine.dispose()
        ops.engine = engine


def test_bearer_token_guards_metrics_only(make_app: Any) -> None:
    app = make_app(METRICS_TOKEN="metrics-secret-0123456789")
    client = app.test_client()
    refused = client.get("/metrics")
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert (
        client.get("/metrics", headers={"Authorization": "Basic bWV0cmljcw=="}).status_code == 401
    )
    scrape(app, Authorization="Bearer metrics-secret-0123456789")
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200


def promtool_check(text: str) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: apt-get install -y prometheus (make test does it)"
    done = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def test_a_scrape_passes_promtool(make_app: Any, probe: Probe, rdb: Any) -> None:
    app = make_app()
    task_app = app.extensions["taskcore"]
    task_app.tasks["webapp.tasks.add"].delay(1, 2)
    declare(probe, app, recorder=True)
    rdb.hset(task_app.keys.schedules_last, "ping-every-minute", repr(time.time() - 90))
    client = app.test_client()
    for url in ("/healthz", "/readyz", "/login", "/missing"):
        client.get(url)
    text = scrape(app)
    assert "taskcore_queue_messages_ready" in text and "taskcore_http_requests_total" in text
    promtool_check(text)


MULTIPROCESS_CHILD = """
import sys
from webapp import create_app

app = create_app({"TESTING": True})
client = app.test_client()
for _ in range(int(sys.argv[1])):
    assert client.get("/healthz").status_code == 200
if sys.argv[2] == "scrape":
    sys.stdout.write(client.get("/metrics").get_data(as_text=True))
"""


def test_multiprocess_mode_sums_every_process(
    task_env: dict[str, str], database_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "prometheus"
    folder.mkdir()
    env = {
        **os.environ,
        **{k: v for k, v in task_env.items() if k.startswith("TASKCORE_")},
        "DATABASE_URL": database_url,
        "PROMETHEUS_MULTIPROC_DIR": str(folder),
    }

    def child(requests: int, then: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", MULTIPROCESS_CHILD, str(requests), then],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    child(3, "exit")
    child(2, "exit")
    text = child(1, "scrape")  # a third process sees the other two's requests
    found = samples(text)
    labels = {"endpoint": "metrics.healthz", "method": "GET", "status": "200"}
    assert value(found, "taskcore_http_requests_total", **labels) == 6
    assert value(found, "taskcore_workers_alive") == 0  # the gauges, from the scraped process
    assert value(found, "taskcore_scrape_errors_total", source="broker") == 0
    promtool_check(text)
