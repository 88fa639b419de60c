"""Dramatiq side of the benchmark (queue ``bench``), confirm_delivery when BENCH_CONFIRM=1."""

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker

from .common import incr, probe

broker = RabbitmqBroker(
    url=os.environ["BENCH_BROKER_URL"], confirm_delivery=os.environ.get("BENCH_CONFIRM") == "1"
)
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name="bench", max_retries=0)
def incr_task() -> None:
    incr()


@dramatiq.actor(queue_name="bench", max_retries=0)
def probe_task(sent_at: float) -> None:
    probe(sent_at)
