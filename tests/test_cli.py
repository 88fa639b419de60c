"""The operations command line, end to end against the real services."""

from __future__ import annotations

import json
import time

from .broker_tools import Probe
from .worker_log import wait_events

A = ("-A", "tests.apps.basic:app")
T = "tests.apps.basic."


def test_send_then_result(cli, start_worker, app_from) -> None:
    app_from("basic")
    start_worker("basic", "-Q", "work")
    sent = cli("send", *A, T + "two_args", "--args", "[2, 40]")
    assert sent.returncode == 0, sent.stderr
    task_id = sent.stdout.strip()
    shown = cli("result", *A, task_id, "--wait", "--timeout", "10", "--format", "json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["result"] == 42
    failed_id = cli("send", *A, T + "boom", "--args", '["x"]').stdout.strip()
    failed = cli("result", *A, failed_id, "--wait", "--timeout", "10")
    assert failed.returncode == 1 and "FAILURE" in failed.stdout


def test_send_rejects_bad_input_clearly(cli) -> None:
    bad_json = cli("send", *A, T + "two_args", "--args", "[1,")
    assert bad_json.returncode == 2 and "not JSON" in bad_json.stderr
    wrong = cli("send", *A, T + "two_args", "--args", "[1]")
    assert wrong.returncode == 1 and "missing a required argument" in wrong.stderr
    no_app = cli("send", "-A", "tests.apps.nothing_here:app", "x")
    assert no_app.returncode == 2 and "cannot import" in no_app.stderr


def test_dlq_list_show_replay_and_purge(cli, app_from, start_worker, probe: Probe) -> None:
    app = app_from("basic")
    worker = start_worker("basic", "-Q", "work", "--concurrency", "1")  # keeps the order
    for tag in ("a", "b", "c"):
        app.tasks[T + "boom"].delay(tag)
    app.tasks[T + "refuse"].delay("r")
    assert probe.wait_depth("work.dead", 4) == 4
    listed = cli("dlq", "list", *A, "work", "--format", "json")
    rows = json.loads(listed.stdout)
    assert [r["reason"] for r in rows] == ["failed", "failed", "failed", "rejected"]
    assert probe.depth("work.dead") == 4  # listing removes nothing
    shown = cli("dlq", "show", *A, "work", "2")
    assert "boom for b" in shown.stdout and "Traceback" in shown.stdout
    worker.signal(15)
    worker.wait(15)
    replayed = cli("dlq", "replay", *A, "work", "--task", T + "boom")
    assert replayed.returncode == 0, replayed.stderr
    assert "replayed 3 message(s)" in replayed.stdout and "1 of other tasks" in replayed.stdout
    assert probe.depth("work") == 3 and probe.depth("work.dead") == 1
    back = probe.get_all("work")
    assert all(m.headers["x-taskcore-retries"] == 0 for m in back)
    assert not any(k == "x-taskcore-reason" for m in back for k in m.headers)
    purged = cli("dlq", "purge", *A, "work", "--yes")
    assert "removed 1 dead letter" in purged.stdout and probe.depth("work.dead") == 0


def test_purge_asks_first(cli, app_from, probe: Probe) -> None:
    app = app_from("basic")
    app.tasks[T + "note"].map(["a", "b"])
    refused = cli("purge", *A, "work", input="n\n")
    assert refused.returncode == 1 and probe.depth("work") == 2
    done = cli("purge", *A, "work", input="y\n")
    assert "removed 2 message(s) from work" in done.stdout and probe.depth("work") == 0
    missing = cli("purge", *A, "no-such-queue", "--yes")
    assert missing.returncode == 1 and "no queue named" in missing.stderr
    for impossible in ("bad name!", "x" * 300):  # names the AMQP client itself refuses
        refused = cli("purge", *A, impossible, "--yes")
        assert refused.returncode == 1 and "no queue can be named" in refused.stderr
        assert "Traceback" not in refused.stderr


def test_cancel_and_rate_limit(cli, app_from, start_worker, rdb, redis_prefix) -> None:
    app = app_from("basic")
    handle = app.tasks[T + "note"].delay("never")
    cancelled = cli("cancel", *A, handle.id)
    assert cancelled.returncode == 0 and "REVOKED" in cancelled.stdout
    start_worker("basic", "-Q", "work")
    app.tasks[T + "note"].delay("after")
    assert [e["tag"] for e in wait_events(rdb, redis_prefix, "note", 1)] == ["after"]
    set_limit = cli("rate-limit", *A, T + "note", "5/s", "--format", "json")
    assert json.loads(set_limit.stdout) == [{"name": T + "note", "limit": "5/s"}]
    bad = cli("rate-limit", *A, T + "note", "fast")
    assert bad.returncode == 1 and "invalid rate limit" in bad.stderr
    reset = cli("rate-limit", *A, T + "note", "--reset", "--format", "json")
    assert json.loads(reset.stdout) == []


def test_schedule_commands(cli, app_from) -> None:
    app_from("scheduled")
    s = ("-A", "tests.apps.scheduled:app")
    listed = json.loads(cli("schedule", "list", *s, "--format", "json").stdout)
    assert {r["name"] for r in listed} == {"every-second", "nightly"}
    assert "paused" in cli("schedule", "pause", *s, "nightly").stdout
    listed = json.loads(cli("schedule", "list", *s, "--format", "json").stdout)
    assert next(r for r in listed if r["name"] == "nightly")["paused"] is True
    assert "resumed" in cli("schedule", "resume", *s, "nightly").stdout
    run = cli("schedule", "run", *s, "nightly")
    assert run.returncode == 0 and run.stdout.startswith("nightly@manual-")
    unknown = cli("schedule", "pause", *s, "nope")
    assert unknown.returncode == 1 and "no schedule named 'nope'" in unknown.stderr


def test_inspect_asks_every_worker_process(cli, app_from, start_worker, rdb, redis_prefix) -> None:
    app = app_from("basic")
    start_worker("basic", "-Q", "work", "--processes", "2", "--hostname", "w%i@%h")
    pong = cli("inspect", *A, "ping", "--timeout", "1", "--format", "json")
    assert pong.returncode == 0, pong.stderr
    replies = json.loads(pong.stdout)
    assert sorted(r["worker"].split("@")[0] for r in replies) == ["w0", "w1"]
    assert {r["reply"] for r in replies} == {"pong"}
    app.tasks[T + "sleeper"].delay(3.0, "busy")
    wait_events(rdb, redis_prefix, "start", 1)
    active = json.loads(cli("inspect", *A, "active", "--format", "json").stdout)
    running = [task for r in active for task in r["reply"]]
    assert [t["task"] for t in running] == [T + "sleeper"]
    registered = json.loads(cli("inspect", *A, "registered", "--format", "json").stdout)
    assert T + "note" in registered[0]["reply"]


def test_inspect_with_no_worker_fails_clearly(cli, app_from) -> None:
    app_from("basic")
    nobody = cli("inspect", *A, "ping", "--timeout", "0.5")
    assert nobody.returncode == 1 and "no worker answered within 0.5s" in nobody.stderr


def test_status_and_health(cli, app_from, start_worker, probe: Probe) -> None:
    app = app_from("basic")
    app.tasks[T + "boom"].delay("x")
    unhealthy = cli("health", *A, "--format", "json")
    checks = {c["check"]: c["status"] for c in json.loads(unhealthy.stdout)}
    assert unhealthy.returncode == 1  # no worker yet: a warning
    assert checks["broker"] == "ok" and checks["redis"] == "ok" and checks["workers"] == "warn"
    start_worker("basic", "-Q", "work")
    assert probe.wait_depth("work.dead", 1) == 1
    time.sleep(0.5)
    shown = cli("status", *A, "--format", "json")
    reading = json.loads(shown.stdout)
    work = next(q for q in reading["queues"] if q["queue"] == "work")
    assert work["ready"] == 0 and work["consumers"] == 1 and work["dead"] == 1
    assert work["in_per_s"] is None  # tasks/s in needs two readings (--watch)
    assert [w["alive"] for w in reading["workers"]] == [True]
    summary = cli("status", *A, "--format", "summary")
    assert "dead=1" in summary.stdout and "workers=1" in summary.stdout
    warned = cli("health", *A)
    assert warned.returncode == 1 and "1 dead" in warned.stdout  # a dead letter warns
    broker_down = cli(
        "health", *A, env_overrides={"TASKCORE_BROKER_URL": "amqp://g:g@127.0.0.1:1/"}
    )
    assert broker_down.returncode == 2 and "fail" in broker_down.stdout


def test_status_counts_unacked_messages_from_heartbeats(
    cli, app_from, start_worker, rdb, redis_prefix
) -> None:
    app = app_from("basic")
    start_worker("basic", "-Q", "work")
    app.tasks[T + "sleeper"].delay(8.0, "held")
    wait_events(rdb, redis_prefix, "start", 1)
    time.sleep(5.5)  # the next heartbeat (every 5 s) reports it
    reading = json.loads(cli("status", *A, "--format", "json").stdout)
    work = next(q for q in reading["queues"] if q["queue"] == "work")
    assert work["unacked"] == 1 and work["ready"] == 0
    assert reading["workers"][0]["running"] == 1
