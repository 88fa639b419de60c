"""The beats drill's app (``taskcore beat -A scripts.drills.beat_app:app``).

One schedule fires ``drills.tick`` (scripts/drills/tasks.py) every second on the
drills queue, with the default missed-fire policy (``run_once``). Every publish
the broker confirmed is recorded in the drill's ledger: the id (the fire time's
deterministic ``drill-tick@<UTC time>``), how many times it was published and
when, so that the drill can tell on-time fires from missed ones run late.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from taskcore import TaskApp, TaskHandle

from .tasks import ledger

SCHEDULE = "drill-tick"


class LedgerApp(TaskApp):
    """A TaskApp whose sends are written down in the drill's ledger once confirmed."""

    def send_task(
        self,
        name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> TaskHandle:
        handle = super().send_task(name, args, kwargs, **options)
        with ledger.redis.pipeline(transaction=False) as pipe:
            pipe.hincrby(ledger.prefix + "published", handle.id, 1)
            pipe.hset(ledger.prefix + "published_at", handle.id, repr(time.time()))
            pipe.execute()
        ledger.sent([handle.id])
        return handle


app = LedgerApp("drills-beat")
app.schedule(SCHEDULE, "drills.tick", every=1.0, queue="drills")
