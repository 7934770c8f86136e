"""``AsyncIdGenerator.next_ids(n)`` serves runs longer than a segment.

As the sync ``next_ids(n)``, a run longer than the largest segment is
asked of the server directly; the async call does it on a thread of its
own (a blocking call may not run on a runtime thread), under asyncio and
trio. (Found by a hostile review: it always failed.)
"""

from __future__ import annotations

import asyncio

import pytest
import trio
from kxy_open_id_client import AsyncIdGenerator, IdGenerator, SegmentClient

COUNTER = ("s", "d", "t", "id")

from fake_kxy import FakeKxy


@pytest.fixture
def client():
    server = FakeKxy()
    yield SegmentClient(server.url)
    server.stop()


def test_sync_next_ids_longer_than_a_segment(client) -> None:
    assert len(IdGenerator(client, *COUNTER, segment_count=10).next_ids(25)) == 25


@pytest.mark.parametrize("run", [lambda f: asyncio.run(f()), trio.run], ids=["asyncio", "trio"])
def test_async_next_ids_longer_than_a_segment(client, run) -> None:
    gen = AsyncIdGenerator(client, *COUNTER, segment_count=10)

    async def take():
        return await gen.next_ids(25)

    assert len(run(take)) == 25
