"""Programs written for kxy-open-id-client 0.2.1 keep working: knobs they
assign, fakes and mocks they pass, subclasses they write, copies they make.
(The side-by-side suite in tests/python/compat runs the same scenarios
against the published client; these tests cover what only ours has: a
background cache that must follow such changes.)"""

from __future__ import annotations

import asyncio
import copy
import logging
import pickle
import socket
import threading
import time
from unittest import mock

import pydantic
import pytest
from kxy_open_id_client import (
    AsyncIdGenerator,
    IdGenerator,
    OpenIdAPIError,
    OpenIdClientError,
    OpenIdConnectionError,
    SegmentClient,
    SegmentResponse,
)

from kxy_server import KxyServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakeClient:
    """What users pass in unit tests: anything with allocate_segment."""

    def __init__(self) -> None:
        self.calls: list[dict[str, object]] = []
        self.next_start = 1

    def allocate_segment(self, **kwargs: object) -> SegmentResponse:
        self.calls.append(kwargs)
        count = int(kwargs["segment_count"])  # type: ignore[call-overload]
        start, self.next_start = self.next_start, self.next_start + count
        return SegmentResponse(start=start, end=start + count - 1)

    async def allocate_segment_async(self, **kwargs: object) -> SegmentResponse:
        return self.allocate_segment(**kwargs)


def test_a_fake_client_is_called_as_the_published_generator_called_it() -> None:
    fake = FakeClient()
    ids = IdGenerator(fake, "my-system", "my_database", "users", "id", 3)
    assert [ids.next_id() for _ in range(7)] == [1, 2, 3, 4, 5, 6, 7]
    assert fake.calls == [
        dict(system_code="my-system", db_name="my_database", table_name="users", field_name="id", segment_count=3)
    ] * 3


def test_a_mock_client_works_and_is_asserted_on() -> None:
    client = mock.Mock()
    client.allocate_segment.return_value = SegmentResponse(start=100, end=199)
    ids = IdGenerator(client, "my-system", "my_database", "users", "id", 100)
    assert ids.next_id() == 100
    client.allocate_segment.assert_called_once_with(
        system_code="my-system", db_name="my_database", table_name="users", field_name="id", segment_count=100
    )


def test_a_patch_applied_after_the_generator_was_made_is_used_and_then_undone(kxy: KxyServer) -> None:
    ids = IdGenerator(SegmentClient(kxy.base_url), "my-system", "my_database", "users", "id", 10)
    assert ids.next_id() == 1  # the real server
    with mock.patch.object(SegmentClient, "allocate_segment", return_value=SegmentResponse(start=500, end=509)) as m:
        assert ids.next_id() == 500
        assert m.call_count == 1
    assert ids.next_id() == 2, "back on the real server's cache once the patch is gone"


def test_an_instance_patch_and_a_subclass_override_are_called(kxy: KxyServer) -> None:
    client = SegmentClient(kxy.base_url)
    with mock.patch.object(client, "allocate_segment", return_value=SegmentResponse(start=7, end=8)):
        assert IdGenerator(client, "my-system", "my_database", "users", "id").next_id() == 7

    class Audited(SegmentClient):
        def __init__(self, url: str, audit: list[int]) -> None:  # its own signature
            super().__init__(url)
            self.audit = audit

        def allocate_segment(self, *args: object, **kwargs: object) -> SegmentResponse:
            segment = super().allocate_segment(*args, **kwargs)  # type: ignore[arg-type]
            self.audit.append(segment.start)
            return segment

    audit: list[int] = []
    ids = IdGenerator(Audited(kxy.base_url, audit), "my-system", "my_database", "orders", "id", 5)
    assert [ids.next_id() for _ in range(6)] == [1, 2, 3, 4, 5, 6]
    assert audit == [1, 6]


def test_a_new_api_key_reaches_a_generators_next_fetch(kxy_requiring_keys: tuple[KxyServer, str]) -> None:
    server, key = kxy_requiring_keys
    client = SegmentClient(server.base_url)
    ids = IdGenerator(client, "my-system", "my_database", "users", "id", 5)
    with pytest.raises(OpenIdAPIError):
        ids.next_id()
    client.headers["Authorization"] = f"Bearer {key}"  # as 0.2.1 users do
    assert ids.next_id() == 1
    client.headers = {}
    assert [ids.next_id() for _ in range(4)] == [2, 3, 4, 5]  # cached: no request
    with pytest.raises(OpenIdAPIError):
        for _ in range(10):  # the prefetch may hold one more segment
            ids.next_id()


def test_assigning_segment_count_and_base_url_takes_effect(kxy: KxyServer) -> None:
    client = SegmentClient(f"http://127.0.0.1:{free_port()}")
    ids = IdGenerator(client, "my-system", "my_database", "users", "id", 5)
    with pytest.raises(OpenIdConnectionError):
        ids.next_id()
    client.base_url = kxy.base_url + "/"
    assert client.base_url == kxy.base_url
    ids.segment_count = "50"  # lax, as the published model
    assert ids.next_id() == 1
    assert ids.next_segment_count == 50
    ids.segment_count = "many"  # checked by the next request, as in 0.2.1
    with pytest.raises(pydantic.ValidationError):
        ids.next_id()
    ids.segment_count = 50
    assert ids.next_id() == 2, "back on the cache, which kept its IDs"


def test_the_users_segment_count_is_the_segment_size(kxy: KxyServer) -> None:
    client = SegmentClient(kxy.base_url)
    ids = IdGenerator(client, "my-system", "my_database", "users", "id", 100)
    for _ in range(20_000):
        ids.next_id()
    # At most the current segment and one prefetched ahead.
    used = client.allocate_segment("my-system", "my_database", "users", "id", 1).start - 1
    assert 20_000 <= used <= 20_200
    assert ids.next_segment_count == 100


def test_a_down_server_fails_the_call_at_once_and_a_5xx_gets_one_request_per_call() -> None:
    ids = IdGenerator(SegmentClient(f"http://127.0.0.1:{free_port()}"), "my-system", "my_database", "users", "id")
    started = time.monotonic()
    with pytest.raises(OpenIdConnectionError):
        ids.next_id()
    assert time.monotonic() - started < 1.0

    requests: list[str] = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def answer_503() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                requests.append(conn.recv(65536).decode(errors="replace").split("\r\n")[0])
                conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")

    threading.Thread(target=answer_503, daemon=True).start()
    try:
        port = listener.getsockname()[1]
        ids = IdGenerator(SegmentClient(f"http://127.0.0.1:{port}"), "my-system", "my_database", "users", "id")
        for expected in (1, 2, 3):
            with pytest.raises(OpenIdClientError):
                ids.next_id()
            assert len(requests) == expected
    finally:
        listener.close()


def test_copies_start_with_an_empty_cache_and_never_repeat_ids(kxy: KxyServer) -> None:
    client = SegmentClient(kxy.base_url, timeout=5.0, headers={"X-Team": "ids"})
    ids = IdGenerator(client, "my-system", "my_database", "users", "id", 10)
    first = [ids.next_id() for _ in range(3)]
    for made in (pickle.loads(pickle.dumps(ids)), copy.deepcopy(ids), copy.copy(ids)):
        assert made.segment_client.headers == {"X-Team": "ids"}
        assert made.buffered == 0
        assert made.next_id() > 10, "not an ID of the original's cache"
    assert ids.next_id() == first[-1] + 1
    clone = pickle.loads(pickle.dumps(client))
    assert (clone.timeout, clone.base_url) == (5.0, kxy.base_url)
    assert clone.allocate_segment("my-system", "my_database", "orders", "id", 2).end == 2


def test_async_callers_in_an_outage_fail_fast_and_leave_the_executor_free() -> None:
    url = f"http://127.0.0.1:{free_port()}"

    async def main() -> tuple[float, float, list[BaseException]]:
        ids = AsyncIdGenerator(SegmentClient(url), "my-system", "my_database", "users", "id")
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        outcomes = asyncio.gather(*(ids.next_id() for _ in range(30)), return_exceptions=True)
        await loop.run_in_executor(None, lambda: None)
        executor_free = time.monotonic() - started
        results = await outcomes
        return executor_free, time.monotonic() - started, results

    executor_free, elapsed, results = asyncio.run(main())
    assert all(isinstance(r, OpenIdConnectionError) for r in results), results
    assert elapsed < 2.0
    assert executor_free < 0.5


def test_cancelling_an_async_request_closes_its_connection() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    closed = threading.Event()

    def hold() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.settimeout(10)
        if conn.recv(1) == b"":  # the client closed the connection
            closed.set()
        conn.close()

    threading.Thread(target=hold, daemon=True).start()
    client = SegmentClient(f"http://127.0.0.1:{listener.getsockname()[1]}", timeout=30)

    async def main() -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(client.allocate_segment_async("my-system", "my_database", "users", "id"), 0.3)

    asyncio.run(main())
    assert closed.wait(5), "the request went on after its caller was cancelled"
    listener.close()


def test_async_works_under_trio(kxy: KxyServer) -> None:
    import trio  # installed by scripts/test-python

    async def main() -> list[int]:
        client = SegmentClient(kxy.base_url)
        ids = AsyncIdGenerator(client, "my-system", "my_database", "users", "id", 3)
        segment = await client.allocate_segment_async("my-system", "my_database", "orders", "id", 5)
        assert (segment.start, segment.end) == (1, 5)
        return [await ids.next_id() for _ in range(5)]

    assert trio.run(main) == [1, 2, 3, 4, 5]


def test_requests_are_logged_at_info_as_httpx_logged_them(kxy: KxyServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="kxy_open_id_client")
    time.sleep(1.1)  # the client looks at the logger's level at most once a second
    client = SegmentClient(kxy.base_url)
    client.allocate_segment("my-system", "my_database", "users", "id", 5)
    assert f'HTTP Request: POST {kxy.base_url}/api/segment/allocate "HTTP/1.1 200 OK"' in caplog.messages
    assert all(r.name == "kxy_open_id_client" and r.levelno == logging.INFO for r in caplog.records)
