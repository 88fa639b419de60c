"""Schedules in time zones, for `taskcore schedule next`/`list` and the beat's DST tests.

The app's zone is Europe/Berlin (given in code, so TASKCORE_TIMEZONE does not matter
here); the Berlin schedules keep it, the others give their own ``tz=``.
"""

from __future__ import annotations

import json
import os
import time
from datetime import timedelta

import redis

from taskcore import TaskApp, current_task

app = TaskApp("zoned", timezone="Europe/Berlin")
PREFIX = os.environ.get("TEST_KEY_PREFIX", "taskcore-test:unset:")
_redis = redis.Redis.from_url(os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))


@app.task(queue="periodic")
def tick(label: str) -> None:
    _redis.rpush(
        PREFIX + "log",
        json.dumps({"event": "tick", "at": time.time(), "id": current_task.id, "label": label}),
    )


# 02:30 is in the hour Berlin skips in March and repeats in October (02:00-03:00).
app.schedule("berlin-0230", tick, cron="30 2 * * *", args=("berlin",))
app.schedule("berlin-hourly", tick, cron="0 * * * *", args=("hourly",))
# New York skips 02:00-03:00 in March and repeats 01:00-02:00 in November.
app.schedule("new-york-0130", tick, cron="30 1 * * *", args=("ny1",), tz="America/New_York")
app.schedule("new-york-0230", tick, cron="30 2 * * *", args=("ny2",), tz="America/New_York")
app.schedule("manila-nightly", tick, cron="0 2 * * *", args=("manila",), tz="Asia/Manila")
# every= is the same instants in any zone; the zone only shows them.
app.schedule("every-6h", tick, every=timedelta(hours=6), args=("6h",), tz="Asia/Manila")
