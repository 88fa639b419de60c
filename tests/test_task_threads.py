"""The threads plain-function tasks run on: outcomes come back to the loop, batched."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from taskcore.task_threads import TaskThreads


def test_calls_run_at_once_up_to_the_size_and_return_or_raise() -> None:
    threads = TaskThreads(4, "test-threads")
    barrier = threading.Barrier(4, timeout=5)

    def meet(i: int) -> str:
        barrier.wait()  # only passes if four calls run at the same time
        return f"{i}:{threading.current_thread().name}"

    def fail() -> None:
        raise ValueError("from the thread")

    async def main() -> list[str]:
        results = await asyncio.gather(*(threads.run(lambda i=i: meet(i)) for i in range(4)))
        with pytest.raises(ValueError, match="from the thread"):
            await threads.run(fail)
        return results

    try:
        results = asyncio.run(main())
    finally:
        threads.shutdown(wait=True)
    assert [r.split(":")[0] for r in results] == ["0", "1", "2", "3"]
    assert {r.split(":")[1] for r in results} == {f"test-threads_{i}" for i in range(4)}


def test_many_short_calls_all_settle_and_a_cancelled_wait_leaves_the_rest() -> None:
    threads = TaskThreads(8)

    async def main() -> list[int]:
        slow = asyncio.ensure_future(threads.run(lambda: time.sleep(0.2)))
        await asyncio.sleep(0.05)
        slow.cancel()  # the thread finishes it; its outcome is dropped
        return await asyncio.gather(*(threads.run(lambda i=i: i * i) for i in range(2000)))

    try:
        assert asyncio.run(main()) == [i * i for i in range(2000)]
    finally:
        threads.shutdown(wait=True)


def test_shutdown_cancels_calls_not_started() -> None:
    threads = TaskThreads(1)
    started = threading.Event()

    async def main() -> None:
        first = asyncio.ensure_future(threads.run(lambda: (started.set(), time.sleep(0.3))))
        second = asyncio.ensure_future(threads.run(lambda: "never"))
        await asyncio.to_thread(started.wait, 5)
        threads.shutdown()
        with pytest.raises(asyncio.CancelledError):
            await second
        await first  # the running call still ends
        with pytest.raises(RuntimeError, match="shut down"):
            await threads.run(lambda: None)

    asyncio.run(main())
    threads.shutdown(wait=True)
