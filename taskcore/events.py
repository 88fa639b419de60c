"""Lifecycle events: a JSON object per state change, published on a topic exchange.

Workers publish them fire-and-forget (no confirm wait, in the background) so
that recording history never slows a task down; ``taskcore recorder`` keeps
them in a durable queue and writes them to the database in batches. The
events of each ``LINGER`` seconds travel together: one message per state whose
body is a JSON array of events, routed as ``task.<state>`` (``task.success``).
A draining worker so sends a few event messages a second instead of one or
more per loop iteration (each a socket write on the loop's thread).
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any

from .broker import BrokerClient
from .coalesce import Coalescer
from .errors import PublishError
from .settings import Settings
from .states import State
from .topology import Topology

log = logging.getLogger(__name__)

#: Seconds the first event of a batch waits for more.
LINGER = 0.05


class EventPublisher:
    """Publishes task events without confirms: losing one is acceptable, waiting is not."""

    def __init__(self, settings: Settings, topology: Topology) -> None:
        self.topology = topology
        self.client = BrokerClient(replace(settings, confirm_publish=False), topology)
        self._pending: Coalescer[dict[str, Any]] = Coalescer(self._publish, linger=LINGER)
        self._warned = False

    def emit(self, task_id: str, state: State, fields: dict[str, Any]) -> None:
        """Queue one event for the batch now lingering; trouble is logged, never raised."""
        event = {"task_id": task_id, "state": str(state), "at": time.time(), **fields}
        self._pending.put(event)

    async def _publish(self, events: list[dict[str, Any]]) -> None:
        by_state: dict[str, list[dict[str, Any]]] = {}
        for event in events:
            by_state.setdefault(event["state"], []).append(event)
        try:
            for state, batch in by_state.items():
                await self.client.publish_fast(self.topology.events_envelope(state, batch))
            self._warned = False
        except PublishError as exc:
            if not self._warned:
                log.warning("could not publish task events (%s); history will have gaps", exc)
                self._warned = True

    async def close(self) -> None:
        await self._pending.drain()
        await self.client.close()
