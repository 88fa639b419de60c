"""`taskcore worker --processes N`: replacement, recycling, limits, terminate, bad start."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from taskcore import State, TaskFailed

from .broker_tools import Probe
from .conftest import ROOT
from .worker_log import wait_events

F = "tests.apps.features."


def child_pids(worker) -> list[int]:
    return [int(p) for p in re.findall(r"started worker process (\d+)", worker.output)]


def test_a_dead_process_is_replaced_and_its_message_redelivered(
    app_from, start_worker, rdb, redis_prefix
) -> None:
    app = app_from("features")
    worker = start_worker("features", "-Q", "feat", "--processes", "2")
    worker.wait_for_output("started worker process", timeout=5)
    handle = app.tasks[F + "stuck"].delay(1.5)
    (start,) = wait_events(rdb, redis_prefix, "start", 1)
    os.kill(start["pid"], signal.SIGKILL)
    worker.wait_for_output("was killed by SIGKILL", timeout=10)
    assert handle.get(timeout=20) is None  # redelivered to a live process and finished
    assert len(child_pids(worker)) == 3  # two at start, one replacement
    assert worker.proc.poll() is None


def test_max_tasks_per_child_recycles_the_process(app_from, start_worker) -> None:
    app = app_from("features")
    start_worker("features", "-Q", "feat", "--max-tasks-per-child", "2", "-c", "1")
    whoami = app.tasks[F + "whoami"]
    pids = [whoami.delay().get(timeout=15) for _ in range(6)]
    assert len(set(pids)) == 3, pids
    assert pids[0] == pids[1] and pids[2] == pids[3] and pids[4] == pids[5]


def test_hard_time_limit_ends_the_process_and_fails_the_task(
    app_from, start_worker, rdb, redis_prefix, probe: Probe
) -> None:
    app = app_from("features")
    worker = start_worker("features", "-Q", "feat")
    handle = app.tasks[F + "stubborn"].delay()
    with pytest.raises(TaskFailed) as caught:
        handle.get(timeout=10)
    assert caught.value.remote_type == "taskcore.errors.TimeLimitExceeded"
    assert probe.wait_depth("feat.dead", 1) == 1
    worker.wait_for_output("asked to be replaced")
    assert app.tasks[F + "add"].delay(1, 1).get(timeout=15) == 2  # the new process works


def test_terminate_ends_a_sync_task_that_ignores_it(
    app_from, start_worker, rdb, redis_prefix, probe: Probe
) -> None:
    app = app_from("features")
    worker = start_worker("features", "-Q", "feat")
    handle = app.tasks[F + "stuck"].delay(60)
    wait_events(rdb, redis_prefix, "start", 1)
    handle.revoke(terminate=True)
    with pytest.raises(TaskFailed):
        handle.get(timeout=10)
    assert handle.state == State.REVOKED
    worker.wait_for_output("asked to be replaced")
    assert probe.wait_depth("feat", 0) == 0  # acked: not delivered again
    assert app.tasks[F + "add"].delay(2, 2).get(timeout=15) == 4


def test_sigterm_drains_every_process(app_from, start_worker, rdb, redis_prefix) -> None:
    app = app_from("features")
    worker = start_worker("features", "-Q", "feat", "--processes", "2", "-c", "1")
    handles = [app.tasks[F + "stuck"].delay(1.0) for _ in range(2)]
    wait_events(rdb, redis_prefix, "start", 2)
    worker.signal(signal.SIGTERM)
    assert worker.wait(20) == 0
    assert all(h.state == State.SUCCESS for h in handles)


def test_an_unreachable_broker_stops_the_worker_with_a_clear_message(task_env) -> None:
    env = {**os.environ, **task_env, "TASKCORE_BROKER_URL": "amqp://guest:pw@127.0.0.1:1/"}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "workers", "worker", "-A", "tests.apps.features:app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "cannot reach the broker at amqp://guest@127.0.0.1:1/" in done.stderr
    assert "pw@" not in done.stderr
    assert time.monotonic() - started < 20


def test_a_worker_for_an_app_that_cannot_be_imported_says_why(task_env) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "workers", "worker", "-A", "tests.apps.nope:app", "-p", "2"],
        cwd=ROOT,
        env={**os.environ, **task_env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "cannot start: cannot import 'tests.apps.nope'" in done.stderr
    assert "worker process could not start; stopping" in done.stderr
