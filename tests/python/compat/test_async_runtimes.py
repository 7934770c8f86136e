"""Issue 13, row 12: the async API under trio, and cancelling a request.

0.2.1's async calls are ``httpx.AsyncClient`` requests, which run on any
event loop anyio supports (asyncio and trio); cancelling the awaiting task
(``asyncio.wait_for`` running out) closes the connection.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import trio
from kxy_open_id_client import AsyncIdGenerator, SegmentClient

from installed import IS_KXY_PY
from kxy_server import KxyServer

COUNTER = ("my-system", "my_database", "users", "id")


def test_allocate_segment_async_under_trio(kxy: KxyServer) -> None:
    client = SegmentClient(base_url=kxy.base_url)

    async def main():
        return await client.allocate_segment_async(*COUNTER, segment_count=10)

    segment = trio.run(main)
    assert (segment.start, segment.end) == (1, 10)


def test_async_id_generator_under_trio(kxy: KxyServer) -> None:
    generator = AsyncIdGenerator(SegmentClient(kxy.base_url), *COUNTER, segment_count=2)

    async def main():
        return [await generator.next_id() for _ in range(5)]

    assert trio.run(main) == [1, 2, 3, 4, 5]


def test_wait_for_cancels_the_request(fake) -> None:
    slow = fake(delay=3.0)
    client = SegmentClient(base_url=slow.url, timeout=10.0)

    async def main() -> float:
        began = time.monotonic()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(client.allocate_segment_async(*COUNTER, segment_count=10), 0.3)
        assert time.monotonic() - began < 1.0
        return time.monotonic()

    cancelled_at = asyncio.run(main())
    # The fake sees the connection closed soon after, not when it answers at 3 s.
    deadline = time.monotonic() + 2.0
    while not slow.closed_at and time.monotonic() < deadline:
        time.sleep(0.02)
    assert slow.closed_at, "the request kept going after the cancellation"
    assert slow.closed_at[0] - cancelled_at < 0.5
