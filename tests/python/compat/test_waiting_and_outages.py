"""Issue 13, rows 10 and 11: how long ``next_id()`` waits, and how often it asks.

0.2.1's ``IdGenerator.next_id()`` makes one request with the client's
``timeout`` when its segment is used up and raises whatever that request
raised: a slow answer within ``timeout`` succeeds, a refused connection
fails at once, and a failing server sees one request per call.
``AsyncIdGenerator`` does the same with ``httpx.AsyncClient`` on the event
loop, without threads.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from kxy_open_id_client import AsyncIdGenerator, IdGenerator, OpenIdClientError, SegmentClient
from kxy_open_id_client.exceptions import OpenIdConnectionError

from fakes import HttpFake, closed_port
from installed import IS_KXY_PY

COUNTER = ("my-system", "my_database", "users", "id")


def test_a_slow_answer_within_timeout_succeeds(fake) -> None:
    slow = fake(delay=2.0)
    generator = IdGenerator(SegmentClient(slow.url, timeout=5.0), *COUNTER, segment_count=10)
    assert generator.next_id() == 1


def test_an_answer_after_six_seconds_with_timeout_ten_succeeds(fake) -> None:
    slow = fake(delay=6.0)
    generator = IdGenerator(SegmentClient(slow.url, timeout=10.0), *COUNTER, segment_count=10)
    assert generator.next_id() == 1


def test_a_slow_answer_after_timeout_fails(fake) -> None:
    slow = fake(delay=2.0)
    generator = IdGenerator(SegmentClient(slow.url, timeout=0.5), *COUNTER, segment_count=10)
    began = time.monotonic()
    with pytest.raises(OpenIdClientError):  # 0.2.1: OpenIdTimeoutError (README D5)
        generator.next_id()
    assert time.monotonic() - began < 1.5


def test_a_silent_server_and_timeout(silent) -> None:
    generator = IdGenerator(SegmentClient(silent.url, timeout=0.5), *COUNTER, segment_count=10)
    began = time.monotonic()
    with pytest.raises(OpenIdClientError):  # 0.2.1: OpenIdTimeoutError (README D5)
        generator.next_id()
    assert time.monotonic() - began < 1.5


def test_server_down_fails_within_one_second() -> None:
    generator = IdGenerator(SegmentClient(f"http://127.0.0.1:{closed_port()}"), *COUNTER, segment_count=10)
    began = time.monotonic()
    with pytest.raises(OpenIdConnectionError):
        generator.next_id()
    assert time.monotonic() - began < 1.0


def test_a_5xx_server_gets_one_request_per_failing_call(fake) -> None:
    failing = fake(HttpFake.fixed(503, b'{"code": 50300, "msg": "store unavailable"}'))
    generator = IdGenerator(SegmentClient(failing.url, timeout=2.0), *COUNTER, segment_count=10)
    for call in range(1, 4):
        with pytest.raises(OpenIdConnectionError):  # 0.2.1: "HTTP error 503: ..."
            generator.next_id()
        time.sleep(0.1)  # a background retry would show up here
        assert len(failing.requests) == call


def test_an_outage_fails_fast_and_does_not_block_the_default_executor() -> None:
    generator = AsyncIdGenerator(SegmentClient(f"http://127.0.0.1:{closed_port()}"), *COUNTER, segment_count=10)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        began = loop.time()
        calls = asyncio.gather(*(generator.next_id() for _ in range(30)), return_exceptions=True)
        await asyncio.sleep(0.05)
        # Meanwhile the loop's default thread pool is free. (0.2.1 uses no
        # threads; the loop itself is busy at most one httpx client set-up.)
        for probe in (lambda: loop.run_in_executor(None, time.sleep, 0),
                      lambda: loop.getaddrinfo("localhost", 80)):
            asked = loop.time()
            await asyncio.wait_for(probe(), 2.0)
            assert loop.time() - asked < 0.5
        results = await asyncio.wait_for(calls, 8.0)
        assert all(isinstance(r, OpenIdConnectionError) for r in results), results
        # Issue 13 measured 0.7 s for 0.2.1 on an idle machine. It builds an
        # httpx client (an SSL context) per call, 0.1-0.2 s each on a busy
        # 2-core machine, hence the margin; kxy-py today takes 25 s.
        assert loop.time() - began < 6.0

    run_without_waiting_for_threads(main())


def run_without_waiting_for_threads(coroutine) -> None:
    """``asyncio.run`` without its wait for the default executor's threads on
    the way out (a blocked worker would hold the test up): cancels what is
    left, including queued executor jobs, and closes the loop."""
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(coroutine)
    finally:
        left = asyncio.all_tasks(loop)
        for task in left:
            task.cancel()
        if left:
            loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
        loop.close()
