"""Tasks for tests/test_testing.py: run in-process and by a real worker, which must agree."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from taskcore import Reject, TaskApp, current_task

app = TaskApp("testing")


@app.task(queue="testing")
def add(a: int, b: int) -> int:
    return a + b


@app.task(queue="testing")
async def double(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


@app.task(
    queue="testing",
    max_retries=3,
    retry_backoff=0.2,
    retry_jitter=False,
    autoretry_for=(ConnectionError,),
)
def flaky(failures: int) -> str:
    """Fails with ConnectionError on its first ``failures`` attempts."""
    if current_task.attempt <= failures:
        raise ConnectionError(f"attempt {current_task.attempt} failed")
    return f"succeeded on attempt {current_task.attempt}"


@app.task(
    queue="testing",
    max_retries=2,
    retry_backoff=30.0,
    retry_backoff_max=60.0,
    autoretry_for=(ConnectionError,),
)
def slow_to_retry(failures: int) -> int:
    """Like flaky, but a worker would wait 15-60 s before each retry."""
    if current_task.attempt <= failures:
        raise ConnectionError(f"attempt {current_task.attempt} failed")
    return current_task.attempt


@app.task(queue="testing")
def reporting(steps: int) -> dict[str, Any]:
    """Reports progress at every step; returns what current_task says about itself."""
    for step in range(1, steps + 1):
        current_task.progress(step, steps, f"step {step}")
    return {"id": current_task.id, "attempt": current_task.attempt, "queue": current_task.queue}


@app.task(queue="testing", bind=True)
def who_am_i(self: Any) -> dict[str, Any]:
    return {"id": self.request.id, "task": self.request.task, "retries": self.request.retries}


@app.task(queue="testing")
def fan_out(n: int) -> list[str]:
    """Sends ``n`` adds; they run after this task (as a worker would run them)."""
    return [add.delay(i, i).id for i in range(n)]


@app.task(queue="testing")
def not_json() -> Any:
    return {1, 2}


@app.task(queue="testing")
def refuse(why: str) -> None:
    raise Reject(why)


@app.task(queue="testing")
def sleep_then_add(seconds: float, a: int, b: int) -> int:
    time.sleep(seconds)
    return a + b


@app.task(queue="testing")
async def leaves_a_task_running() -> str:
    async def forever() -> None:
        while True:
            await asyncio.sleep(1)

    asyncio.ensure_future(forever())  # noqa: RUF006 - left running on purpose
    return "done"
