"""Crashes and stops: a killed worker loses nothing, a terminated one drains or requeues."""

from __future__ import annotations

import signal
import time

import pytest

from scripts.drills.proxy import TcpProxy

from .broker_tools import Probe
from .worker_log import events, wait_events

T = "tests.apps.basic."


def test_sigkill_mid_task_leaves_the_message_for_the_next_worker(
    app_from, start_worker, rdb, redis_prefix, probe: Probe
) -> None:
    app = app_from("basic")
    first = start_worker("basic", "-Q", "work")
    app.tasks[T + "sleeper"].delay(2.0, "k")
    wait_events(rdb, redis_prefix, "start", 1)
    first.signal(signal.SIGKILL)
    first.wait(10)
    assert probe.wait_depth("work", 1) == 1  # back in the queue, not lost
    start_worker("basic", "-Q", "work")
    wait_events(rdb, redis_prefix, "finish", 1)
    assert len(events(rdb, redis_prefix, "start")) == 2  # at-least-once: it ran again
    assert probe.wait_depth("work", 0) == 0


def test_sigterm_lets_running_tasks_finish_and_exits_zero(
    app_from, start_worker, rdb, redis_prefix, probe: Probe
) -> None:
    app = app_from("basic")
    worker = start_worker("basic", "-Q", "work", "--concurrency", "2")
    sleeper = app.tasks[T + "sleeper"]
    sleeper.delay(1.0, "a")
    sleeper.delay(1.0, "b")
    wait_events(rdb, redis_prefix, "start", 2)
    sleeper.delay(1.0, "queued")  # prefetched: waits for a slot, goes back at the stop
    worker.signal(signal.SIGTERM)
    assert worker.wait(15) == 0
    assert sorted(e["tag"] for e in events(rdb, redis_prefix, "finish")) == ["a", "b"]
    assert probe.depth("work") == 1
    (left,) = probe.get_all("work")
    assert left.json()["args"] == [1.0, "queued"]


def test_sigterm_requeues_tasks_that_outlive_the_grace_period(
    app_from, start_worker, rdb, redis_prefix, probe: Probe
) -> None:
    app = app_from("basic")
    worker = start_worker("basic", "-Q", "work", "--grace-period", "0.5")
    app.tasks[T + "sleeper"].delay(30.0, "long")
    app.tasks[T + "note_async"].delay("quick")
    wait_events(rdb, redis_prefix, "start", 1)
    wait_events(rdb, redis_prefix, "note_async", 1)
    stopped = time.monotonic()
    worker.signal(signal.SIGTERM)
    assert worker.wait(15) == 0
    assert time.monotonic() - stopped < 5
    assert "requeued 1 unfinished task(s)" in worker.output
    assert probe.wait_depth("work", 1) == 1
    assert events(rdb, redis_prefix, "finish") == []


def test_a_second_sigterm_stops_without_waiting(
    app_from, start_worker, rdb, redis_prefix, probe: Probe
) -> None:
    app = app_from("basic")
    worker = start_worker("basic", "-Q", "work", "--grace-period", "60")
    app.tasks[T + "sleeper"].delay(30.0, "long")
    wait_events(rdb, redis_prefix, "start", 1)
    worker.signal(signal.SIGTERM)
    worker.wait_for_output("waiting up to")
    stopped = time.monotonic()
    worker.signal(signal.SIGTERM)
    assert worker.wait(15) == 0
    assert time.monotonic() - stopped < 5
    assert probe.wait_depth("work", 1) == 1


def test_worker_resumes_consuming_after_the_broker_drops_its_connections(
    app_from, start_worker, rdb, redis_prefix, vhost: str
) -> None:
    from .broker_tools import rabbitmqctl

    app = app_from("basic")
    worker = start_worker("basic", "-Q", "work")
    app.tasks[T + "note"].delay("before")
    wait_events(rdb, redis_prefix, "note", 1)
    rabbitmqctl("close_all_connections", "-p", vhost, "test drops every connection")
    app.tasks[T + "note"].delay("after")
    notes = wait_events(rdb, redis_prefix, "note", 2, timeout=30)
    assert [n["tag"] for n in notes] == ["before", "after"]
    assert worker.proc.poll() is None


@pytest.mark.parametrize("task", ["sleeper", "sleeper_async"])
def test_a_task_running_when_the_connection_breaks_finishes_once_and_succeeds(
    task, app_from, start_worker, rdb, redis_prefix, amqp_url: str
) -> None:
    # The worker reaches RabbitMQ through a proxy that resets every connection, as a
    # failing network path does. The message comes back on the new connection; the first
    # run must still record SUCCESS, so that the second copy is skipped, not run again.
    app = app_from("basic")
    with TcpProxy("127.0.0.1", 5672) as proxy:
        start_worker("basic", "-Q", "work", env={"TASKCORE_BROKER_URL": proxy.url(amqp_url)})
        handle = app.tasks[T + task].delay(1.5, "blip")
        wait_events(rdb, redis_prefix, "start", 1)
        assert proxy.cut() >= 2
        wait_events(rdb, redis_prefix, "finish", 1, timeout=15)
        assert handle.get(timeout=15) is None
        app.tasks[T + "note"].delay("after")  # consumed after the redelivery was handled
        wait_events(rdb, redis_prefix, "note", 1, timeout=15)
    time.sleep(1.0)
    assert len(events(rdb, redis_prefix, "start")) == 1
    assert len(events(rdb, redis_prefix, "finish")) == 1
