"""Publishing from synchronous code: one loop thread and broker client per process."""

from __future__ import annotations

import atexit
import os
import threading
import weakref
from collections.abc import Iterable, Sequence

from .broker import BrokerClient
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
        # The coroutine enforces publish_timeout itself; this outer bound only
        # guards against a wedged loop thread.
        try:
            self._loop.run(
                client.publish(envelopes, queues), timeout=self.settings.publish_timeout + 5
            )
        except TimeoutError:
            raise PublishError(
                f"publishing to {self.settings.safe_broker_url} hung for more than "
                f"{self.settings.publish_timeout + 5}s"
            ) from None

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
                # A forked child: the parent's lock and connection are not ours to use.
                self._lock = threading.Lock()
                self._client = None
            with self._lock:
                if self._client is None:
                    self._client = BrokerClient(self.settings, self.topology)
                    self._pid = pid
        return self._client


@atexit.register
def _flush_all_at_exit() -> None:
    for publisher in list(_publishers):
        publisher.flush()
