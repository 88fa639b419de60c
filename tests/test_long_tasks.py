"""Tasks longer than RabbitMQ's consumer_timeout: handed over to a lease, run once.

The broker checks the timeout only on its channel tick (once a minute by
default), so these tests never touch the shared broker: they use a private
node (scripts/drills/services.py) whose ``consumer_timeout`` is 3 s and whose
channel tick is 250 ms, both set at run time before any client connects. The
node, settings and all, is deleted after the module. Each test has a work
queue of its own on the node's ``/`` and, as usual, its own namespace.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from collections.abc import Iterator
from typing import Any

import aio_pika
import pytest
import redis

from scripts.drills.services import PrivateRabbit
from taskcore import delays
from taskcore.delivery import Acker, Delivery
from taskcore.states import State

from .broker_tools import Probe
from .worker_log import events, wait_events

EXPORT = "tests.apps.long.export"
CONSUMER_TIMEOUT = 3.0
LEASE = 2.0
#: The worker's settings for its broker: the node's real timeout, and short leases.
LEASED = {
    "TASKCORE_BROKER_CONSUMER_TIMEOUT": str(CONSUMER_TIMEOUT),
    "TASKCORE_LEASE_SECONDS": str(LEASE),
}


@pytest.fixture(scope="module")
def node() -> Iterator[PrivateRabbit]:
    with PrivateRabbit() as node:
        timeout_ms = int(CONSUMER_TIMEOUT * 1000)
        node.ctl("eval", f"application:set_env(rabbit, consumer_timeout, {timeout_ms}).")
        # A channel reads the interval when it opens and checks the timeout at each tick.
        node.ctl("eval", "application:set_env(rabbit, channel_tick_interval, 250).")
        yield node


@pytest.fixture
def queue(node: PrivateRabbit, task_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    """Point this test's apps and workers at the node, with a work queue of its own."""
    name = f"long-{uuid.uuid4().hex[:8]}"
    settings = {"TASKCORE_BROKER_URL": node.url, "TEST_LONG_QUEUE": name}
    task_env.update(settings)  # what start_worker passes to worker processes
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    return name


def lease_of(rdb: redis.Redis, namespace: str, task_id: str) -> str | None:
    return rdb.get(f"{namespace}:lease:{task_id}")


def wait_for(check: Any, what: str, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.05)
    return value


def messages_held(node: PrivateRabbit, namespace: str, queue: str) -> dict[str, int]:
    """Messages (ready and unacked) in the work queue, its dead letters and every delay queue."""
    out = node.ctl("list_queues", "name", "messages", "--formatter", "json", "-q")
    ours = {queue, f"{queue}.dead", *(f"{namespace}.delay.{n:02d}" for n in range(delays.LEVELS))}
    return {row["name"]: row["messages"] for row in json.loads(out) if row["name"] in ours}


def wait_until_empty(probe: Probe, namespace: str, queue: str, timeout: float) -> None:
    """Until no copy of anything is in the work queue or the delay cascade (ready ones)."""
    names = [queue, *(f"{namespace}.delay.{n:02d}" for n in range(delays.LEVELS))]

    async def depths(channel: Any) -> list[int]:
        found = []
        for name in names:
            declared = await channel.declare_queue(name, passive=True)
            found.append(declared.declaration_result.message_count)
        return found

    wait_for(lambda: not any(probe._run(depths)), "queues empty", timeout)


def test_without_a_lease_a_task_past_the_timeout_loses_its_channel_and_runs_twice(
    queue: str, app_from, start_worker, rdb, redis_prefix
) -> None:
    # The problem itself: the lease is out of the way (a timeout nobody reaches).
    no_lease = {"TASKCORE_BROKER_CONSUMER_TIMEOUT": "100000"}
    app = app_from("long")
    first = start_worker("long", "-Q", queue, "-c", "1", env=no_lease)
    app.tasks[EXPORT].delay(8.0, "looping")
    wait_events(rdb, redis_prefix, "start", 1)
    second = start_worker("long", "-Q", queue, "-c", "1", env=no_lease)

    first.wait_for_output("PRECONDITION_FAILED - delivery acknowledgement", timeout=10)
    starts = wait_events(rdb, redis_prefix, "start", 2, timeout=10)
    assert starts[1]["pid"] != starts[0]["pid"]
    assert not events(rdb, redis_prefix, "finish")  # the first run was still going
    assert "handed over" not in first.output + second.output


@pytest.mark.parametrize("concurrency", ["2", "1"])
def test_a_task_three_times_the_timeout_runs_once_under_a_lease(
    concurrency: str,
    queue: str,
    node: PrivateRabbit,
    namespace: str,
    app_from,
    start_worker,
    rdb,
    redis_prefix,
) -> None:
    app = app_from("long")
    worker = start_worker("long", "-Q", queue, "-c", concurrency, env=LEASED)
    assert f"{EXPORT} may run longer than the broker's consumer_timeout (3s" in worker.output
    handle = app.tasks[EXPORT].delay(10.0, "once")

    assert handle.get(timeout=30) == "once"
    assert len(events(rdb, redis_prefix, "start")) == 1
    assert handle.state == State.SUCCESS
    assert "its delivery is acked and a lease of 2s guards it" in worker.output
    assert "timed out" not in worker.output and "lost the broker" not in worker.output
    assert rdb.get(f"{namespace}:lease:{handle.id}") == "settled"
    # The last check copy comes back within a lease and is dropped: nothing is left
    # anywhere, not even unacknowledged, and the task did not run again.
    wait_until_empty(Probe(node.url), namespace, queue, timeout=3 * LEASE)
    assert not any(messages_held(node, namespace, queue).values())
    assert len(events(rdb, redis_prefix, "start")) == 1


def test_a_message_waiting_behind_a_long_task_is_given_back_not_timed_out(
    queue: str, app_from, start_worker, rdb, redis_prefix
) -> None:
    # One slot, two long tasks: the second is prefetched and waits longer than the
    # broker's timeout for the slot. It goes back to the broker at half the timeout
    # (and comes round again) instead of costing the channel.
    app = app_from("long")
    worker = start_worker("long", "-Q", queue, "-c", "1", env=LEASED)
    export = app.tasks[EXPORT]
    first, second = export.delay(7.0, "first"), export.delay(1.0, "second")

    assert first.get(timeout=30) == "first" and second.get(timeout=30) == "second"
    starts = events(rdb, redis_prefix, "start")
    assert [s["tag"] for s in starts] == ["first", "second"]  # each ran once
    assert "waited" in worker.output and "for a task slot: requeued" in worker.output
    assert "timed out" not in worker.output and "lost the broker" not in worker.output


def test_a_sigkilled_worker_s_leased_task_runs_again_after_its_lease_lapses(
    queue: str, node: PrivateRabbit, namespace: str, app_from, start_worker, rdb, redis_prefix
) -> None:
    app = app_from("long")
    first = start_worker("long", "-Q", queue, "-c", "2", env=LEASED)
    handle = app.tasks[EXPORT].delay(5.0, "rerun")
    (started,) = wait_events(rdb, redis_prefix, "start", 1)
    lease = wait_for(lambda: lease_of(rdb, namespace, handle.id), "hand-over", timeout=5)
    assert lease.startswith(f"running:taskcore-{started['pid']}@")  # the worker's hostname
    # The lease comes first, the ack last: kill only once the broker has the ack.
    first.wait_for_output("its delivery is acked", timeout=10)
    wait_for(lambda: messages_held(node, namespace, queue)[queue] == 0, "the ack", timeout=5)

    first.signal(signal.SIGKILL)
    first.wait(10)
    killed_at = time.time()
    probe = Probe(node.url)
    assert probe.depth(queue) == 0  # acked at the hand-over: the broker gives nothing back
    second = start_worker("long", "-Q", queue, "-c", "2", env=LEASED)
    consuming_at = time.time()

    starts = wait_events(rdb, redis_prefix, "start", 2, timeout=4 * LEASE + 5)
    rerun_at = starts[1]["at"]
    # Not before the lease lapsed (renewed every LEASE/3 until the kill: it lasts at
    # least 2/3 LEASE more), and at the first check copy after that (one comes every
    # LEASE seconds; one that came while no worker consumed waits in the queue).
    assert rerun_at - killed_at > LEASE / 2, rerun_at - killed_at
    assert rerun_at < max(killed_at + 2 * LEASE, consuming_at + LEASE) + 1.5
    assert starts[1]["pid"] != started["pid"]
    assert handle.get(timeout=15) == "rerun"
    assert [e["pid"] for e in events(rdb, redis_prefix, "finish")] == [starts[1]["pid"]]
    assert f"on worker taskcore-{started['pid']}@" in second.output
    assert "expired: the task runs again" in second.output
    wait_until_empty(probe, namespace, queue, timeout=3 * LEASE)
    assert not any(messages_held(node, namespace, queue).values())
    assert len(events(rdb, redis_prefix, "start")) == 2


def test_a_delivery_handed_over_ignores_later_acks_and_nacks(amqp_url: str, probe: Probe) -> None:
    async def main() -> tuple[bool, bool, bool, bool]:
        connection = await aio_pika.connect(amqp_url)
        try:
            channel = await connection.channel()
            work = await channel.declare_queue("handed", durable=True)
            await channel.default_exchange.publish(aio_pika.Message(b"{}"), routing_key="handed")
            raw = await channel.get_underlay_channel()
            acker = Acker(raw)
            delivered: asyncio.Queue[Delivery] = asyncio.Queue()

            async def on_message(message: Any) -> None:
                await delivered.put(Delivery(message, acker))

            await raw.basic_consume(work.name, on_message)
            delivery = await asyncio.wait_for(delivered.get(), 5)
            handed = await delivery.hand_over()
            # What the outcome paths do afterwards: a requeue (copy not confirmed), an ack.
            await delivery.nack(requeue=True)
            await delivery.ack()
            await acker.drain()
            again = await delivery.hand_over()
            # A second ack or a nack of the tag would make the broker close the channel
            # (unknown delivery tag); a round trip after them shows it is still open.
            await channel.declare_queue("handed", passive=True)
            await asyncio.sleep(0.2)
            return handed, again, delivery.given_back, raw.is_closed
        finally:
            await connection.close()

    handed, again, given_back, closed = asyncio.run(main())
    assert handed and not again
    assert given_back  # noted: the lease is left to lapse, so the task runs again
    assert not closed
    assert probe.depth("handed") == 0  # acked once, never requeued
