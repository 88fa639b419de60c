"""A real worker process against the real broker: running, retrying, dead-lettering."""

from __future__ import annotations

import itertools
import time

import pytest

from taskcore.worker import PREFETCH_PER_SLOT

from .broker_tools import Probe
from .worker_log import events, wait_events

T = "tests.apps.basic."


def test_sync_tasks_run_in_threads_and_async_tasks_on_the_loop(
    app_from, start_worker, rdb, redis_prefix
) -> None:
    app = app_from("basic")
    start_worker("basic", "-Q", "work")
    app.tasks[T + "note"].delay("sync")
    app.tasks[T + "note_async"].delay("async")
    (sync,) = wait_events(rdb, redis_prefix, "note", 1)
    (async_,) = wait_events(rdb, redis_prefix, "note_async", 1)
    assert sync["tag"] == "sync" and sync["thread"].startswith("taskcore-task")
    assert async_["tag"] == "async" and async_["thread"] == "MainThread"


def test_concurrency_runs_sync_tasks_side_by_side_and_bounds_prefetch(
    app_from, start_worker, rdb, redis_prefix, probe: Probe
) -> None:
    app = app_from("basic")
    start_worker("basic", "-Q", "work", "--concurrency", "3")
    app.tasks[T + "sleeper"].map([(1.0, f"t{i}") for i in range(10)])
    starts = wait_events(rdb, redis_prefix, "start", 3)
    # Three run at once, three more wait in the worker; the broker holds the rest back.
    assert PREFETCH_PER_SLOT == 2
    assert probe.depth("work") == 4
    finishes = wait_events(rdb, redis_prefix, "finish", 3)
    first_three_started = sorted(e["at"] for e in starts)[:3]
    assert max(first_three_started) < min(e["at"] for e in finishes)
    wait_events(rdb, redis_prefix, "finish", 10, timeout=20)


def test_retries_back_off_exponentially_then_dead_letter(
    app_from, start_worker, rdb, redis_prefix, probe: Probe
) -> None:
    app = app_from("basic")
    start_worker("basic", "-Q", "work")
    handle = app.tasks[T + "always_flaky"].delay("x")
    attempts = wait_events(rdb, redis_prefix, "attempt", 4, timeout=20)
    times = [a["at"] for a in attempts]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    for gap, expected in zip(gaps, [0.5, 1.0, 2.0], strict=True):  # 0.5 * 2**retries
        assert abs(gap - expected) <= max(0.1 * expected, 0.2), (gaps, expected)
    assert probe.wait_depth("work.dead", 1) == 1
    (dead,) = probe.get_all("work.dead")
    assert dead.message_id == handle.id
    assert dead.json() == {"args": ["x"], "kwargs": {}}
    h = dead.headers
    assert h["x-taskcore-reason"] == "max-retries-exceeded"
    assert h["x-taskcore-exception-type"] == "builtins.ConnectionError"
    assert "could not reach the remote end for x" in h["x-taskcore-exception-message"]
    assert "ConnectionError" in h["x-taskcore-traceback"]
    assert h["x-taskcore-attempts"] == 4
    assert h["x-taskcore-original-queue"] == "work"
    assert h["x-taskcore-dead-at"].startswith("20")
    assert "x-death" not in h  # the cascade's bookkeeping is not carried along
    assert len(events(rdb, redis_prefix, "attempt")) == 4


def test_a_retried_task_that_then_succeeds_is_not_dead_lettered(
    app_from, start_worker, rdb, redis_prefix, probe: Probe
) -> None:
    app = app_from("basic")
    worker = start_worker("basic", "-Q", "work")
    handle = app.tasks[T + "flaky_twice"].delay("y")
    wait_events(rdb, redis_prefix, "attempt", 3, timeout=10)
    assert handle.get(timeout=10) == "ok"
    assert "retry 2/5" in worker.output
    assert probe.depth("work.dead") == 0
    assert probe.depth("work") == 0


def test_explicit_retry_uses_its_countdown_and_max_retries(
    app_from, start_worker, rdb, redis_prefix, probe: Probe
) -> None:
    app = app_from("basic")
    start_worker("basic", "-Q", "work")
    app.tasks[T + "retry_soon"].delay("z")
    attempts = wait_events(rdb, redis_prefix, "attempt", 3)
    assert all(abs(b["at"] - a["at"] - 0.3) < 0.2 for a, b in itertools.pairwise(attempts))
    assert probe.wait_depth("work.dead", 1) == 1
    (dead,) = probe.get_all("work.dead")
    assert dead.headers["x-taskcore-reason"] == "max-retries-exceeded"
    assert dead.headers["x-taskcore-attempts"] == 3


def test_short_delays_do_not_wait_behind_long_ones(
    app_from, start_worker, rdb, redis_prefix
) -> None:
    app = app_from("basic")
    start_worker("basic", "-Q", "work")
    note = app.tasks[T + "note"]
    sent_long = time.time()  # each delay counts from its own send (the first opens a connection)
    note.apply_async(("long",), countdown=3.0)
    sent_short = time.time()
    note.apply_async(("short",), countdown=0.7)
    note.apply_async(("now",))
    first, second, third = wait_events(rdb, redis_prefix, "note", 3, timeout=10)
    assert [first["tag"], second["tag"], third["tag"]] == ["now", "short", "long"]
    assert abs(second["at"] - sent_short - 0.7) <= 0.2
    assert abs(third["at"] - sent_long - 3.0) <= 0.3


@pytest.mark.parametrize(
    ("send", "reason", "error_type"),
    [
        (
            lambda app, probe: app.tasks[T + "refuse"].delay("r"),
            "rejected",
            "taskcore.errors.Reject",
        ),
        (lambda app, probe: app.tasks[T + "boom"].delay("b"), "failed", "builtins.ValueError"),
        (
            lambda app, probe: app.send_task("tests.apps.nowhere", queue="work"),
            "unknown-task",
            "taskcore.execution.UnknownTask",
        ),
        (
            lambda app, probe: probe.publish_raw(
                app.topology.work_exchange,
                "work",
                b"{not json",
                message_type=T + "note",
                message_id="raw-1",
            ),
            "undecodable",
            "taskcore.errors.DecodeError",
        ),
        (  # a body that happens to parse as JSON, declared as pickle: never run
            lambda app, probe: probe.publish_raw(
                app.topology.work_exchange,
                "work",
                b'{"args": ["pickled"]}',
                message_type=T + "note",
                content_type="application/x-python-serialize",
            ),
            "undecodable",
            "taskcore.errors.DecodeError",
        ),
        (
            lambda app, probe: probe.publish_raw(
                app.topology.work_exchange, "work", b'{"args": [1]}', message_type=T + "two_args"
            ),
            "invalid-arguments",
            "builtins.TypeError",
        ),
    ],
    ids=["reject", "failure", "unknown-task", "not-json", "pickle", "bad-arguments"],
)
def test_bad_messages_go_to_the_dead_letter_queue_and_the_worker_goes_on(
    send, reason, error_type, app_from, start_worker, rdb, redis_prefix, probe: Probe
) -> None:
    app = app_from("basic")
    app.tasks[T + "note"].delay("warm-up")  # declares the queues before any raw publish
    start_worker("basic", "-Q", "work")
    wait_events(rdb, redis_prefix, "note", 1)
    send(app, probe)
    assert probe.wait_depth("work.dead", 1) == 1
    (dead,) = probe.get_all("work.dead")
    assert dead.headers["x-taskcore-reason"] == reason
    assert dead.headers["x-taskcore-exception-type"] == error_type
    assert dead.headers["x-taskcore-original-queue"] == "work"
    assert dead.headers["x-taskcore-exception-message"]
    app.tasks[T + "note"].delay("still-alive")
    assert [e["tag"] for e in wait_events(rdb, redis_prefix, "note", 2)][-1] == "still-alive"


def test_an_undecodable_body_is_kept_byte_for_byte(app_from, start_worker, probe: Probe) -> None:
    app = app_from("basic")
    app.tasks[T + "note"].delay("warm-up")
    start_worker("basic", "-Q", "work")
    body = b"\xff\xfe binary garbage"
    probe.publish_raw(app.topology.work_exchange, "work", body)  # no task name, not JSON
    assert probe.wait_depth("work.dead", 1) == 1
    (dead,) = probe.get_all("work.dead")
    assert dead.body == body
    assert dead.headers["x-taskcore-reason"] == "undecodable"


def test_a_worker_consumes_quorum_and_classic_queues_together(
    app_from, start_worker, vhost: str, probe: Probe
) -> None:
    app = app_from("quorum")
    start_worker("quorum", "-Q", "replicated,classic", "--concurrency", "2")
    assert app.tasks["tests.apps.quorum.double"].delay(21).get(timeout=10) == 42
    assert app.tasks["tests.apps.quorum.triple"].delay(5).get(timeout=10) == 15
    queues = probe.queue_arguments(vhost)
    assert queues["replicated"]["arguments"]["x-queue-type"] == "quorum"
