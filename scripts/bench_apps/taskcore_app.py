"""taskcore side of the benchmark (queue ``bench``)."""

from __future__ import annotations

from taskcore import TaskApp

from .common import incr, probe

app = TaskApp("bench")


@app.task(queue="bench", name="bench.incr")
def incr_task() -> None:
    incr()


@app.task(queue="bench", name="bench.probe", ignore_result=True)
def probe_task(sent_at: float) -> None:
    probe(sent_at)
