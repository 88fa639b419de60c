"""A schedule firing every second, for the beat tests."""

from __future__ import annotations

import json
import os
import time
from datetime import timedelta

import redis

from taskcore import TaskApp, current_task

app = TaskApp("scheduled")
PREFIX = os.environ.get("TEST_KEY_PREFIX", "taskcore-test:unset:")
_redis = redis.Redis.from_url(os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))


@app.task(queue="periodic")
def tick(label: str) -> None:
    _redis.rpush(
        PREFIX + "log",
        json.dumps({"event": "tick", "at": time.time(), "id": current_task.id, "label": label}),
    )


app.schedule("every-second", tick, every=timedelta(seconds=1), args=("s",))
app.schedule("nightly", tick, cron="0 2 * * *", args=("n",))
