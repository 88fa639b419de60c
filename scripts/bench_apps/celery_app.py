"""Celery side of the benchmark (queue ``bench``), publisher confirms when BENCH_CONFIRM=1."""

from __future__ import annotations

import os

from celery import Celery

from .common import incr, probe

app = Celery("bench", broker=os.environ["BENCH_BROKER_URL"])
app.conf.task_default_queue = "bench"
app.conf.task_ignore_result = True
app.conf.worker_hijack_root_logger = False
if os.environ.get("BENCH_CONFIRM") == "1":
    app.conf.broker_transport_options = {"confirm_publish": True}


@app.task(name="bench.incr")
def incr_task() -> None:
    incr()


@app.task(name="bench.probe")
def probe_task(sent_at: float) -> None:
    probe(sent_at)
