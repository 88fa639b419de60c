"""Results, progress, revocation, time limits, priorities and idempotency, end to end."""

from __future__ import annotations

import time

import pytest

from taskcore import ConfigurationError, State, TaskFailed

from .broker_tools import Probe
from .worker_log import events, wait_events

F = "tests.apps.features."


def test_get_returns_the_result_and_state_follows_the_task(app_from, start_worker) -> None:
    app = app_from("features")
    handle = app.tasks[F + "add"].delay(2, 3)
    assert handle.state == State.PENDING and not handle.ready()
    start_worker("features", "-Q", "feat")
    assert handle.get(timeout=10) == 5
    info = handle.info
    assert info.state == State.SUCCESS and handle.ready()
    assert info.task == F + "add" and info.queue == "feat" and info.attempts == 1
    assert info.worker.startswith("taskcore-")
    assert "started_at" not in info.extra  # a fast task goes straight to SUCCESS
    assert app.result(handle.id).get(timeout=1) == 5  # any id, e.g. stored in a database


def test_any_text_in_a_result_comes_back_as_sent(app_from, start_worker) -> None:
    # States travel to Redis as NUL-joined JSON texts (results.py): a NUL, a control
    # character or non-ASCII text inside a value must not split or mangle a field.
    app = app_from("features")
    start_worker("features", "-Q", "feat")
    text = 'a\x00b\x01\n"é☃😀'
    handles = [app.tasks[F + "add"].delay(text, str(i)) for i in range(20)]
    assert [h.get(timeout=10) for h in handles] == [text + str(i) for i in range(20)]
    assert handles[3].info.extra["args"].startswith('{"args": ["a\\u0000b')


def test_get_raises_the_remote_error(app_from, start_worker) -> None:
    app = app_from("features")
    start_worker("features", "-Q", "feat")
    handle = app.tasks[F + "divide"].delay(1, 0)
    with pytest.raises(TaskFailed) as caught:
        handle.get(timeout=10)
    assert caught.value.state == "FAILURE"
    assert caught.value.remote_type == "builtins.ZeroDivisionError"
    assert "division by zero" in caught.value.remote_message
    assert "ZeroDivisionError" in caught.value.remote_traceback


def test_get_times_out_while_nothing_runs_it(app_from) -> None:
    app = app_from("features")
    handle = app.tasks[F + "add"].delay(1, 1)
    with pytest.raises(TimeoutError, match="still PENDING"):
        handle.get(timeout=0.3)


def test_ignore_result_keeps_the_state_but_not_the_value(app_from, start_worker) -> None:
    app = app_from("features")
    start_worker("features", "-Q", "feat")
    handle = app.tasks[F + "fire_and_forget"].delay(7)
    assert handle.get(timeout=10) is None
    assert handle.state == State.SUCCESS


def test_a_result_that_is_not_json_is_a_failure(app_from, start_worker) -> None:
    app = app_from("features")
    start_worker("features", "-Q", "feat")
    with pytest.raises(TaskFailed, match="not JSON"):
        app.tasks[F + "not_json"].delay().get(timeout=10)


def test_progress_is_visible_while_the_task_runs(app_from, start_worker, rdb, redis_prefix) -> None:
    app = app_from("features")
    start_worker("features", "-Q", "feat")
    handle = app.tasks[F + "steps"].apply_async((4,), task_id="document-123")
    assert handle.id == "document-123"
    wait_events(rdb, redis_prefix, "step", 2)
    seen = None
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (seen is None or seen["current"] < 2):
        seen = handle.progress
        time.sleep(0.05)
    assert seen["total"] == 4 and seen["current"] >= 2 and seen["message"].startswith("step")
    assert handle.state in {State.PROGRESS, State.SUCCESS}
    assert handle.get(timeout=10) == "done"
    assert handle.info.extra["started_at"] <= handle.info.extra["success_at"]
    assert handle.progress == {"current": 4, "total": 4, "message": "step 4"}
    assert {e["id"] for e in events(rdb, redis_prefix, "step")} == {"document-123"}
    assert {e["attempt"] for e in events(rdb, redis_prefix, "step")} == {1}


def test_revoke_before_it_runs_skips_it(app_from, start_worker, probe: Probe) -> None:
    app = app_from("features")
    add = app.tasks[F + "add"]
    handle = add.delay(1, 2)
    handle.revoke()
    assert handle.state == State.REVOKED
    start_worker("features", "-Q", "feat")
    later = add.delay(3, 4)
    assert later.get(timeout=10) == 7
    assert handle.state == State.REVOKED
    assert probe.depth("feat") == 0 and probe.depth("feat.dead") == 0
    with pytest.raises(TaskFailed, match="REVOKED"):
        handle.get(timeout=1)


def test_revoke_reaches_a_running_worker_before_the_task_starts(
    app_from, start_worker, rdb, redis_prefix
) -> None:
    # The worker learns of the revocation over pub/sub while the message waits behind
    # a busy slot; it must skip it from its in-memory list, not run it.
    app = app_from("features")
    start_worker("features", "-Q", "feat", "--concurrency", "1")
    busy = app.tasks[F + "stuck"].delay(1.0)
    wait_events(rdb, redis_prefix, "start", 1)
    add = app.tasks[F + "add"]
    revoked = add.delay(1, 2)
    revoked.revoke()
    later = add.delay(3, 4)
    assert later.get(timeout=10) == 7  # queued after the revoked one: it was handled by now
    assert busy.state == State.SUCCESS
    assert revoked.state == State.REVOKED


def test_revoke_with_terminate_cancels_a_running_async_task(
    app_from, start_worker, rdb, redis_prefix
) -> None:
    app = app_from("features")
    start_worker("features", "-Q", "feat")
    handle = app.tasks[F + "long_async"].delay(30)
    wait_events(rdb, redis_prefix, "start", 1)
    handle.revoke(terminate=True)
    with pytest.raises(TaskFailed):
        handle.get(timeout=5)
    assert handle.state == State.REVOKED


def test_revoke_with_terminate_reaches_a_cooperative_sync_task(
    app_from, start_worker, rdb, redis_prefix
) -> None:
    app = app_from("features")
    start_worker("features", "-Q", "feat")
    handle = app.tasks[F + "cooperative"].delay(30)
    wait_events(rdb, redis_prefix, "start", 1)
    started = time.monotonic()
    handle.revoke(terminate=True)
    with pytest.raises(TaskFailed):
        handle.get(timeout=5)
    assert handle.state == State.REVOKED
    assert time.monotonic() - started < 2


def test_soft_time_limit_lets_the_task_clean_up(
    app_from, start_worker, rdb, redis_prefix, probe: Probe
) -> None:
    app = app_from("features")
    start_worker("features", "-Q", "feat")
    sync = app.tasks[F + "soft_sync"].delay()
    assert sync.get(timeout=5) == "cleaned up"
    async_ = app.tasks[F + "soft_async"].delay()
    with pytest.raises(TaskFailed) as caught:
        async_.get(timeout=5)
    assert caught.value.remote_type == "taskcore.errors.SoftTimeLimitExceeded"
    assert len(events(rdb, redis_prefix, "cleanup")) == 2
    assert probe.wait_depth("feat.dead", 1) == 1


def test_higher_priorities_run_first(app_from, start_worker, rdb, redis_prefix) -> None:
    app = app_from("features")
    ordered = app.tasks[F + "ordered"]
    for i in range(5):
        ordered.apply_async((f"low{i}",), priority=1)
    ordered.apply_async(("urgent",), priority=9)
    ordered.apply_async(("normal",))
    start_worker("features", "-Q", "prio", "--concurrency", "1")
    tags = [e["tag"] for e in wait_events(rdb, redis_prefix, "ordered", 7)]
    assert tags[0] == "urgent"
    assert tags[1:6] == [f"low{i}" for i in range(5)]
    assert tags[6] == "normal"  # no priority is priority 0


def test_priority_must_be_0_to_9(app_from) -> None:
    from taskcore import ConfigurationError

    app = app_from("features")
    with pytest.raises(ConfigurationError, match="0 to 9"):
        app.tasks[F + "ordered"].apply_async(("x",), priority=10)


def test_an_idempotency_key_runs_the_effect_once(app_from, start_worker, rdb, redis_prefix) -> None:
    app = app_from("features")
    confirm = app.tasks[F + "confirm_order"]
    first = confirm.delay(42)
    second = confirm.delay(42)
    assert second.id == first.id  # points at the first
    other = confirm.delay(43)
    assert other.id != first.id
    worker = start_worker("features", "-Q", "feat")
    wait_events(rdb, redis_prefix, "confirm", 1)
    worker.signal(9)  # killed mid-task: the message comes back
    worker.wait(10)
    start_worker("features", "-Q", "feat")
    assert first.get(timeout=15) == "confirmed 42"
    assert confirm.delay(42).id == first.id  # succeeded within the window: not run again
    other.get(timeout=15)
    time.sleep(0.5)
    assert rdb.get(redis_prefix + "effect:42") == "1"
    assert rdb.get(redis_prefix + "effect:43") == "1"


def test_with_results_off_workers_store_nothing_and_reads_say_why(
    app_from, start_worker, cli, rdb, redis_prefix, namespace, monkeypatch
) -> None:
    off = {"TASKCORE_STORE_RESULTS": "0"}
    monkeypatch.setenv("TASKCORE_STORE_RESULTS", "0")
    app = app_from("features")
    stuck = app.tasks[F + "stuck"]
    spec = ["-A", "tests.apps.features:app"]
    revoked = stuck.delay(0)
    cancelled = cli("cancel", *spec, revoked.id, env_overrides=off)
    assert cancelled.returncode == 0 and "revoked; state not stored" in cancelled.stdout
    start_worker("features", "-Q", "feat", "--concurrency", "1", env=off)
    ran = stuck.delay(0)
    assert [e["id"] for e in wait_events(rdb, redis_prefix, "start", 1)] == [ran.id]
    with pytest.raises(ConfigurationError, match="TASKCORE_STORE_RESULTS is off"):
        ran.get(timeout=1)
    with pytest.raises(ConfigurationError, match="TASKCORE_STORE_RESULTS is off"):
        app.tasks[F + "confirm_order"].delay(1)  # an idempotency key needs stored states
    shown = cli("result", *spec, ran.id, env_overrides=off)
    assert shown.returncode == 1 and "TASKCORE_STORE_RESULTS is off" in shown.stderr
    time.sleep(0.3)  # let the worker write whatever it would write
    assert list(rdb.scan_iter(f"{namespace}:task:*")) == []
    assert len(events(rdb, redis_prefix, "start")) == 1  # the revoked one never ran


def test_progress_reported_at_once_is_not_overwritten_by_started(
    app_from, start_worker, rdb, redis_prefix
) -> None:
    # STARTED is written for a task still running after a short while, or before its
    # first progress report; never after that report, which would hide the progress.
    app = app_from("features")
    start_worker("features", "-Q", "feat")
    handle = app.tasks[F + "steps"].delay(2)
    wait_events(rdb, redis_prefix, "step", 1)
    time.sleep(0.15)  # past the STARTED timer, before step 2 (0.3 s)
    assert handle.state == State.PROGRESS
    assert handle.progress == {"current": 1, "total": 2, "message": "step 1"}
    assert handle.get(timeout=10) == "done"
    assert handle.info.extra["started_at"] <= handle.info.extra["progress_at"]


@pytest.mark.parametrize("name", ["progress_to_the_end", "progress_to_the_end_async"])
def test_progress_reported_just_before_returning_never_hides_the_final_state(
    app_from, start_worker, name: str
) -> None:
    # Progress is written in the background: a report made just before the task returned
    # must land before its SUCCESS, never after it (the state would go back to PROGRESS).
    app = app_from("features")
    start_worker("features", "-Q", "feat")
    task = app.tasks[F + name]
    handles = [task.delay(3) for _ in range(150)]
    assert [h.get(timeout=30) for h in handles] == [3] * 150
    time.sleep(0.3)  # a late PROGRESS write would have landed by now
    infos = [h.info for h in handles]
    assert {i.state for i in infos} == {State.SUCCESS}
    assert all(i.progress == {"current": 3, "total": 3, "message": "rows"} for i in infos)


def test_a_retry_that_runs_at_once_ends_in_success_not_retry(app_from, start_worker) -> None:
    # RETRY is recorded before the next attempt is sent: recorded after, it could land
    # after that attempt's SUCCESS and stay (the next attempt may run in another process
    # while this one waits for a core; the drills saw it under load, an idle run rarely).
    app = app_from("features")
    start_worker("features", "-Q", "feat", "--processes", "2")
    handles = [app.tasks[F + "retry_at_once"].delay() for _ in range(200)]
    assert [h.get(timeout=30) for h in handles] == ["second"] * 200
    time.sleep(0.3)  # a late RETRY write would have landed by now
    infos = [h.info for h in handles]
    assert {i.state for i in infos} == {State.SUCCESS}
    assert {i.attempts for i in infos} == {2}
