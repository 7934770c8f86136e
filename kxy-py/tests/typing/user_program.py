"""A small program written against the published client's API, type-checked
with ``mypy --strict`` by test_types.py (never run)."""

from __future__ import annotations

import asyncio
import ssl
from typing import List

from kxy_open_id_client import (
    AsyncIdGenerator,
    IdGenerator,
    IdGeneratorFactory,
    OpenIdAPIError,
    OpenIdClientError,
    OpenIdConnectionError,
    SegmentClient,
    SegmentResponse,
)
from kxy_open_id_client.client import ApiResponse, SegmentRequest


def make_ids(url: str) -> List[int]:
    client = SegmentClient(url, timeout=None, verify_ssl=ssl.create_default_context())
    client.headers["Authorization"] = "Bearer sk-kxy-example"
    client.timeout = 5.0
    segment: SegmentResponse = client.allocate_segment("my-system", "my_database", "users", "id", 100)
    ids = IdGenerator(client, "my-system", "my_database", "users", "id", segment_count=100)
    ids.segment_count = 500
    factory = IdGeneratorFactory(client, "my-system", "my_database")
    try:
        return [segment.start, ids.next_id(), factory.get_generator("orders").next_id(), *ids.next_ids(3)]
    except OpenIdAPIError as refused:
        print(refused.code, refused.msg, refused.trace_id)
    except OpenIdConnectionError:
        pass
    except OpenIdClientError:
        pass
    return []


async def make_id_async(url: str) -> int:
    ids = AsyncIdGenerator(SegmentClient(url), "my-system", "my_database", "users", "id")
    return await ids.next_id()


envelope: ApiResponse[SegmentResponse] = ApiResponse[SegmentResponse](code=0, data=SegmentResponse(start=1, end=2))
request = SegmentRequest(system_code="s", db_name="d", table_name="t", field_name="f")
print(make_ids, asyncio.run, make_id_async, envelope, request)
