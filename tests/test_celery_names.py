"""Celery's idioms (bound tasks, self.retry, update_state, shared_task, AsyncResult) on taskcore."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from taskcore import (
    AsyncResult,
    ConfigurationError,
    EncodeError,
    Retry,
    State,
    TaskApp,
    TaskFailed,
    UnsupportedFeature,
    current_app,
)

from .broker_tools import Probe

C = "tests.apps.celery_style."


def requests_seen(rdb, prefix: str) -> list[dict]:
    return [json.loads(item) for item in rdb.lrange(prefix + "requests", 0, -1)]


def test_a_bound_task_sees_its_request_retries_and_then_succeeds(
    app_from, start_worker, rdb, redis_prefix
) -> None:
    app = app_from("celery_style")
    task = app.tasks[C + "send_order_sms"]
    task.check_arguments((42,), {"failures": 2})  # ``self`` is not an argument of the call
    with pytest.raises(TypeError, match="send_order_sms"):
        task.delay(42, 2, None, "one too many")
    start_worker("celery_style", "-Q", "notify", "--hostname", "sms-worker@%h")
    handle = task.delay(42, failures=2)
    assert handle.get(timeout=15) == "order 42: sms sent"
    seen = requests_seen(rdb, redis_prefix)
    assert [r["retries"] for r in seen] == [0, 1, 2]
    for request in seen:
        assert request["id"] == handle.id and request["task"] == C + "send_order_sms"
        assert request["hostname"].startswith("sms-worker@")
        assert request["delivery_info"]["queue"] == "notify"
        assert request["delivery_info"]["routing_key"] == "notify"
        assert request["args"] == [42] and request["kwargs"] == {"failures": 2}
        assert request["called_directly"] is False
    assert handle.info.attempts == 3


def test_retry_with_max_retries_zero_dead_letters_the_original_error(
    app_from, start_worker, rdb, redis_prefix, probe: Probe
) -> None:
    app = app_from("celery_style")
    start_worker("celery_style", "-Q", "notify")
    handle = app.tasks[C + "send_order_sms"].delay(7, failures=5, retry_limit=0)
    with pytest.raises(TaskFailed) as caught:
        handle.get(timeout=15)
    assert caught.value.state == "FAILURE"
    assert caught.value.remote_type == "tests.apps.celery_style.GatewayError"
    assert "gateway timeout for order 7" in caught.value.remote_message
    assert len(requests_seen(rdb, redis_prefix)) == 1  # the override allowed no retry (3 declared)
    [dead] = probe.get_all("notify.dead")
    assert dead.message_id == handle.id
    assert dead.headers["x-taskcore-reason"] == "max-retries-exceeded"
    assert dead.headers["x-taskcore-exception-type"] == "tests.apps.celery_style.GatewayError"


def test_update_state_progress_is_visible_through_async_result(
    app_from, start_worker, rdb, redis_prefix
) -> None:
    app = app_from("celery_style")
    start_worker("celery_style", "-Q", "notify")
    handle = app.tasks[C + "export_order_history"].delay(9, 2)
    result = AsyncResult(handle.id)  # no app given: the current one
    assert result.app is app and result.id == result.task_id == handle.id
    for page in (1, 2):
        deadline = time.monotonic() + 5
        while result.info != {"current": page, "total": 2, "customer": 9}:
            assert time.monotonic() < deadline, f"page {page} never shown: {result.details}"
            time.sleep(0.05)
        assert result.status == "PROGRESS" and result.state == State.PROGRESS
        assert not result.ready() and not result.successful() and not result.failed()
        assert result.progress["current"] == page and result.progress["total"] == 2
        rdb.rpush(redis_prefix + "continue", "go")
    assert result.get(timeout=10) == {"customer": 9, "pages": 2}
    assert result.status == "SUCCESS" and result.successful() and not result.failed()
    assert result.result == result.info == {"customer": 9, "pages": 2}


def test_async_result_of_a_failed_task_in_celery_terms(app_from, start_worker) -> None:
    app = app_from("celery_style")
    start_worker("celery_style", "-Q", "notify")
    handle = app.tasks[C + "send_order_sms"].delay(8, failures=1, retry_limit=0)
    result = AsyncResult(handle.id, app=app)
    failure = result.get(timeout=15, propagate=False)
    assert isinstance(failure, TaskFailed) and failure.remote_type.endswith("GatewayError")
    assert result.failed() and not result.successful() and result.status == "FAILURE"
    assert isinstance(result.result, TaskFailed) and "GatewayError" in result.traceback


def test_shared_tasks_join_every_app_and_send_through_the_current_one(
    app_from, start_worker
) -> None:
    app = app_from("celery_style")
    from tests.apps import celery_style

    assert current_app() is app
    assert celery_style.order_total.name == C + "order_total" and C + "order_total" in app.tasks
    assert celery_style.order_total([1.25, 2.5]) == 3.75  # called directly, runs here
    later = TaskApp("later")  # created after the declaration: gets the shared tasks too
    assert C + "confirm_order" in later.tasks
    assert current_app() is later
    app.set_default()
    assert current_app() is app
    later.close()
    start_worker("celery_style", "-Q", "default,notify")
    assert celery_style.order_total.delay([1.5, 2.25]).get(timeout=10) == 3.75
    confirmed = celery_style.confirm_order.delay(5)  # bound, retries after default_retry_delay
    assert confirmed.queue == "notify"
    assert confirmed.get(timeout=10) == "order 5 confirmed after 1 retry"
    assert celery_style.checkout(9, [1.5, 2.25]).get(timeout=10) == "order 9: 3.75"  # a chain


def test_what_does_not_carry_over_is_refused_with_what_to_use(app_from) -> None:
    app = app_from("celery_style")

    def fn(order_id: int) -> None: ...

    with pytest.raises(UnsupportedFeature, match="JSON only"):
        app.task(serializer="pickle")(fn)
    with pytest.raises(ConfigurationError, match="after its outcome is stored"):
        app.task(acks_late=False)(fn)
    with pytest.raises(ConfigurationError, match="first positional parameter"):
        app.task(bind=True)(lambda: None)
    task = app.tasks[C + "export_order_history"]
    with pytest.raises(UnsupportedFeature, match='state="PROGRESS"'):
        task.update_state(state="SHIPPING", meta={"current": 1})
    with pytest.raises(RuntimeError, match="only inside the running task"):
        task.update_state(state="PROGRESS", meta={"current": 1})
    assert task.request.id is None and task.request.called_directly


def test_self_retry_turns_eta_and_default_retry_delay_into_the_wait(app_from) -> None:
    app = app_from("celery_style")
    confirm = app.tasks[C + "confirm_order"]
    with pytest.raises(Retry) as caught:
        confirm.retry()
    assert caught.value.countdown == 0.1 and caught.value.max_retries is None
    soon = datetime.now(UTC) + timedelta(seconds=30)
    error = ValueError("gateway down")
    with pytest.raises(Retry) as caught:
        confirm.retry(exc=error, eta=soon, max_retries=5)
    assert 29 < caught.value.countdown <= 30
    assert caught.value.exc is error and caught.value.max_retries == 5
    with pytest.raises(ConfigurationError, match="not both"):
        confirm.retry(countdown=1, eta=soon)


def test_update_state_meta_must_be_json(app_from) -> None:
    app = app_from("celery_style")
    task = app.tasks[C + "export_order_history"]
    with pytest.raises(EncodeError, match="not JSON"):
        task.update_state(state="PROGRESS", meta={"current": object()})


def test_celery_setting_names_say_what_to_use_instead() -> None:
    with pytest.raises(ConfigurationError, match="no eager mode for production"):
        TaskApp("celery-habits", task_always_eager=True)
    with pytest.raises(ConfigurationError, match="pickle is not supported"):
        TaskApp("celery-habits", task_serializer="pickle")
    with pytest.raises(ConfigurationError, match=r"unknown setting\(s\): no_such_thing$"):
        TaskApp("celery-habits", no_such_thing=1)
