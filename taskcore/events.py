"""Lifecycle events: one small JSON message per state change, on a topic exchange.

Workers publish them fire-and-forget (no confirm wait, in the background) so
that recording history never slows a task down; ``taskcore recorder`` keeps
them in a durable queue and writes them to the database in batches.
Routing keys are ``task.<state>``, e.g. ``task.success``.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from typing import Any

from pamqp.commands import Basic

from .broker import BrokerClient
from .errors import PublishError
from .message import Envelope
from .settings import Settings
from .states import State
from .topology import Topology

log = logging.getLogger(__name__)


class EventPublisher:
    """Publishes task events without confirms: losing one is acceptable, waiting is not."""

    def __init__(self, settings: Settings, topology: Topology) -> None:
        self.topology = topology
        self.client = BrokerClient(replace(settings, confirm_publish=False), topology)
        self._warned = False

    async def emit(self, task_id: str, state: State, fields: dict[str, Any]) -> None:
        """Publish one event; trouble is logged once, never raised."""
        body = {"task_id": task_id, "state": str(state), "at": time.time(), **fields}
        envelope = Envelope(
            self.topology.events_exchange,
            f"task.{state.lower()}",
            json.dumps(body, default=str).encode(),
            Basic.Properties(content_type="application/json", delivery_mode=2),
            mandatory=False,  # no recorder queue yet: the event is simply not kept
        )
        try:
            await self.client.publish_fast(envelope)
            self._warned = False
        except PublishError as exc:
            if not self._warned:
                log.warning("could not publish task events (%s); history will have gaps", exc)
                self._warned = True

    async def close(self) -> None:
        await self.client.close()
