"""AsyncIdGenerator's Python path (fake, mock or overridden client) under
concurrency: one fetch serves every coroutine that found the cache empty,
as 0.2.1's lock did, and answers that arrive out of order are no error.
The lock is of the running loop's kind (asyncio's or trio's). (Found by a
hostile review: each coroutine fetched, and out-of-order answers were
refused.)
"""

from __future__ import annotations

import asyncio

from kxy_open_id_client import AsyncIdGenerator, SegmentResponse

COUNTER = ("s", "d", "t", "id")


class SlowFirstClient:
    """Hands out consecutive segments; the first answer is slower."""

    def __init__(self) -> None:
        self.calls = 0
        self.next_start = 1

    async def allocate_segment_async(self, system_code, db_name, table_name, field_name, segment_count=10000):
        self.calls += 1
        start, self.next_start = self.next_start, self.next_start + segment_count
        await asyncio.sleep(0.2 if start == 1 else 0.01)
        return SegmentResponse(start=start, end=start + segment_count - 1)


def test_concurrent_callers_share_one_fetch() -> None:
    client = SlowFirstClient()
    gen = AsyncIdGenerator(client, *COUNTER, segment_count=1000)

    async def main():
        return await asyncio.gather(*(gen.next_id() for _ in range(20)))

    ids = asyncio.run(main())
    assert sorted(ids) == list(range(1, 21))
    assert client.calls == 1, f"{client.calls} segments of 1000 allocated for 20 IDs"


def test_answers_out_of_order_are_not_an_error() -> None:
    client = SlowFirstClient()
    gen = AsyncIdGenerator(client, *COUNTER, segment_count=1000)

    async def main():
        return await asyncio.gather(gen.next_id(), gen.next_id(), return_exceptions=True)

    results = asyncio.run(main())
    assert not any(isinstance(r, BaseException) for r in results), results
