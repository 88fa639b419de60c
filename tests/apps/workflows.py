"""Tasks the workflow tests chain and group (queue ``flow``)."""

from __future__ import annotations

from taskcore import Reject, TaskApp

app = TaskApp("tests")


@app.task(queue="flow")
def add(a: int, b: int) -> int:
    return a + b


@app.task(queue="flow")
def mul(a: int, b: int) -> int:
    return a * b


@app.task(queue="flow")
def collect(values: list[int]) -> int:
    return sum(values)


@app.task(queue="flow")
def refuse(value: int) -> None:
    raise Reject(f"refusing {value} on purpose")
