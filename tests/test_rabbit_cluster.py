"""A RabbitMQ cluster of three private nodes on free ports (scripts/rabbit_cluster.py):
a quorum queue is used through any node and outlives a SIGKILLed node, and taskcore with
TASKCORE_QUEUE_TYPE=quorum and every node's URL loses no task, delayed ones included,
when the node that leads its queues dies.

Starting a cluster costs about 16 s (three Erlang VMs on two cores), so the module starts
one and its checks are one test: pytest-xdist spreads a module's tests over its workers,
and each worker would start a cluster of its own.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import aio_pika
import pytest

from scripts.rabbit_cluster import RabbitCluster

T = "tests.apps.basic."


@pytest.fixture(scope="module")
def cluster() -> Iterator[RabbitCluster]:
    with RabbitCluster.on_free_ports() as cluster:
        print(f"3-node cluster up in {cluster.start_seconds:.1f} s")
        yield cluster


@pytest.fixture
def task_env(task_env: dict[str, str], cluster: RabbitCluster) -> dict[str, str]:
    """This test's environment on the cluster: every node's URL, every queue quorum."""
    return {**task_env, "TASKCORE_BROKER_URL": cluster.url, "TASKCORE_QUEUE_TYPE": "quorum"}


def quorum_queues(cluster: RabbitCluster, index: int) -> dict[str, dict[str, Any]]:
    """The quorum queues of the default vhost as node ``index`` sees them."""
    out = cluster.nodes[index].ctl(
        "list_queues", "name", "type", "leader", "members", "online", "--formatter", "json", "-q"
    )
    return {row["name"]: row for row in json.loads(out or "[]") if row["type"] == "quorum"}


async def declare(url: str, queue: str) -> None:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        await channel.declare_queue(queue, durable=True, arguments={"x-queue-type": "quorum"})
    finally:
        await connection.close()


async def publish(url: str, queue: str, bodies: list[bytes]) -> None:
    """Publish with confirms (each awaited): returns once the queue holds every one."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        for body in bodies:
            await channel.default_exchange.publish(
                aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT), queue
            )
    finally:
        await connection.close()


async def consume(url: str, queue: str, count: int, timeout: float = 30) -> list[bytes]:
    """Take ``count`` messages from ``queue`` through a consumer.

    No acks: a quorum queue may not have applied the last acks of a consumer whose
    connection closes right after sending them, and then delivers those messages again
    (seen here with 8 of 100).
    """
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        got: list[bytes] = []
        done = asyncio.Event()

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            got.append(message.body)
            if len(got) >= count:
                done.set()

        declared = await channel.declare_queue(queue, passive=True)
        await declared.consume(on_message, no_ack=True)
        await asyncio.wait_for(done.wait(), timeout)
        return got
    finally:
        await connection.close()


def publish_until_confirmed(url: str, queue: str, body: bytes, timeout: float = 30) -> float:
    """Publish ``body`` until one publish confirms; the seconds it took."""
    began = time.monotonic()
    while True:
        try:
            asyncio.run(asyncio.wait_for(publish(url, queue, [body]), 5))
            return time.monotonic() - began
        except Exception:
            if time.monotonic() - began > timeout:
                raise
            time.sleep(0.2)


@pytest.mark.xdist_group("rabbit-cluster")  # one 3-node cluster at a time (make test)
def test_a_cluster_keeps_quorum_queues_and_taskcore_tasks_through_a_killed_node(
    cluster: RabbitCluster, task_env: dict[str, str], app_from, start_worker
) -> None:
    names = {node.node for node in cluster.nodes}
    assert len(names) == 3
    for index in range(3):  # one cluster, seen the same from every node
        assert cluster.running_nodes(index) == names

    # A quorum queue declared through node 0, written through node 1, read through node 2.
    first, second, third = cluster.urls
    asyncio.run(declare(first, "orders"))
    (orders,) = quorum_queues(cluster, 2).values()
    assert set(orders["members"]) == names and orders["leader"] == cluster.nodes[0].node
    bodies = [f"order-{n}".encode() for n in range(100)]
    asyncio.run(publish(second, "orders", bodies))
    assert asyncio.run(consume(third, "orders", 100)) == bodies

    # taskcore on the cluster: every queue quorum, led by node 0 (where the worker and
    # this process connect first), 20 tasks waiting in the delay cascade, and 50
    # messages in "orders" when node 0 is SIGKILLed.
    app = app_from("basic")
    worker = start_worker("basic", "-Q", "work")
    assert f"127.0.0.1:{cluster.nodes[0].port}" in worker.output  # it took the first node
    note = app.tasks[T + "note"]
    assert [h.get(timeout=20) for h in [note.delay(f"a{n}") for n in range(10)]] == [
        f"a{n}" for n in range(10)
    ]
    delayed = [note.apply_async((f"d{n}",), countdown=8) for n in range(20)]
    delayed_at = time.monotonic()
    ns = task_env["TASKCORE_NAMESPACE"]
    led = quorum_queues(cluster, 1)
    assert {led[q]["leader"] for q in ("work", "work.dead", f"{ns}.delay.06")} == {
        cluster.nodes[0].node
    }
    before = [f"before-{n}".encode() for n in range(50)]
    asyncio.run(publish(first, "orders", before))

    assert time.monotonic() - delayed_at < 6  # they wait in level 6 (6.4 s) of the cascade
    cluster.kill(0)
    killed_at = time.monotonic()
    # The surviving majority elects new leaders: "orders" takes a publish again soon...
    first_publish = publish_until_confirmed(second, "orders", b"after")
    # ...and taskcore sends and runs again, on the nodes that are left.
    after = [note.delay(f"b{n}") for n in range(10)]
    assert [h.get(timeout=60) for h in after] == [f"b{n}" for n in range(10)]
    resumed = time.monotonic() - killed_at
    worker.wait_for_output("reconnected", timeout=5)
    # Nothing was lost: the delayed tasks ran, "orders" still holds what it held.
    assert [h.get(timeout=60) for h in delayed] == [f"d{n}" for n in range(20)]
    assert asyncio.run(consume(third, "orders", 51)) == [*before, b"after"]
    print(
        f"node 0 killed: 'orders' confirmed a publish after {first_publish:.2f} s, "
        f"taskcore ran 10 new tasks within {resumed:.2f} s"
    )

    # Node 0 comes back, rejoins the cluster and serves the queue again.
    began = time.monotonic()
    cluster.start_node(0)
    print(f"node 0 back in the cluster in {time.monotonic() - began:.1f} s")
    assert all(cluster.running_nodes(index) == names for index in range(3))
    asyncio.run(publish(first, "orders", [b"back"]))
    assert asyncio.run(consume(first, "orders", 1)) == [b"back"]
