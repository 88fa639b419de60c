"""A task that makes a span of its own (queue ``traced``)."""

from __future__ import annotations

from opentelemetry import trace

from taskcore import TaskApp

app = TaskApp("tests")


@app.task(queue="traced")
def charge(amount: int) -> int:
    with trace.get_tracer("tests").start_as_current_span("charge card"):
        return amount


@app.task(queue="traced")
async def charge_async(amount: int) -> int:
    with trace.get_tracer("tests").start_as_current_span("charge card asynchronously"):
        return amount
