"""Task signals: your functions called when tasks change state, for error reporting and audits.

``@app.on_task("failed", "dead_lettered")`` registers a function that gets a
``TaskEvent``. It is one more listener on the worker's state changes (see
``listeners``), run beside the task, never in its way: an ``async def`` hook
runs on the worker's loop, a plain function in a thread, neither is waited for
before the message is settled, and an exception in one is logged and changes
nothing about the task. A worker waits for the hooks still running when it stops.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .states import State

log = logging.getLogger("taskcore.worker")

#: Signal names by the state change that sends them.
SIGNALS = {
    State.RECEIVED: "received",  # held, waiting for a rate-limit token
    State.STARTED: "started",
    State.SUCCESS: "succeeded",
    State.FAILURE: "failed",  # raised on its last attempt: its message is in <queue>.dead
    State.RETRY: "retried",
    State.DEAD: "dead_lettered",  # could not run: rejected, unknown task, bad arguments
    State.REVOKED: "revoked",
}


@dataclass(frozen=True)
class TaskEvent:
    """What a signal tells its hooks: which signal, the task, and what the change carried
    (``error``, ``result``, ``attempts``, ``retry_in``, ``reason``, ...)."""

    signal: str
    task_id: str
    task: str | None
    queue: str | None
    worker: str | None
    fields: Mapping[str, Any] = field(default_factory=dict)

    @property
    def error(self) -> dict[str, Any] | None:
        """``{"type", "message", "traceback"}`` for failed, retried and dead_lettered."""
        error = self.fields.get("error")
        return error if isinstance(error, dict) else None


#: A hook: gets the event; may be ``async def``.
TaskHook = Callable[[TaskEvent], Awaitable[None] | None]


def check_signals(names: tuple[str, ...]) -> None:
    """ValueError, naming the known signals, unless ``names`` are some of them."""
    unknown = [n for n in names if n not in SIGNALS.values()]
    if unknown or not names:
        raise ValueError(
            f"unknown task signal(s) {', '.join(map(repr, unknown)) or '(none given)'}: "
            f"use {', '.join(SIGNALS.values())}"
        )


class TaskSignals:
    """The state listener that calls the app's hooks for each change they asked for."""

    def __init__(self, hooks: Mapping[str, list[TaskHook]]) -> None:
        self.hooks = hooks
        self._running: set[asyncio.Future[Any]] = set()

    def __call__(self, task_id: str, state: State, fields: dict[str, Any]) -> None:
        name = SIGNALS.get(state)
        hooks = self.hooks.get(name, []) if name else []
        if not hooks:
            return
        event = TaskEvent(
            name,  # type: ignore[arg-type]
            task_id,
            fields.get("task"),
            fields.get("queue"),
            fields.get("worker"),
            dict(fields),
        )
        loop = asyncio.get_running_loop()
        for hook in hooks:
            if inspect.iscoroutinefunction(hook):
                running: asyncio.Future[Any] = asyncio.ensure_future(_guarded(hook, event))
            else:
                running = loop.run_in_executor(None, _guarded_sync, hook, event)
            self._running.add(running)
            running.add_done_callback(self._running.discard)

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait (up to ``timeout`` seconds) for the hooks still running."""
        if self._running:
            await asyncio.wait(set(self._running), timeout=timeout)


async def _guarded(hook: TaskHook, event: TaskEvent) -> None:
    try:
        await hook(event)  # type: ignore[misc]
    except Exception:
        log.exception("task signal hook %r failed on %s of %s", hook, event.signal, event.task_id)


def _guarded_sync(hook: TaskHook, event: TaskEvent) -> None:
    try:
        hook(event)
    except Exception:
        log.exception("task signal hook %r failed on %s of %s", hook, event.signal, event.task_id)
