"""Issue 13, rows 7, 8 and 9: fakes, mocks, subclasses and old import paths.

0.2.1's ``IdGenerator`` only calls ``segment_client.allocate_segment(...)``
with keyword arguments, so any object with that method works: a test fake,
a ``unittest.mock.Mock``, a ``SegmentClient`` subclass that overrides it,
or ``SegmentClient`` patched with ``mock.patch.object``. ``SegmentClient``
is a plain class: subclasses may have their own ``__init__``.
"""

from __future__ import annotations

import asyncio
from typing import List
from unittest import mock

import pytest

from kxy_open_id_client import AsyncIdGenerator, IdGenerator, SegmentClient, SegmentResponse

from fakes import closed_port
from installed import IS_KXY_PY
from kxy_server import KxyServer

COUNTER = ("my-system", "my_database", "users", "id")
NOWHERE = f"http://127.0.0.1:{closed_port()}"  # any network call would fail


class InMemoryClient:
    """A test double: hands out segments from a local counter."""

    def __init__(self) -> None:
        self.next_start = 1000
        self.calls: List[dict] = []

    def allocate_segment(self, system_code, db_name, table_name, field_name, segment_count=10000):
        self.calls.append(dict(system_code=system_code, db_name=db_name, table_name=table_name,
                               field_name=field_name, segment_count=segment_count))
        start, self.next_start = self.next_start, self.next_start + segment_count
        return SegmentResponse(start=start, end=start + segment_count - 1)

    async def allocate_segment_async(self, *args, **kwargs):
        return self.allocate_segment(*args, **kwargs)


def test_a_duck_typed_client() -> None:
    fake = InMemoryClient()
    generator = IdGenerator(fake, *COUNTER, segment_count=5)
    assert [generator.next_id() for _ in range(7)] == [1000, 1001, 1002, 1003, 1004, 1005, 1006]
    assert fake.calls == [
        dict(system_code="my-system", db_name="my_database", table_name="users", field_name="id", segment_count=5),
    ] * 2


def test_a_unittest_mock_client() -> None:
    client = mock.Mock()
    client.allocate_segment.return_value = SegmentResponse(start=100, end=109)
    generator = IdGenerator(client, *COUNTER, segment_count=10)
    assert [generator.next_id() for _ in range(10)] == list(range(100, 110))
    client.allocate_segment.assert_called_once_with(
        system_code="my-system", db_name="my_database", table_name="users", field_name="id", segment_count=10
    )


def test_an_async_generator_with_a_duck_typed_client() -> None:
    fake = InMemoryClient()
    generator = AsyncIdGenerator(fake, *COUNTER, segment_count=5)

    async def take(n: int) -> List[int]:
        return [await generator.next_id() for _ in range(n)]

    assert asyncio.run(take(6)) == [1000, 1001, 1002, 1003, 1004, 1005]
    assert len(fake.calls) == 2


def test_a_subclass_overriding_allocate_segment() -> None:
    class CachingClient(SegmentClient):
        def allocate_segment(self, system_code, db_name, table_name, field_name, segment_count=10000):
            return SegmentResponse(start=7000, end=7000 + segment_count - 1)

    generator = IdGenerator(CachingClient(NOWHERE), *COUNTER, segment_count=10)
    assert [generator.next_id() for _ in range(3)] == [7000, 7001, 7002]


def test_patching_segment_client_allocate_segment() -> None:
    with mock.patch.object(SegmentClient, "allocate_segment", return_value=SegmentResponse(start=50, end=59)) as patched:
        generator = IdGenerator(SegmentClient(NOWHERE), *COUNTER, segment_count=10)
        assert generator.next_id() == 50
    patched.assert_called_once_with(
        system_code="my-system", db_name="my_database", table_name="users", field_name="id", segment_count=10
    )


def test_a_subclass_with_its_own_init(kxy: KxyServer) -> None:
    class TracingClient(SegmentClient):
        def __init__(self, url: str, extra: str) -> None:
            super().__init__(url)
            self.extra = extra

    client = TracingClient(kxy.base_url, "trace-me")
    assert client.extra == "trace-me"
    assert client.allocate_segment(*COUNTER, segment_count=10).start == 1
    generator = IdGenerator(client, *COUNTER, segment_count=10)
    assert generator.next_id() == 11


def test_the_client_module_re_exports() -> None:
    from kxy_open_id_client.client import (  # noqa: F401  (0.2.1 imported them there)
        ApiResponse,
        OpenIdAPIError,
        OpenIdClientError,
        OpenIdConnectionError,
        OpenIdTimeoutError,
        SegmentRequest,
        SegmentResponse,
    )
    from kxy_open_id_client.exceptions import OpenIdConnectionError as Same
    from kxy_open_id_client.models import SegmentRequest as SameRequest

    assert OpenIdConnectionError is Same and SegmentRequest is SameRequest
