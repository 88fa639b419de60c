"""taskcore.testing: the in-process mode (against the real Redis; nothing reaches RabbitMQ),
a real worker started by the plugin's fixture, join, and the plugin itself (pytester)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from typing import Any

import aio_pika
import pytest

from taskcore import (
    EncodeError,
    PayloadTooLarge,
    State,
    TaskApp,
    TaskFailed,
    chain,
    chord,
    group,
    testing,
)
from taskcore.message import TaskMessage, new_task_id
from taskcore.testing import InProcessRefused, join, queue_depths, run_in_process

from .apps import testing_app as tasks
from .conftest import REDIS_URL, ROOT

pytest_plugins = ["pytester"]

T = "tests.apps.testing_app."


@pytest.fixture
def app(app_from: Callable[[str], TaskApp]) -> TaskApp:
    """tests/apps/testing_app.py's app, on this test's vhost and Redis namespace."""
    return app_from("testing_app")


def stored_keys(app: TaskApp, rdb: Any) -> list[str]:
    return list(rdb.scan_iter(f"{app.settings.namespace}:*"))


# -- in-process ---------------------------------------------------------------------------


def test_a_call_runs_before_delay_returns_and_nothing_reaches_the_broker(
    app: TaskApp, rdb: Any
) -> None:
    with run_in_process(app) as calls:
        handle = tasks.add.delay(2, 3)
        assert handle.state == State.SUCCESS  # already: no waiting, no polling
        assert handle.get(timeout=0) == 5
        assert tasks.double.delay(21).get(timeout=0) == 42  # async def tasks too
        assert handle.info.worker == "in-process"
        assert stored_keys(app, rdb)  # states live in Redis, as a worker writes them
    assert [(c.task, c.state, c.args, c.result) for c in calls] == [
        (T + "add", State.SUCCESS, [2, 3], 5),
        (T + "double", State.SUCCESS, [21], 42),
    ]
    assert calls[0].id == handle.id and calls.named(tasks.add) == [calls[0]]
    assert len(calls[0].attempts) == 1
    # Nothing was published: the work queue was never even declared.
    assert queue_depths(app, ["testing"]) == {"testing": None}
    assert stored_keys(app, rdb) == []  # what the runs wrote is gone


def test_current_task_and_self_request_work_inside(app: TaskApp) -> None:
    with run_in_process(app) as calls:
        handle = tasks.reporting.delay(3)
        assert handle.get(timeout=0) == {"id": handle.id, "attempt": 1, "queue": "testing"}
        assert handle.progress == {"current": 3, "total": 3, "message": "step 3"}
        bound = tasks.who_am_i.delay()
        assert bound.get(timeout=0) == {"id": bound.id, "task": T + "who_am_i", "retries": 0}
    assert calls[0].progress[-1] == {"current": 3, "total": 3, "message": "step 3"}


def test_arguments_that_are_not_json_fail_as_a_real_send_does(app: TaskApp) -> None:
    with pytest.raises(EncodeError) as real:
        tasks.add.delay({1: "a"}, 2)  # the app on the real broker
    with run_in_process(app) as calls:
        with pytest.raises(EncodeError) as in_process:
            tasks.add.delay({1: "a"}, 2)
        with pytest.raises(EncodeError, match="must be JSON"):
            tasks.add.delay(object(), 2)
    assert str(in_process.value) == str(real.value)
    assert "keys must be str" in str(in_process.value)
    assert len(calls) == 0  # refused before anything ran


def test_arguments_that_do_not_fit_the_signature_fail_as_for_real(app: TaskApp) -> None:
    with pytest.raises(TypeError) as real:
        tasks.add.delay(1)
    with run_in_process(app) as calls:
        with pytest.raises(TypeError) as in_process:
            tasks.add.delay(1)
        # A message from a producer that does not check (another service, an older
        # version): the worker's own check dead-letters it.
        message = TaskMessage(new_task_id(), T + "add", "testing", [1, 2, 3], {})
        app.publish([(message, 0.0)])
        status = app.status(message.id)
    assert str(in_process.value) == str(real.value) == f"{T}add: missing a required argument: 'b'"
    assert status.state == State.DEAD and status.extra["reason"] == "invalid-arguments"
    assert status.error["type"] == "builtins.TypeError"
    assert status.error["message"] == f"{T}add: too many positional arguments"
    assert [(c.state, c.reason) for c in calls] == [(State.DEAD, "invalid-arguments")]


def test_retries_run_at_once_and_every_attempt_is_visible(app: TaskApp) -> None:
    with run_in_process(app) as calls:
        started = time.monotonic()
        handle = tasks.slow_to_retry.delay(2)  # a worker would wait 15-60 s per retry
        elapsed = time.monotonic() - started
        assert handle.get(timeout=0) == 3
        assert handle.info.attempts == 3
    assert elapsed < 2.0
    (call,) = calls
    assert [a.state for a in call.attempts] == [State.RETRY, State.RETRY, State.SUCCESS]
    assert [a.error["message"] for a in call.attempts[:2]] == [
        "attempt 1 failed",
        "attempt 2 failed",
    ]
    assert all(a.error["type"] == "builtins.ConnectionError" for a in call.attempts[:2])
    assert 15.0 <= call.attempts[0].retry_in <= 30.0  # the wait that was skipped
    assert call.state == State.SUCCESS and call.result == 3


def test_a_task_past_max_retries_fails_and_get_raises_task_failed(app: TaskApp) -> None:
    with run_in_process(app) as calls:
        handle = tasks.flaky.delay(10)
        assert handle.state == State.FAILURE
        with pytest.raises(TaskFailed) as failed:
            handle.get(timeout=0)
    assert failed.value.state == "FAILURE"
    assert failed.value.remote_type == "builtins.ConnectionError"
    assert failed.value.remote_message == "attempt 4 failed"
    assert "ConnectionError" in failed.value.remote_traceback
    (call,) = calls
    assert len(call.attempts) == 4  # the first and max_retries=3 more
    assert call.state == State.FAILURE and call.reason == "max-retries-exceeded"


def test_rejects_bad_results_and_unknown_tasks_end_as_on_a_worker(app: TaskApp) -> None:
    with run_in_process(app) as calls:
        bad_result = tasks.not_json.delay()
        with pytest.raises(TaskFailed, match=r"EncodeError: .* not JSON"):
            bad_result.get(timeout=0)
        rejected = tasks.refuse.delay("no thanks")
        unknown = app.send_task("no.such.task")
        assert (rejected.state, unknown.state) == (State.DEAD, State.DEAD)
        assert unknown.info.error["type"] == "taskcore.execution.UnknownTask"
    assert [c.reason for c in calls] == ["failed", "rejected", "unknown-task"]


def test_what_a_task_sends_runs_after_it_and_workflows_run(app: TaskApp) -> None:
    with run_in_process(app) as calls:
        children = tasks.fan_out.delay(3).get(timeout=0)
        assert [app.result(i).get(timeout=0) for i in children] == [0, 2, 4]
        assert chain(tasks.add.s(1, 2), tasks.add.s(3), tasks.double.s()).delay().get(0) == 12
        assert group(tasks.add.s(i, 1) for i in range(3)).delay().get(timeout=0) == [1, 2, 3]
        members = group(tasks.double.s(i) for i in range(3))
        summed = chord(members, tasks.add.s(100)).delay()  # add([0, 2, 4], 100) fails
        stopped = chain(tasks.refuse.si("stop"), tasks.add.s(1)).delay()
        assert stopped.state == State.FAILURE
        assert stopped.info.error["type"] == "taskcore.ChainStopped"
    # The fan-out's adds ran after it, in the order sent.
    assert [c.task for c in calls[:4]] == [T + "fan_out", T + "add", T + "add", T + "add"]
    assert [c.id for c in calls[1:4]] == children
    (callback,) = [c for c in calls if c.id == summed.id]
    assert callback.args == [[0, 2, 4], 100] and callback.state == State.FAILURE


def test_the_mode_survives_configure_and_is_undone_on_exit(app: TaskApp, rdb: Any) -> None:
    with run_in_process(app) as calls:
        app.configure(max_args_bytes=200)  # a Flask factory does this on create_app
        with pytest.raises(PayloadTooLarge):
            tasks.add.delay("x" * 300, "y")
        tasks.add.delay(1, 1)
        with pytest.raises(Exception, match="already runs its tasks in-process"):
            run_in_process(app).__enter__()
    assert [c.result for c in calls] == [2]
    assert queue_depths(app, ["testing"]) == {"testing": None}
    assert stored_keys(app, rdb) == []
    tasks.add.delay(1, 1)  # published for real again
    assert queue_depths(app, ["testing"])["testing"][0] == 1


def test_a_coroutine_may_send_in_process(app: TaskApp) -> None:
    async def view() -> int:  # e.g. an async test or framework: its loop runs here
        return tasks.double.delay(4).get(timeout=0)

    with run_in_process(app):
        assert asyncio.run(view()) == 8


def test_what_a_task_leaves_running_is_cancelled_not_waited_for_ever(
    app: TaskApp, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(testing, "BACKGROUND_WAIT", 0.3)
    with run_in_process(app):
        started = time.monotonic()
        assert tasks.leaves_a_task_running.delay().get(timeout=0) == "done"
    assert time.monotonic() - started < 3.0
    assert "cancelling 1 task(s) still running in-process" in caplog.text


def test_the_guard_refuses_outside_pytest_and_allows_with_the_variable(namespace: str) -> None:
    code = textwrap.dedent(
        """
        import sys
        from taskcore.testing import run_in_process
        assert "pytest" not in sys.modules, "taskcore.testing imported pytest"
        from tests.apps.testing_app import add, app
        with run_in_process(app):
            print("result", add.delay(2, 3).get(timeout=0))
        """
    )
    env = {
        "PATH": os.environ["PATH"],
        # No broker listens there: in-process, nothing needs one.
        "TASKCORE_BROKER_URL": "amqp://guest:guest@127.0.0.1:1/",
        "TASKCORE_REDIS_URL": REDIS_URL,
        "TASKCORE_NAMESPACE": namespace,
    }

    def run(extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=60,
        )

    refused = run({})
    assert refused.returncode == 1, refused.stderr
    assert InProcessRefused.__name__ in refused.stderr
    assert "only switches on under pytest" in refused.stderr
    assert "TASKCORE_ALLOW_IN_PROCESS=1" in refused.stderr
    assert "result" not in refused.stdout

    allowed = run({"TASKCORE_ALLOW_IN_PROCESS": "1"})
    assert allowed.returncode == 0, allowed.stderr
    assert allowed.stdout.strip() == "result 5"
    assert "tasks run in-process: nothing is sent to RabbitMQ" in allowed.stderr


# -- a real worker, and join ----------------------------------------------------------------


def outcomes_of(app: TaskApp) -> dict[str, Callable[[], str]]:
    """Calls that end every way a task can end; each returns its task id."""

    def unchecked() -> str:
        message = TaskMessage(new_task_id(), T + "add", "testing", [1], {})
        app.publish([(message, 0.0)])
        return message.id

    return {
        "success": lambda: tasks.add.delay(2, 3).id,
        "async": lambda: tasks.double.delay(5).id,
        "retried, then succeeded": lambda: tasks.flaky.delay(2).id,
        "past max_retries": lambda: tasks.flaky.delay(9).id,
        "result not JSON": lambda: tasks.not_json.delay().id,
        "rejected": lambda: tasks.refuse.delay("no thanks").id,
        "unknown task": lambda: app.send_task(T + "missing", queue="testing").id,
        "arguments do not fit": unchecked,
    }


def summary(app: TaskApp, task_id: str) -> tuple[Any, ...]:
    status = app.status(task_id)
    error = status.error or {}
    return (
        status.state,
        status.result,
        status.attempts,
        status.extra.get("reason"),
        error.get("type"),
        error.get("message"),
    )


def test_in_process_and_a_real_worker_end_every_call_the_same_way(
    app: TaskApp, taskcore_worker: Any
) -> None:
    with run_in_process(app):
        in_process = {name: summary(app, send()) for name, send in outcomes_of(app).items()}
    sent = {name: send() for name, send in outcomes_of(app).items()}
    worker = taskcore_worker(app, ["testing"])
    worker.join(timeout=30)
    for_real = {name: summary(app, task_id) for name, task_id in sent.items()}
    assert for_real == in_process
    assert for_real["past max_retries"][:4] == (State.FAILURE, None, 4, "max-retries-exceeded")
    assert for_real["retried, then succeeded"][:3] == (State.SUCCESS, "succeeded on attempt 3", 3)
    assert for_real["arguments do not fit"][3] == "invalid-arguments"


def test_join_waits_for_running_tasks_and_retries_in_the_delay_queues(
    app: TaskApp, taskcore_worker: Any
) -> None:
    slow = tasks.sleep_then_add.delay(1.5, 1, 2)
    retried = tasks.flaky.delay(1)  # its retry waits 0.2 s in the delay queues
    quick = [tasks.add.delay(i, i) for i in range(20)]
    worker = taskcore_worker(app, "testing", "--concurrency", "4")
    started = time.monotonic()
    worker.join(timeout=30)
    # Joined only once everything had ended: the slow task was held, unacknowledged and
    # out of the queue's count, for most of the wait.
    assert time.monotonic() - started >= 1.0
    assert [h.state for h in (slow, retried, *quick)] == [State.SUCCESS] * 22
    assert slow.get(timeout=0) == 3 and retried.get(timeout=0) == "succeeded on attempt 2"
    assert queue_depths(app, ["testing"])["testing"] == (0, 1)


def test_join_times_out_naming_the_queue_and_what_is_left(app: TaskApp) -> None:
    tasks.add.delay(1, 2)
    tasks.add.delay(3, 4)
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"after 0\.5s \(testing: 2 ready, 0 held"):
        join(app, ["testing"], timeout=0.5)
    assert time.monotonic() - started < 3.0
    with pytest.raises(Exception, match="no queue named nowhere"):
        join(app, ["nowhere"], timeout=0.5)

    # A consumer that is no taskcore worker takes both and never acks: the queue reads
    # empty, but join cannot know what that consumer holds, so it does not return.
    async def consume_without_ack() -> Any:
        connection = await aio_pika.connect(app.settings.broker_url)
        channel = await connection.channel()
        queue = await channel.declare_queue("testing", passive=True)

        async def keep(message: Any) -> None:
            pass  # neither acked nor rejected

        await queue.consume(keep)
        return connection

    connection = app.loop.run(consume_without_ack())
    try:
        assert queue_depths(app, ["testing"])["testing"] == (0, 1)
        with pytest.raises(TimeoutError, match=r"testing: 0 ready.*1 consumer\(s\) not answering"):
            join(app, ["testing"], timeout=0.5)
    finally:
        app.loop.run(connection.close())


# -- the pytest plugin ----------------------------------------------------------------------


def test_the_plugin_fixtures_start_join_stop_and_clean_up(
    pytester: pytest.Pytester, task_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in task_env.items():
        monkeypatch.setenv(key, value)
    pytester.makepyfile(
        inner_app=textwrap.dedent(
            """
            import time
            from taskcore import TaskApp

            app = TaskApp("inner")

            @app.task(queue="inner")
            def slow_square(x: int) -> int:
                time.sleep(0.2)
                return x * x
            """
        ),
        test_inner=textwrap.dedent(
            """
            from inner_app import app, slow_square
            from taskcore import State

            def test_in_process(taskcore_in_process):
                calls = taskcore_in_process(app)
                assert slow_square.delay(3).get(timeout=0) == 9
                assert [c.state for c in calls] == [State.SUCCESS]

            def test_published_for_real_again():
                assert app._publisher.__class__.__name__ == "SyncPublisher"

            def note_pid(factory, worker):
                with open(factory.getbasetemp() / "pids", "a") as pids:
                    print(worker.process.pid, file=pids)

            def test_worker_drains(taskcore_worker, tmp_path_factory):
                handles = [slow_square.delay(i) for i in range(6)]
                worker = taskcore_worker(app, ["inner"], "--concurrency", "2")
                note_pid(tmp_path_factory, worker)
                worker.join(timeout=30)
                assert [h.get(timeout=0) for h in handles] == [i * i for i in range(6)]

            def test_a_failure_shows_the_worker_output(taskcore_worker, tmp_path_factory):
                note_pid(tmp_path_factory, taskcore_worker(app, "inner"))
                assert False, "on purpose"
            """
        ),
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=1)
    # The failed test's report shows its worker's log.
    result.stdout.fnmatch_lines(["*taskcore worker inner_app:app*", "*consuming*"])
    pids = (pytester.path / "runpytest-0" / "pids").read_text().split()
    assert len(pids) == 2
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(int(pid), 0)  # stopped at teardown
    # The fixture deleted the queue its workers consumed, and its dead-letter queue.
    inner_app = TaskApp("check")
    assert queue_depths(inner_app, ["inner", "inner.dead"]) == {"inner": None, "inner.dead": None}
    inner_app.close()
