"""Several broker URLs (TASKCORE_BROKER_URL="a;b"): publishers and workers move to the next
node that answers when theirs dies. A private RabbitMQ node (killed here) comes first, the
shared broker's vhost of this test second."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from scripts.drills.services import PrivateRabbit
from taskcore import BrokerUnavailable, Settings, TaskApp
from taskcore.broker import broker_urls

F = "tests.apps.features."


@pytest.fixture
def first_node() -> Iterator[PrivateRabbit]:
    with PrivateRabbit() as node:
        yield node


@pytest.fixture
def task_env(task_env: dict[str, str], first_node: PrivateRabbit) -> dict[str, str]:
    """This test's environment, with the private node first and the shared broker second."""
    urls = f"{first_node.url};{task_env['TASKCORE_BROKER_URL']}"
    return {**task_env, "TASKCORE_BROKER_URL": urls}


def test_urls_split_and_a_list_in_code_is_the_same_setting() -> None:
    assert broker_urls(" amqp://a:5672/ ;amqp://b:5672/;") == ["amqp://a:5672/", "amqp://b:5672/"]
    listed = Settings(broker_url=["amqp://u:secret@a/", "amqp://u:secret@b/"])  # type: ignore[arg-type]
    assert listed.broker_url == "amqp://u:secret@a/;amqp://u:secret@b/"
    assert listed.safe_broker_url == "amqp://u@a/;amqp://u@b/"


def test_no_node_answering_names_every_node_tried() -> None:
    app = TaskApp("nowhere", broker_url="amqp://guest:pw@127.0.0.1:1/;amqp://guest:pw@127.0.0.1:2/")
    try:
        with pytest.raises(BrokerUnavailable) as caught:
            app.send_task("anything", queue="q")
    finally:
        app.close()
    message = str(caught.value)
    assert "127.0.0.1:1" in message and "127.0.0.1:2" in message and "pw" not in message


def test_a_killed_node_costs_seconds_not_tasks(
    app_from: Any, start_worker: Any, first_node: PrivateRabbit
) -> None:
    app = app_from("features")
    worker = start_worker("features", "-Q", "feat")
    assert f"127.0.0.1:{first_node.port}" in worker.output  # it took the first node
    add = app.tasks[F + "add"]
    assert [h.get(timeout=20) for h in [add.delay(i, 1) for i in range(10)]] == list(range(1, 11))

    assert first_node.pid is not None
    os.kill(first_node.pid, signal.SIGKILL)  # no goodbye: sockets reset
    killed_at = time.monotonic()
    # Each send confirms (on the node that answers) or raises: here every one confirms.
    handles = [add.delay(i, 2) for i in range(20)]
    first_done = handles[0].get(timeout=30)
    resumed_in = time.monotonic() - killed_at
    assert first_done == 2
    assert [h.get(timeout=30) for h in handles] == [i + 2 for i in range(20)]
    worker.wait_for_output("reconnected", timeout=5)
    assert "connected to the broker at" in worker.output and "instead" in worker.output
    assert resumed_in < 10, resumed_in
