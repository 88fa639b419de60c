"""Publishing from synchronous code: one loop thread and broker client per process."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Sequence

from .broker import BrokerClient
from .errors import PublishError
from .loop_thread import LoopThread
from .message import Envelope
from .settings import Settings
from .topology import Topology


class SyncPublisher:
    """Blocking publish with confirms, safe to call from any thread and after fork()."""

    def __init__(self, settings: Settings, topology: Topology) -> None:
        self.settings = settings
        self.topology = topology
        self._loop = LoopThread()
        self._client: BrokerClient | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def publish(self, envelopes: Sequence[Envelope], queues: Iterable[str] = ()) -> None:
        """Publish and wait until the broker confirmed every envelope (or raise PublishError)."""
        client = self._client_for_this_process()
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

    def close(self) -> None:
        """Close the connection and stop the loop thread."""
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
