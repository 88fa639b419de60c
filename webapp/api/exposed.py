"""Which tasks the JSON API may run: an allow-list kept by the web app, not by taskcore.

Mark a task with ``@callable_from_api`` (above ``@app.task``) to let ``POST /api/v1/tasks``
queue it; every other task answers 404 there, exactly like a task that does not exist::

    @callable_from_api
    @app.task
    def add(a: float, b: float) -> float: ...
"""

from __future__ import annotations

from typing import TypeVar

from taskcore.task import Task

T = TypeVar("T", bound=Task)

#: Names of the tasks the API may queue.
EXPOSED: set[str] = set()


def callable_from_api(task: T) -> T:
    """Let the JSON API queue ``task`` by name; returns the task unchanged."""
    if not isinstance(task, Task):
        raise TypeError(f"@callable_from_api goes above @app.task, got {task!r}")
    EXPOSED.add(task.name)
    return task


def is_exposed(name: str) -> bool:
    """Whether the API may queue the task called ``name``."""
    return name in EXPOSED
