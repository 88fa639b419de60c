"""Publishing against the real broker: topology, confirms, errors, batches, fork and reconnect."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from urllib.parse import quote

import pytest

from taskcore import ConfigurationError, EncodeError, PublishError, Settings, TaskApp
from taskcore.broker import publish_timeout_for
from taskcore.delays import LEVELS

from .broker_tools import Probe, management, rabbitmqctl


def test_delay_returns_after_the_message_is_in_its_queue(app_from, probe: Probe) -> None:
    app = app_from("basic")
    handle = app.tasks["tests.apps.basic.note"].delay("hello")
    assert handle.queue == "work"
    assert probe.depth("work") == 1  # confirmed means queued: no waiting needed
    (got,) = probe.get_all("work")
    assert got.message_id == handle.id
    assert got.type == "tests.apps.basic.note"
    assert got.delivery_mode == 2  # persistent
    assert got.content_type == "application/json"
    assert got.json() == {"args": ["hello"], "kwargs": {}}
    assert got.headers["x-taskcore-retries"] == 0


def test_topology_is_declared_durable_and_idempotently(
    app_from, vhost: str, probe, namespace: str
) -> None:
    app = app_from("basic")
    note = app.tasks["tests.apps.basic.note"]
    note.delay("a")
    app.close()
    note.delay("b")  # a new connection declares everything again, without error
    queues = probe.queue_arguments(vhost)
    assert queues["work"]["durable"] is True
    assert queues["work"]["arguments"]["x-dead-letter-exchange"] == f"{namespace}.dead"
    assert queues["work"]["arguments"]["x-dead-letter-routing-key"] == "work.dead"
    assert queues["work.dead"]["durable"] is True
    levels = [name for name in queues if name.startswith(f"{namespace}.delay.")]
    assert len(levels) == LEVELS
    assert queues[f"{namespace}.delay.03"]["arguments"]["x-message-ttl"] == 800
    assert probe.depth("work") == 2


def test_map_publishes_every_call_under_one_wait(app_from, probe: Probe) -> None:
    app = app_from("basic")
    handles = app.tasks["tests.apps.basic.two_args"].map([(i, i) for i in range(500)])
    assert len({h.id for h in handles}) == 500
    assert probe.depth("work") == 500
    bodies = sorted(got.json()["args"][0] for got in probe.get_all("work"))
    assert bodies == list(range(500))


def test_a_big_map_gets_publish_timeout_per_started_ten_thousand() -> None:
    # The caller's own wait (SyncPublisher) and the publish use this one rule: a
    # 60,000-task map on a busy machine once failed after the caller's fixed 15 s.
    settings = Settings(publish_timeout=10)
    counts = (1, 10_000, 10_001, 60_000)
    assert [publish_timeout_for(settings, n) for n in counts] == [10, 10, 20, 60]


def test_arguments_are_checked_before_sending(app_from, probe: Probe) -> None:
    app = app_from("basic")
    two_args = app.tasks["tests.apps.basic.two_args"]
    with pytest.raises(TypeError, match="two_args: missing a required argument: 'b'"):
        two_args.delay(1)
    with pytest.raises(EncodeError, match="must be JSON"):
        two_args.delay(1, object())
    with pytest.raises(EncodeError):
        two_args.delay(1, float("nan"))
    with pytest.raises(ConfigurationError, match="invalid queue name"):
        two_args.apply_async((1, 2), queue="no spaces please")
    with pytest.raises(ConfigurationError, match="countdown or eta"):
        two_args.apply_async((1, 2), countdown=1, eta=datetime.now())
    with pytest.raises(TypeError, match="unknown send option"):
        two_args.apply_async((1, 2), countdwn=5)  # a typo is not silently ignored
    with pytest.raises(ConfigurationError, match="unknown option"):
        app.task(lambda: None, retries=3)
    two_args.delay(1, 2)
    assert [got.json()["args"] for got in probe.get_all("work")] == [[1, 2]]  # only the valid one


def test_send_task_by_name_takes_every_call_option(app_from, probe: Probe) -> None:
    app = app_from("basic")
    name = "tests.apps.basic.two_args"
    handle = app.send_task(name, [1, 2], priority=7, task_id="by-name-1")
    with pytest.raises(TypeError, match="missing a required argument"):
        app.send_task(name, [1])  # a registered task's signature is checked by name too
    (got,) = probe.get_all("work")
    assert (got.message_id, got.priority, got.json()["args"]) == (handle.id, 7, [1, 2])
    assert handle.id == "by-name-1"


def test_unreachable_broker_raises_publish_error_without_the_password() -> None:
    app = TaskApp(broker_url="amqp://guest:s3cret@127.0.0.1:1/", connect_timeout=2)

    @app.task
    def nothing() -> None: ...

    started = time.monotonic()
    with pytest.raises(PublishError) as caught:
        nothing.delay()
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert "amqp://guest@127.0.0.1:1/" in message
    assert "s3cret" not in message
    app.close()


def test_wrong_credentials_raise_publish_error(vhost: str) -> None:
    from .broker_tools import broker_url

    app = TaskApp(broker_url=broker_url(vhost, password="wrong"))

    @app.task
    def nothing() -> None: ...

    with pytest.raises(PublishError, match="cannot reach the broker"):
        nothing.delay()
    app.close()


def test_publisher_reconnects_after_the_broker_drops_the_connection(
    app_from, vhost: str, probe: Probe
) -> None:
    app = app_from("basic")
    note = app.tasks["tests.apps.basic.note"]
    note.delay("before")
    rabbitmqctl("close_all_connections", "-p", vhost, "test drops the connection")
    time.sleep(0.5)
    note.delay("after")
    assert probe.depth("work") == 2


def test_threads_calling_at_once_each_get_their_own_outcome(
    app_from, vhost: str, probe: Probe
) -> None:
    # Concurrent callers share one loop wake-up; one caller's failure stays its own.
    app = app_from("basic")
    note = app.tasks["tests.apps.basic.note"]
    note.delay("declare work")
    note.apply_async(("declare gone",), queue="gone")
    probe.get_all("work")
    management("DELETE", f"/queues/{quote(vhost, safe='')}/gone")  # still "declared" to us
    start = threading.Barrier(16)

    def call(i: int) -> str:
        start.wait()
        if i == 0:
            with pytest.raises(PublishError, match="could not route"):
                note.apply_async(("lost",), queue="gone")
            return "refused"
        return note.delay(f"t{i}").id

    with ThreadPoolExecutor(16) as pool:
        outcomes = list(pool.map(call, range(16)))
    assert outcomes[0] == "refused"
    assert len(set(outcomes[1:])) == 15
    got = probe.get_all("work")
    assert sorted(g.message_id for g in got) == sorted(outcomes[1:])


def test_publishing_works_in_a_forked_child(app_from, probe: Probe) -> None:
    app = app_from("basic")
    note = app.tasks["tests.apps.basic.note"]
    note.delay("parent-before")
    pid = os.fork()
    if pid == 0:  # the child: publish through the inherited app, report by exit code
        code = 1
        try:
            note.delay("child")
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    note.delay("parent-after")
    tags = sorted(got.json()["args"][0] for got in probe.get_all("work"))
    assert tags == ["child", "parent-after", "parent-before"]


def test_countdown_goes_through_the_delay_cascade(app_from, probe: Probe) -> None:
    app = app_from("basic")
    sent = time.time()
    app.tasks["tests.apps.basic.note"].apply_async(("later",), countdown=1.5)
    assert probe.depth("work") == 0
    assert probe.wait_depth("work", 1, timeout=5) == 1
    (got,) = probe.get_all("work")
    assert got.json()["args"] == ["later"]
    # Integer milliseconds: AMQP would carry a float epoch as float32, minutes off.
    assert abs(got.headers["x-taskcore-eta-ms"] / 1000 - (sent + 1.5)) < 0.1


def test_send_task_by_name_uses_routes(task_env, monkeypatch, probe: Probe) -> None:
    for key, value in task_env.items():
        monkeypatch.setenv(key, value)
    app = TaskApp(routes={"reports.*": "reports"})
    try:
        handle = app.send_task("reports.export", [1], {"format": "csv"})
        assert handle.queue == "reports"
        (got,) = probe.get_all("reports")
        assert got.type == "reports.export"
        assert json.loads(got.body) == {"args": [1], "kwargs": {"format": "csv"}}
    finally:
        app.close()


def test_without_confirms_a_script_that_exits_still_delivers_everything(
    task_env: dict[str, str], probe: Probe
) -> None:
    # delay() only hands the message to the loop thread; the exit handler sends the rest.
    script = (
        "from tests.apps.basic import app\n"
        "note = app.tasks['tests.apps.basic.note']\n"
        "for i in range(300):\n"
        "    print(note.delay(f'm{i}').id)\n"
    )
    env = {**os.environ, **task_env, "TASKCORE_CONFIRM_PUBLISH": "0"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    ids = done.stdout.split()
    assert probe.wait_depth("work", 300, timeout=5) == 300
    assert [m.message_id for m in probe.get_all("work")] == ids  # all of them, in order


def test_without_confirms_a_broker_that_is_down_still_raises() -> None:
    app = TaskApp(broker_url="amqp://guest:guest@127.0.0.1:1/", connect_timeout=2)
    app.configure(confirm_publish=False)

    @app.task
    def nothing() -> None: ...

    with pytest.raises(PublishError):
        nothing.delay()
    app.close()


def test_a_queue_left_with_other_arguments_gets_a_clear_error(app_from, amqp_url: str) -> None:
    import aio_pika

    async def declare_old_style_queue() -> None:  # as taskcore before classic queues v2
        connection = await aio_pika.connect(amqp_url)
        channel = await connection.channel()
        await channel.declare_queue("work", durable=True)
        await connection.close()

    asyncio.run(declare_old_style_queue())
    app = app_from("basic")
    with pytest.raises(ConfigurationError) as caught:
        app.tasks["tests.apps.basic.note"].delay("x")
    assert "already exists with other arguments" in str(caught.value)
    assert "rabbitmqctl delete_queue" in str(caught.value)


def test_a_publish_while_another_caller_opens_the_channel_waits_for_it(
    app_from, probe: Probe
) -> None:
    # A worker's retries and hand-overs share one client; one that found the channel
    # half-open (declared, not yet ready) failed an assertion and left its message held.
    from taskcore.broker import BrokerClient
    from taskcore.message import Envelope
    from taskcore.topology import Topology

    app = app_from("basic")
    app.tasks["tests.apps.basic.note"].delay("declare")
    probe.get_all("work")
    opening = asyncio.Event()

    class SlowTopology(Topology):
        async def declare_base(self, channel: object) -> None:
            opening.set()
            await asyncio.sleep(0.3)  # the window another caller used to fall into
            await super().declare_base(channel)  # type: ignore[arg-type]

    message = app.tasks["tests.apps.basic.note"].message(("during",))
    envelope = Envelope(*app.topology.address("work", 0.0), message.body(), message.properties())

    async def main() -> None:
        client = BrokerClient(app.settings, SlowTopology(app.settings.namespace))
        first = asyncio.ensure_future(client.channel())
        await opening.wait()
        await client.publish([envelope])  # no queues to declare: straight to the channel
        await first
        await client.close()

    asyncio.run(main())
    assert [got.message_id for got in probe.get_all("work")] == [message.id]
