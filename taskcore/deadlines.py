"""Callbacks due a fixed delay after they were scheduled, on one event-loop timer.

A worker with thousands of tasks in flight schedules a timer per task (its
STARTED report). ``loop.call_later`` makes a ``TimerHandle`` and a heap entry
for each, and a cancelled one stays in the heap until it is due. When every
callback waits the same delay they fall due in the order they were added, so a
deque and one loop timer do the same job: adding and cancelling are O(1), and
the loop's heap holds one entry however many tasks run.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any


class Deadline:
    """One scheduled callback; ``cancel()`` stops it (like ``TimerHandle.cancel``)."""

    __slots__ = ("args", "callback", "when")

    def __init__(self, when: float, callback: Callable[..., object], args: tuple[Any, ...]):
        self.when = when
        self.callback: Callable[..., object] | None = callback
        self.args = args

    def cancel(self) -> None:
        self.callback = None
        self.args = ()


class FixedDelayTimers:
    """Runs each callback ``delay`` seconds after it was added, in the order added."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self._due: deque[Deadline] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def call_later(self, callback: Callable[..., object], *args: Any) -> Deadline:
        """Schedule ``callback(*args)`` on the running loop, ``delay`` seconds from now."""
        loop = asyncio.get_running_loop()
        deadline = Deadline(loop.time() + self.delay, callback, args)
        self._due.append(deadline)
        if self._timer is None:
            self._timer = loop.call_at(deadline.when, self._fire, loop)
        return deadline

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        due, now = self._due, loop.time()
        while due and due[0].when <= now:
            deadline = due.popleft()
            if deadline.callback is not None:
                deadline.callback(*deadline.args)
        if due:
            self._timer = loop.call_at(due[0].when, self._fire, loop)
