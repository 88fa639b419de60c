"""Task signals: hooks for error reporting and audits, beside the task, never in its way."""

from __future__ import annotations

import json
import time

import pytest

from taskcore import ConfigurationError, TaskApp, TaskFailed

S = "tests.apps.signalled."


def signals_seen(rdb, prefix: str, count: int, timeout: float = 15.0) -> list[list[str]]:
    deadline = time.monotonic() + timeout
    while len(seen := rdb.lrange(prefix + "signals", 0, -1)) < count:
        assert time.monotonic() < deadline, seen
        time.sleep(0.05)
    return [json.loads(item) for item in seen]


def test_hooks_see_successes_retries_failures_and_dead_letters(
    app_from, start_worker, rdb, redis_prefix
) -> None:
    app = app_from("signalled")
    worker = start_worker("signalled", "-Q", "signalled")
    good = app.tasks[S + "ok"].delay(1)
    assert good.get(timeout=15) == 1  # the hook that raises on "started" changed nothing
    failing = app.tasks[S + "fails"].delay(2)
    with pytest.raises(TaskFailed):
        failing.get(timeout=15)
    refused = app.tasks[S + "refuses"].delay(3)
    with pytest.raises(TaskFailed):
        refused.get(timeout=15)
    seen = signals_seen(rdb, redis_prefix, 4)
    assert ["succeeded", S + "ok", good.id] in seen
    by_signal = {(s[0], s[2]): s for s in seen if s[0] != "succeeded"}
    retried = by_signal[("retried", failing.id)]
    assert retried[3] == "builtins.ValueError" and retried[4].startswith("taskcore-")
    assert by_signal[("failed", failing.id)][3] == "builtins.ValueError"
    assert by_signal[("dead_lettered", refused.id)][3] == "taskcore.errors.Reject"
    assert len(seen) == 4
    worker.wait_for_output("task signal hook")
    assert "RuntimeError: a hook with a bug" in worker.output


def test_an_unknown_signal_name_is_refused_with_the_known_ones() -> None:
    app = TaskApp("signals")
    with pytest.raises(ConfigurationError, match=r"'finished'.*succeeded, failed"):
        app.on_task("finished")
    with pytest.raises(ConfigurationError, match="none given"):
        app.on_task()
    app.close()
