"""A private asyncio event loop in a daemon thread, for sync callers.

Flask views, click commands and scripts are synchronous; aio-pika is not.
Each process gets one loop thread that owns the broker connection; callers
hand it a coroutine and wait for the result. After ``fork()`` the child has
no such thread (threads do not survive a fork), so the loop is recreated
lazily in the child: safe under gunicorn's pre-fork model.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_instances: weakref.WeakSet[LoopThread] = weakref.WeakSet()


class LoopThread:
    """Runs coroutines on a background event loop owned by this process."""

    def __init__(self, name: str = "taskcore-loop") -> None:
        self.name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._submitted: set[asyncio.Future[Any]] = set()
        _instances.add(self)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop thread and return its result (or raise its error)."""
        loop = self._ensure_loop()
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("LoopThread.run() called from its own loop: await the coroutine")
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def call_soon(self, callback: Callable[..., object], *args: object) -> None:
        """Run ``callback(*args)`` on the loop thread soon; returns at once."""
        self._ensure_loop().call_soon_threadsafe(callback, *args)

    def submit(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Start ``coro`` on the loop thread and return at once (it handles its own errors).

        Coroutines submitted from one thread start in the order submitted.
        """
        loop = self._ensure_loop()
        loop.call_soon_threadsafe(self._start, coro)

    def _start(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._submitted.add(task)  # keep a reference until it is done
        task.add_done_callback(self._submitted.discard)

    def wait_submitted(self, timeout: float | None = None) -> None:
        """Wait until everything ``submit()``-ed so far has finished."""
        if self._loop is None or self._pid != os.getpid():
            return

        async def everything() -> None:
            await asyncio.gather(*self._submitted, return_exceptions=True)

        self.run(everything(), timeout)

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                self._pid = os.getpid()
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(
                    target=self._loop.run_forever, name=self.name, daemon=True
                )
                self._thread.start()
            return self._loop

    def _after_fork(self) -> None:
        # The parent's thread does not exist here and its lock may be held.
        self._lock = threading.Lock()
        self._loop = None
        self._thread = None
        self._submitted = set()

    def stop(self) -> None:
        """Stop the loop and its thread (the next run() starts new ones)."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is not None and thread is not None and self._pid == os.getpid():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
            loop.close()


def _reset_after_fork() -> None:
    for instance in list(_instances):
        instance._after_fork()


os.register_at_fork(after_in_child=_reset_after_fork)
