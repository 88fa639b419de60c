"""A quorum queue beside a classic one, for the worker test that consumes both."""

from __future__ import annotations

from taskcore import TaskApp

app = TaskApp("quorum", queues={"replicated": {"type": "quorum"}})


@app.task(queue="replicated")
def double(x: int) -> int:
    return 2 * x


@app.task(queue="classic")
def triple(x: int) -> int:
    return 3 * x
