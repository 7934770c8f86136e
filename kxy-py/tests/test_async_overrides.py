"""AsyncIdGenerator calls a patched or overridden ``allocate_segment_async``.

0.2.1's ``AsyncIdGenerator`` fetched with ``await
segment_client.allocate_segment_async(...)``, so async code and its tests
mock or override that method; a client whose ``allocate_segment_async`` is
not the stock one sends the generator the Python way. (Found by a hostile
review.)
"""

from __future__ import annotations

import asyncio
import socket
from unittest import mock

from kxy_open_id_client import AsyncIdGenerator, SegmentClient, SegmentResponse

COUNTER = ("s", "d", "t", "id")


def nowhere() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_patching_allocate_segment_async_on_the_class() -> None:
    fake = mock.AsyncMock(return_value=SegmentResponse(start=70, end=79))
    with mock.patch.object(SegmentClient, "allocate_segment_async", fake):
        gen = AsyncIdGenerator(SegmentClient(nowhere()), *COUNTER, segment_count=10)
        assert asyncio.run(gen.next_id()) == 70
    fake.assert_awaited_once()


def test_patching_allocate_segment_async_on_the_instance() -> None:
    client = SegmentClient(nowhere())
    gen = AsyncIdGenerator(client, *COUNTER, segment_count=10)
    with mock.patch.object(client, "allocate_segment_async", mock.AsyncMock(return_value=SegmentResponse(start=70, end=79))):
        assert asyncio.run(gen.next_id()) == 70


def test_a_subclass_overriding_allocate_segment_async() -> None:
    class Cached(SegmentClient):
        async def allocate_segment_async(self, system_code, db_name, table_name, field_name, segment_count=10000):
            return SegmentResponse(start=7000, end=7000 + segment_count - 1)

    gen = AsyncIdGenerator(Cached(nowhere()), *COUNTER, segment_count=10)
    assert asyncio.run(gen.next_id()) == 7000
