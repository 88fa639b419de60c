"""The Coalescer that batches the worker's acks, state writes and events."""

from __future__ import annotations

import asyncio

import pytest

from taskcore.coalesce import Coalescer


def test_items_of_one_iteration_share_a_flush_and_later_ones_wait_their_turn() -> None:
    flushed: list[list[int]] = []

    async def slow_flush(items: list[int]) -> None:
        flushed.append(items)
        await asyncio.sleep(0.05)

    async def main() -> None:
        batcher: Coalescer[int] = Coalescer(slow_flush)
        first = [batcher.add(i) for i in range(3)]
        await asyncio.sleep(0.01)  # the first flush is running now
        second = [batcher.add(i) for i in range(3, 6)]
        await asyncio.sleep(0)
        assert flushed == [[0, 1, 2]]  # no second flush while the first runs
        await asyncio.gather(*first, *second)
        assert all(f.done() for f in first + second)

    asyncio.run(main())
    assert flushed == [[0, 1, 2], [3, 4, 5]]


def test_a_failed_flush_fails_its_own_items_only() -> None:
    async def flush(items: list[str]) -> None:
        if "bad" in items:
            raise ConnectionError("redis went away")

    async def main() -> None:
        batcher: Coalescer[str] = Coalescer(flush)
        bad = batcher.add("bad")
        with pytest.raises(ConnectionError):
            await bad
        await batcher.add("good")  # the next flush works
        await batcher.drain()

    asyncio.run(main())
