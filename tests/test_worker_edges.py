"""One worker at its edges: lifecycle hooks, payload limits, a thread pool's size."""

from __future__ import annotations

import signal

import pytest

from taskcore import TaskApp, TaskFailed
from taskcore.errors import ConfigurationError, EncodeError, PayloadTooLarge
from taskcore.worker import SYNC_THREADS_MAX, check_thread_count

from .broker_tools import Probe
from .worker_log import events

H = "tests.apps.hooks."


def test_start_hooks_open_one_shared_client_per_process_and_stop_hooks_close_it(
    app_from, start_worker, rdb, redis_prefix
) -> None:
    app = app_from("hooks")
    worker = start_worker("hooks", "-Q", "hooked", "--concurrency", "200", "--processes", "2")
    handles = [app.tasks[H + "count"].delay(i) for i in range(400)]
    pids = {handle.get(timeout=30) for handle in handles}
    assert len(pids) == 2  # both processes ran tasks, each with its own client
    assert rdb.get(redis_prefix + "counted") == "400"  # none failed for want of a connection
    assert rdb.get(redis_prefix + "opened") == "2"  # once per process, not per task
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    assert rdb.get(redis_prefix + "closed") == "2"


def test_a_failing_start_hook_stops_the_worker_with_the_reason(cli, probe: Probe) -> None:
    done = cli(
        "worker", "-A", "tests.apps.hooks:app", "-Q", "hooked", env_overrides={"HOOK_FAIL": "1"}
    )
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "on_worker_start hook tests.apps.hooks.open_redis failed" in output
    assert "ConnectionRefusedError: the example service is down" in output
    assert "consuming" not in output


def test_arguments_over_the_limit_raise_before_anything_is_published(
    app_from, probe: Probe, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKCORE_MAX_ARGS_BYTES", "1000")
    app = app_from("hooks")
    echo = app.tasks[H + "echo"]
    echo.delay("x" * 100)  # fits: declares the queue
    probe.get_all("hooked")
    with pytest.raises(PayloadTooLarge, match="TASKCORE_MAX_ARGS_BYTES") as refused:
        echo.delay("x" * 2000)
    assert isinstance(refused.value, EncodeError)  # the API answers it with a 400
    assert "pass its key" in str(refused.value)
    assert probe.depth("hooked") == 0


def test_thousands_of_threads_for_plain_functions_are_refused_async_tasks_are_not(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = TaskApp("edges")

    @app.task(queue="waits")
    async def waits() -> None: ...

    @app.task(queue="blocks")
    def blocks() -> None: ...

    check_thread_count(app, ["waits"], 10_000)  # async tasks need no thread
    with pytest.raises(ConfigurationError, match="async def"):
        check_thread_count(app, ["blocks"], SYNC_THREADS_MAX + 1)
    check_thread_count(app, ["blocks"], 1000)
    assert "runs up to 1000 threads" in caplog.text and "blocks" in caplog.text
    app.close()


def test_a_result_over_the_limit_fails_the_task_and_says_why(
    app_from, start_worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKCORE_MAX_RESULT_BYTES", "1000")
    app = app_from("hooks")
    start_worker("hooks", "-Q", "hooked", env={"TASKCORE_MAX_RESULT_BYTES": "1000"})
    big = app.tasks[H + "big"]
    assert big.delay(100).get(timeout=15) == "x" * 100
    with pytest.raises(TaskFailed) as failed:
        big.delay(5000).get(timeout=15)
    assert failed.value.remote_type == "taskcore.errors.PayloadTooLarge"
    assert "5,002 bytes of JSON" in failed.value.remote_message
    assert "TASKCORE_MAX_RESULT_BYTES" in failed.value.remote_message


def test_burst_drains_the_queues_waits_for_retries_then_exits_0(
    app_from, cli, rdb, redis_prefix, probe: Probe
) -> None:
    app = app_from("basic")
    for i in range(20):
        app.tasks["tests.apps.basic.note"].delay(f"n{i}")
    flaky = app.tasks["tests.apps.basic.flaky_twice"].delay("f")  # two retries, in delays
    done = cli(
        "--loglevel", "info", "worker", "-A", "tests.apps.basic:app", "-Q", "work",
        "--burst", "--processes", "2", timeout=90,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "drained its queues" in output
    assert len(events(rdb, redis_prefix, "note")) == 20
    assert flaky.get(timeout=1) == "ok"  # it waited for the retries to come back
    assert probe.depth("work") == 0
