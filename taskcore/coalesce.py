"""Coalescing: what many tasks ask for in one event-loop iteration, done in one round trip.

A worker running eight short tasks finishes several of them per loop
iteration; writing each one's state, event and ack separately costs a Redis
round trip or a socket write apiece. A ``Coalescer`` collects the items added
until the loop gets round to it, then hands them all to one ``flush`` call:
one Redis pipeline, one event message, one ack frame. Each ``add`` returns a
future that resolves when its item's flush is done (or fails with its error).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Coalescer(Generic[T]):
    """Batches items added within one loop iteration into one ``flush(items)``.

    Flushes run one at a time, in order: items added while a flush is running
    go into the next one. So a later state write never overtakes an earlier
    one, and a slow flush (a reconnect) makes the next batch bigger, not racing.
    """

    def __init__(self, flush: Callable[[list[T]], Awaitable[object]], linger: float = 0.0) -> None:
        self._flush = flush
        #: Seconds a batch waits for more items after its first (0: the next iteration).
        self.linger = linger
        self._items: list[T] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._scheduled = False
        self._running: asyncio.Task[None] | None = None

    def add(self, item: T) -> asyncio.Future[None]:
        """Queue ``item`` for the next flush; await the result to know it was done."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self.put(item)
        return waiter

    def put(self, item: T) -> None:
        """Queue ``item`` for the next flush, with nobody waiting for it."""
        self._items.append(item)
        if not self._scheduled and self._running is None:
            self._scheduled = True
            if self.linger:
                asyncio.get_running_loop().call_later(self.linger, self._start)
            else:
                asyncio.get_running_loop().call_soon(self._start)

    def _start(self) -> None:
        self._scheduled = False
        if self._running is not None or not self._items:
            return
        items, waiters = self._items, self._waiters
        self._items, self._waiters = [], []
        self._running = asyncio.ensure_future(self._run(items, waiters))
        self._running.add_done_callback(self._finished)

    def _finished(self, _task: asyncio.Task[None]) -> None:
        self._running = None
        self._start()  # what arrived meanwhile

    async def _run(self, items: list[T], waiters: list[asyncio.Future[None]]) -> None:
        try:
            await self._flush(items)
        except BaseException as exc:
            for waiter in waiters:
                if waiter.done():
                    continue
                if isinstance(exc, asyncio.CancelledError):
                    waiter.cancel()
                else:
                    waiter.set_exception(exc)
                    waiter.exception()  # nobody may be waiting: mark it retrieved
            if not isinstance(exc, Exception):
                raise
        else:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def drain(self) -> None:
        """Wait until everything added so far was flushed (for shutdown)."""
        while self._running is not None or self._items:
            if self._running is None:
                self._start()  # a lingering batch goes now
            if self._running is not None:
                await asyncio.gather(self._running, return_exceptions=True)
