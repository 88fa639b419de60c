"""Chains and groups against a real worker: results flow, failures stop, mistakes refused."""

from __future__ import annotations

import time

import pytest

from taskcore import State, TaskFailed, chain, chord, group

from .broker_tools import Probe

W = "tests.apps.workflows."


def test_a_chain_passes_each_result_on_and_returns_the_last(app_from, start_worker) -> None:
    app = app_from("workflows")
    add, mul = app.tasks[W + "add"], app.tasks[W + "mul"]
    start_worker("workflows", "-Q", "flow")
    handle = chain(add.s(1, 2), mul.s(10), add.s(5)).apply_async()
    assert handle.get(timeout=15) == 35  # (1 + 2) * 10 + 5
    assert (add.s(1, 1) | add.si(100, 1)).delay().get(timeout=15) == 101  # .si ignores 2
    assert (add.s(2) | mul.s(3)).delay(4).get(timeout=15) == 18  # delay's args go first


def test_a_step_that_fails_stops_the_chain_and_says_which(
    app_from, start_worker, probe: Probe
) -> None:
    app = app_from("workflows")
    add, refuse = app.tasks[W + "add"], app.tasks[W + "refuse"]
    start_worker("workflows", "-Q", "flow")
    last = chain(add.s(1, 1), refuse.s(), add.s(1), add.s(2)).apply_async()
    with pytest.raises(TaskFailed) as failed:
        last.get(timeout=15)
    assert failed.value.remote_type == "taskcore.ChainStopped"
    assert f"{W}refuse[" in failed.value.remote_message
    (dead,) = probe.get_all("flow.dead")
    assert dead.type == W + "refuse" and dead.headers["x-taskcore-reason"] == "rejected"
    assert app.result(dead.message_id).state == State.DEAD


def test_a_group_runs_side_by_side_and_gives_results_in_order(app_from, start_worker) -> None:
    app = app_from("workflows")
    add, collect = app.tasks[W + "add"], app.tasks[W + "collect"]
    start_worker("workflows", "-Q", "flow", "--concurrency", "4")
    result = group(add.s(i, i) for i in range(6)).apply_async()
    assert len(result) == 6
    assert result.get(timeout=15) == [0, 2, 4, 6, 8, 10]
    assert result.ready() and result.completed_count() == 6
    assert chain(add.s(1, 2), collect.si([1, 2, 3])).delay().get(timeout=15) == 6


def test_chain_mistakes_are_refused_before_anything_is_sent(app_from, probe: Probe) -> None:
    app = app_from("workflows")
    add = app.tasks[W + "add"]
    add.delay(0, 0)  # declares the queue
    probe.get_all("flow")
    with pytest.raises(TypeError, match="add"):
        chain(add.s(1, 2), add.s(3, 4)).apply_async()  # the previous result makes 3 args
    with pytest.raises(Exception, match="not JSON"):
        chain(add.s(1, 2), add.s({1, 2})).apply_async()
    assert probe.depth("flow") == 0


def test_a_step_whose_worker_died_after_its_success_still_hands_over(
    app_from, start_worker, probe: Probe
) -> None:
    # The worker recorded the first step's SUCCESS, then died before sending the next step:
    # the broker delivers the step again, and the new worker, seeing it succeeded, hands
    # over with the stored result instead of running it again or dropping the rest.
    app = app_from("workflows")
    add = app.tasks[W + "add"]
    last = chain(add.s(1, 2), add.s(10)).apply_async()
    (first,) = probe.get_all("flow")
    app.results.set_state(first.message_id, State.SUCCESS, result=7)  # not 3: not run again
    probe.publish_raw(
        app.topology.work_exchange,
        "flow",
        first.body,
        message_id=first.message_id,
        message_type=first.type,
        content_type=first.content_type,
        headers={**first.headers, "x-taskcore-resent": 1},  # as good as a redelivery
    )
    start_worker("workflows", "-Q", "flow")
    assert last.get(timeout=15) == 17


def test_a_chord_calls_back_once_with_every_result_in_order(
    app_from, start_worker, rdb, redis_prefix, probe: Probe
) -> None:
    app = app_from("workflows")
    add, tally = app.tasks[W + "add"], app.tasks[W + "tally"]
    start_worker("workflows", "-Q", "flow", "--concurrency", "4")
    handle = chord(group(add.s(i, i) for i in range(8)), tally.s()).apply_async()
    assert handle.get(timeout=15) == sum(2 * i for i in range(8))
    assert rdb.get(redis_prefix + "tally-runs") == "1"


def test_a_redelivered_member_does_not_call_back_twice(
    app_from, start_worker, rdb, redis_prefix, probe: Probe
) -> None:
    app = app_from("workflows")
    add, tally = app.tasks[W + "add"], app.tasks[W + "tally"]
    handle = chord([add.s(1, 1), add.s(2, 2)], tally.s()).apply_async()
    members = probe.get_all("flow")
    for got in members:  # what the worker will see, and what it sees again below
        probe.publish_raw(
            app.topology.work_exchange, "flow", got.body, message_id=got.message_id,
            message_type=got.type, content_type=got.content_type, headers=got.headers,
        )  # fmt: skip
    start_worker("workflows", "-Q", "flow")
    assert handle.get(timeout=15) == 6
    for again in members:  # both: one of them claimed the callback
        probe.publish_raw(
            app.topology.work_exchange, "flow", again.body, message_id=again.message_id,
            message_type=again.type, content_type=again.content_type,
            headers={**again.headers, "x-taskcore-resent": 1},
        )  # fmt: skip
    assert probe.wait_depth("flow", 0) == 0
    time.sleep(1.0)  # a second callback would have run by now
    assert rdb.get(redis_prefix + "tally-runs") == "1"


def test_a_failed_member_fails_the_chord(app_from, start_worker) -> None:
    app = app_from("workflows")
    add, refuse, tally = (app.tasks[W + n] for n in ("add", "refuse", "tally"))
    start_worker("workflows", "-Q", "flow")
    handle = chord([add.s(1, 1), refuse.s(3)], tally.s()).apply_async()
    with pytest.raises(TaskFailed) as failed:
        handle.get(timeout=15)
    assert failed.value.remote_type == "taskcore.ChainStopped"
    assert f"{W}refuse[" in failed.value.remote_message


def test_link_and_link_error_send_their_signature_after_the_outcome(
    app_from, start_worker, rdb, redis_prefix
) -> None:
    app = app_from("workflows")
    add, mul, refuse = (app.tasks[W + n] for n in ("add", "mul", "refuse"))
    note_failure = app.tasks[W + "note_failure"]
    start_worker("workflows", "-Q", "flow")
    remember = app.tasks[W + "remember"]
    first = add.apply_async((2, 3), link=remember.s("sum"), link_error=note_failure.s("add"))
    assert first.get(timeout=15) == 5
    refused = refuse.apply_async((7,), link=remember.s("x"), link_error=note_failure.s("refuse"))
    with pytest.raises(TaskFailed):
        refused.get(timeout=15)

    def recorded(key: str) -> list[str]:
        deadline = time.monotonic() + 15
        while not rdb.lrange(redis_prefix + key, 0, -1) and time.monotonic() < deadline:
            time.sleep(0.05)
        return rdb.lrange(redis_prefix + key, 0, -1)

    assert recorded("failures") == [f"refuse:{refused.id}"]
    assert recorded("remembered") == ["sum:5"]  # and nothing after the refusal
    with pytest.raises(Exception, match="takes one signature"):
        add.apply_async((1, 2), link=[mul.s(2), mul.s(3)])
