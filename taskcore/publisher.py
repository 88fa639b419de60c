"""Publishing from synchronous code: one loop thread and broker client per process.

Callers on many threads at once (a threaded web server) share the loop thread:
each call adds its envelopes to a pending list, and only the call that finds
the list empty wakes the loop. One wake-up then publishes every call pending
by then, pipelined on the one confirm channel, and hands each caller its own
outcome. A lone caller pays one wake-up, as before; eight callers pay one
wake-up per batch instead of one each.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
import weakref
from collections.abc import Iterable, Sequence
from concurrent.futures import Future

from .broker import BrokerClient, publish_timeout_for
from .errors import PublishError
from .loop_thread import LoopThread
from .message import Envelope
from .settings import Settings
from .topology import Topology

#: Live publishers, flushed at interpreter exit (weak: a replaced one is not kept alive).
_publishers: weakref.WeakSet[SyncPublisher] = weakref.WeakSet()


class SyncPublisher:
    """Blocking publish with confirms, safe to call from any thread and after fork()."""

    def __init__(self, settings: Settings, topology: Topology, loop: LoopThread) -> None:
        self.settings = settings
        self.topology = topology
        self._loop = loop
        self._client: BrokerClient | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self._pending: list[_Call] = []
        self._pending_lock = threading.Lock()
        self._publishing: set[asyncio.Task[None]] = set()
        _publishers.add(self)

    def publish(self, envelopes: Sequence[Envelope], queues: Iterable[str] = ()) -> None:
        """Publish and wait until the broker confirmed every envelope (or raise PublishError).

        With confirms off (TASKCORE_CONFIRM_PUBLISH=0) and the connection up,
        hand the envelopes to the loop thread and return at once: no delivery
        guarantee, as the setting says. A broker that is down still raises.
        """
        client = self._client_for_this_process()
        queues = set(queues)
        if not self.settings.confirm_publish and client.declared(queues):
            self._loop.submit(client.publish_unconfirmed(envelopes))
            return
        call = _Call(envelopes, queues)
        with self._pending_lock:
            self._pending.append(call)
            first = len(self._pending) == 1
        if first:
            self._loop.call_soon(self._publish_pending, client)
        # The publish enforces its own timeout (longer for a big map); this outer bound,
        # 5 s longer, only guards against a wedged loop thread.
        wait = publish_timeout_for(self.settings, len(envelopes)) + 5
        try:
            call.outcome.result(timeout=wait)
        except TimeoutError:
            raise PublishError(
                f"publishing to {self.settings.safe_broker_url} hung for more than {wait}s"
            ) from None

    def _publish_pending(self, client: BrokerClient) -> None:
        """On the loop thread: start publishing every call pending now."""
        with self._pending_lock:
            calls, self._pending = self._pending, []
        if calls:
            task = asyncio.ensure_future(_publish_calls(client, calls))
            self._publishing.add(task)  # keep a reference until it is done
            task.add_done_callback(self._publishing.discard)

    def flush(self) -> None:
        """Wait for unconfirmed publishes handed to the loop thread (also run at exit)."""
        if self._client is not None and self._pid == os.getpid():
            self._loop.wait_submitted(timeout=self.settings.publish_timeout)

    def close(self) -> None:
        """Send what is pending, close the connection and stop the loop thread."""
        self.flush()
        client, self._client = self._client, None
        if client is not None and self._pid == os.getpid():
            try:
                self._loop.run(client.close(), timeout=5)
            finally:
                self._loop.stop()

    def _client_for_this_process(self) -> BrokerClient:
        pid = os.getpid()
        if self._client is None or self._pid != pid:
            if self._pid != pid:
                # A forked child: the parent's locks, calls and connection are not ours.
                self._lock = threading.Lock()
                self._pending_lock = threading.Lock()
                self._pending = []
                self._publishing = set()
                self._client = None
            with self._lock:
                if self._client is None:
                    self._client = BrokerClient(self.settings, self.topology)
                    self._pid = pid
        return self._client


class _Call:
    """One caller's envelopes and the future its thread waits on."""

    __slots__ = ("envelopes", "outcome", "queues")

    def __init__(self, envelopes: Sequence[Envelope], queues: set[str]) -> None:
        self.envelopes = envelopes
        self.queues = queues
        self.outcome: Future[None] = Future()


async def _publish_calls(client: BrokerClient, calls: list[_Call]) -> None:
    """Publish each call's envelopes concurrently; each caller gets its own outcome."""
    if len(calls) == 1:
        outcomes: list[BaseException | None] = [await _outcome(client, calls[0])]
    else:
        outcomes = await asyncio.gather(*(_outcome(client, call) for call in calls))
    for call, error in zip(calls, outcomes, strict=True):
        if error is None:
            call.outcome.set_result(None)
        else:
            call.outcome.set_exception(error)


async def _outcome(client: BrokerClient, call: _Call) -> BaseException | None:
    try:
        await client.publish(call.envelopes, call.queues)
    except Exception as exc:
        return exc
    return None


@atexit.register
def _flush_all_at_exit() -> None:
    for publisher in list(_publishers):
        publisher.flush()
