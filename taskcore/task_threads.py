"""The threads that run plain-function tasks, handing outcomes back to the loop in batches.

``loop.run_in_executor`` chains two futures per call and wakes the event loop
once per finished call (a byte through its self-pipe, and a read to take it
out). A worker draining short tasks on eight threads finishes several per
loop iteration, so here a finished call joins a list, and only the thread
that finds the list empty wakes the loop, which then settles every call on
the list at once (the publisher batches its callers the same way).
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Outcome = tuple["asyncio.Future[Any]", BaseException | None, Any]


class TaskThreads:
    """Up to ``size`` threads, started as calls need them, each running one call at a time."""

    def __init__(self, size: int, name: str = "taskcore-task") -> None:
        self.size = size
        self.name = name
        self._work: queue.SimpleQueue[tuple[asyncio.Future[Any], Callable[[], Any]] | None]
        self._work = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        #: Released by a thread each time it is back waiting for work.
        self._idle = threading.Semaphore(0)
        self._finished: list[_Outcome] = []
        self._finished_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    async def run(self, function: Callable[[], T]) -> T:
        """Run ``function()`` on one of the threads and return (or raise) what it did."""
        if self._closed:
            raise RuntimeError("the task threads were shut down")
        loop = self._loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._work.put((future, function))
        if not self._idle.acquire(blocking=False) and len(self._threads) < self.size:
            thread = threading.Thread(
                target=self._serve, name=f"{self.name}_{len(self._threads)}", daemon=True
            )
            self._threads.append(thread)
            thread.start()
        return await future

    def _serve(self) -> None:
        while (call := self._work.get()) is not None:
            future, function = call
            del call
            if future.cancelled():  # its caller stopped waiting before it started
                self._idle.release()
                continue
            try:
                outcome: _Outcome = (future, None, function())
            except BaseException as exc:  # handed to the awaiting task, as an executor does
                outcome = (future, exc, None)
            del future, function
            with self._finished_lock:
                self._finished.append(outcome)
                first = len(self._finished) == 1
            del outcome
            if first:
                self._wake_loop()
            self._idle.release()

    def _wake_loop(self) -> None:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(self._settle)
        except RuntimeError:  # the loop is closed: nobody awaits these any more
            with self._finished_lock:
                self._finished.clear()

    def _settle(self) -> None:
        with self._finished_lock:
            finished, self._finished = self._finished, []
        for future, error, result in finished:
            if future.done():  # cancelled while it ran
                continue
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)

    def shutdown(self, wait: bool = False) -> None:
        """Start no more calls: cancel those not started; with ``wait``, join the threads
        (a call still running keeps its thread, a daemon, until it returns)."""
        self._closed = True
        while True:
            try:
                pending = self._work.get_nowait()
            except queue.Empty:
                break
            if pending is not None:
                pending[0].cancel()
        for _ in self._threads:
            self._work.put(None)
        if wait:
            for thread in self._threads:
                thread.join()
