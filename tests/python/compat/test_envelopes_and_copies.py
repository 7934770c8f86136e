"""Issue 13, row 15: copies of clients and generators, odd envelopes, redirects, User-Agent.

0.2.1's clients and async generators are plain Python objects, so pickle
and deepcopy copy them. It reads the answer with
``ApiResponse[SegmentResponse].model_validate`` after ``raise_for_status()``
(httpx does not follow redirects), so the envelope is read leniently:
a missing ``code`` is success, ``"1"`` is coerced to 1, ``data: null``
returns ``None``, and a body that is not JSON is an ``OpenIdClientError``.
"""

from __future__ import annotations

import asyncio
import copy
import json
import pickle

import pytest
from kxy_open_id_client import AsyncIdGenerator, IdGenerator, OpenIdAPIError, OpenIdClientError, SegmentClient
from kxy_open_id_client.exceptions import OpenIdConnectionError

from fakes import HttpFake
from installed import IS_KXY_PY, IS_PUBLISHED
from kxy_server import KxyServer

COUNTER = ("my-system", "my_database", "users", "id")


# -- copies -----------------------------------------------------------------


@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_a_copied_client_allocates(kxy: KxyServer, how: str) -> None:
    client = SegmentClient(base_url=kxy.base_url, timeout=5.0, headers={"X-Custom-Header": "value"})
    copied = pickle.loads(pickle.dumps(client)) if how == "pickle" else copy.deepcopy(client)
    assert (copied.base_url, copied.timeout, copied.headers) == (kxy.base_url, 5.0, {"X-Custom-Header": "value"})
    assert copied.allocate_segment(*COUNTER, segment_count=10).start == 1
    assert client.allocate_segment(*COUNTER, segment_count=10).start == 11


@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_a_copied_async_generator_allocates(kxy: KxyServer, how: str) -> None:
    generator = AsyncIdGenerator(SegmentClient(kxy.base_url), *COUNTER, segment_count=10)
    copied = pickle.loads(pickle.dumps(generator)) if how == "pickle" else copy.deepcopy(generator)

    async def main():
        return [await copied.next_id() for _ in range(3)]

    assert asyncio.run(main()) == [1, 2, 3]


@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_copying_an_id_generator(kxy: KxyServer, how: str) -> None:
    generator = IdGenerator(SegmentClient(kxy.base_url), *COUNTER, segment_count=10)
    if IS_PUBLISHED:
        # Issue 13 says generators can be copied; 0.2.1's IdGenerator holds a
        # threading.Lock, so pickle and deepcopy refuse it.
        with pytest.raises(TypeError, match="_thread.lock"):
            pickle.dumps(generator) if how == "pickle" else copy.deepcopy(generator)
    else:
        # Copying is allowed to work in kxy-py (README D8); if it does, the
        # copy must allocate its own IDs, never repeat the original's.
        try:
            copied = pickle.loads(pickle.dumps(generator)) if how == "pickle" else copy.deepcopy(generator)
        except TypeError:
            return
        first = generator.next_id()
        assert copied.next_id() != first


# -- odd envelopes ----------------------------------------------------------


def answering(fake, body, status: int = 200) -> SegmentClient:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return SegmentClient(base_url=fake(HttpFake.fixed(status, raw)).url)


def test_an_envelope_without_code_is_success(fake) -> None:
    client = answering(fake, {"data": {"start": 1, "end": 10}})
    segment = client.allocate_segment(*COUNTER, segment_count=10)
    assert (segment.start, segment.end) == (1, 10)


def test_a_string_code_is_an_error(fake) -> None:
    client = answering(fake, {"code": "1", "msg": "refused", "data": None})
    with pytest.raises(OpenIdClientError) as raised:
        client.allocate_segment(*COUNTER, segment_count=10)
    # 0.2.1 coerces "1" to 1 and raises OpenIdAPIError(code=1); kxy-py may
    # raise an OpenIdConnectionError for the envelope it cannot read (README D6).
    assert isinstance(raised.value, (OpenIdAPIError, OpenIdConnectionError))
    if IS_PUBLISHED:
        assert (raised.value.code, raised.value.msg) == (1, "refused")


def test_success_with_data_null(fake) -> None:
    client = answering(fake, {"code": 0, "msg": "ok", "data": None})
    if IS_PUBLISHED:
        assert client.allocate_segment(*COUNTER, segment_count=10) is None
        return
    # Deliberate (README D10): a success without a segment is a broken
    # server. 0.2.1 returned None, on which its own IdGenerator then failed
    # with AttributeError; kxy-py raises, caught by the base class.
    with pytest.raises(OpenIdConnectionError, match="success without a segment"):
        client.allocate_segment(*COUNTER, segment_count=10)


def test_a_200_that_is_not_json_is_a_client_error(fake) -> None:
    client = answering(fake, b"not json")
    with pytest.raises(OpenIdClientError) as raised:
        client.allocate_segment(*COUNTER, segment_count=10)
    if IS_PUBLISHED:  # the wording is kxy-py's own (README D4)
        assert str(raised.value).startswith("Unexpected error")


def test_a_redirect_is_not_followed(fake) -> None:
    target = fake()
    client = SegmentClient(base_url=fake(HttpFake.redirect(target.url + "/api/segment/allocate")).url)
    with pytest.raises(OpenIdConnectionError) as raised:
        client.allocate_segment(*COUNTER, segment_count=10)
    if IS_PUBLISHED:  # the wording is kxy-py's own (README D4)
        assert str(raised.value).startswith("HTTP error 302")
    # README D9: whatever kxy-py does with a redirect, it is not a GET.
    assert [r.method for r in target.requests if r.method == "GET"] == []
    if IS_PUBLISHED:
        assert target.requests == []  # httpx does not follow redirects at all


def test_a_user_agent_is_sent(fake) -> None:
    recorder = fake()
    SegmentClient(base_url=recorder.url).allocate_segment(*COUNTER, segment_count=10)
    user_agent = recorder.requests[0].headers.get("user-agent", "")
    # Deliberate difference (README D7): the value names the client
    # (python-httpx/<version> for 0.2.1, kxy's own for kxy-py); both send one.
    assert user_agent
    if IS_PUBLISHED:
        assert user_agent.startswith("python-httpx/")


def test_the_request_body(fake) -> None:
    recorder = fake()
    SegmentClient(base_url=recorder.url).allocate_segment(*COUNTER, segment_count=10)
    request = recorder.requests[0]
    assert (request.method, request.path) == ("POST", "/api/segment/allocate")
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {
        "system_code": "my-system", "db_name": "my_database", "table_name": "users", "field_name": "id",
        "segment_count": 10,
    }
