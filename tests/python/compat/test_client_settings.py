"""Issue 13, rows 5 and 6: the client's knobs, and changing them on a live client.

0.2.1 keeps ``base_url``, ``timeout``, ``verify_ssl`` and ``headers`` as
plain attributes and hands them to a new ``httpx.Client`` on every call, so
``timeout=None`` means no limit, ``verify_ssl`` may be a bool, a CA file path
or an ``ssl.SSLContext``, and assigning an attribute takes effect on the next
request.
"""

from __future__ import annotations

import ssl
import warnings

import pytest
from kxy_open_id_client import IdGenerator, OpenIdClientError, SegmentClient

from fakes import HttpFake, TlsFiles
from installed import IS_KXY_PY
from kxy_server import KxyServer

COUNTER = ("my-system", "my_database", "users", "id")


def test_timeout_none_means_no_limit(kxy: KxyServer) -> None:
    client = SegmentClient(base_url=kxy.base_url, timeout=None)
    segment = client.allocate_segment(*COUNTER, segment_count=10)
    assert (segment.start, segment.end) == (1, 10)


def test_verify_ssl_false_accepts_a_self_signed_server(fake, tls: TlsFiles) -> None:
    server = fake(tls=tls)
    client = SegmentClient(base_url=server.url, verify_ssl=False)
    assert client.allocate_segment(*COUNTER, segment_count=10).end == 10


def test_verify_ssl_as_a_ca_file(fake, tls: TlsFiles) -> None:
    server = fake(tls=tls)
    client = SegmentClient(base_url=server.url, verify_ssl=str(tls.ca))
    with warnings.catch_warnings():
        # httpx 0.28 deprecates verify=<str> (DeprecationWarning) but honours it.
        warnings.simplefilter("ignore", DeprecationWarning)
        assert client.allocate_segment(*COUNTER, segment_count=10).end == 10


def test_verify_ssl_as_an_ssl_context(fake, tls: TlsFiles) -> None:
    server = fake(tls=tls)
    client = SegmentClient(base_url=server.url, verify_ssl=ssl.create_default_context(cafile=str(tls.ca)))
    assert client.allocate_segment(*COUNTER, segment_count=10).end == 10


def test_verify_ssl_true_refuses_a_self_signed_server(fake, tls: TlsFiles) -> None:
    server = fake(tls=tls)
    client = SegmentClient(base_url=server.url)
    with pytest.raises(OpenIdClientError):
        client.allocate_segment(*COUNTER, segment_count=10)
    # 0.2.1 raises OpenIdConnectionError (httpx reports TLS failures as a
    # ConnectError); any OpenIdClientError is allowed (README D5).


# -- row 6: assigning attributes takes effect on the next request ----------


def test_assigning_base_url(fake) -> None:
    first, second = fake(), fake()
    client = SegmentClient(base_url=first.url)
    client.allocate_segment(*COUNTER, segment_count=10)
    client.base_url = second.url
    client.allocate_segment(*COUNTER, segment_count=10)
    assert (len(first.requests), len(second.requests)) == (1, 1)


def test_assigning_timeout(fake) -> None:
    slow = fake(delay=1.0)
    client = SegmentClient(base_url=slow.url, timeout=5.0)
    assert client.allocate_segment(*COUNTER, segment_count=10).end == 10
    client.timeout = 0.3
    with pytest.raises(OpenIdClientError):
        client.allocate_segment(*COUNTER, segment_count=10)


def test_changing_a_header_in_place(fake) -> None:
    recorder = fake()
    client = SegmentClient(base_url=recorder.url, headers={"Authorization": "Bearer old"})
    client.allocate_segment(*COUNTER, segment_count=10)
    client.headers["Authorization"] = "Bearer new"
    client.allocate_segment(*COUNTER, segment_count=10)
    assert [r.headers.get("authorization") for r in recorder.requests] == ["Bearer old", "Bearer new"]


def test_assigning_headers(fake) -> None:
    recorder = fake()
    client = SegmentClient(base_url=recorder.url, headers={"Authorization": "Bearer old"})
    client.allocate_segment(*COUNTER, segment_count=10)
    client.headers = {"Authorization": "Bearer new", "X-Custom-Header": "value"}
    client.allocate_segment(*COUNTER, segment_count=10)
    last = recorder.requests[-1].headers
    assert (last.get("authorization"), last.get("x-custom-header")) == ("Bearer new", "value")


def test_assigning_the_generators_segment_count(fake) -> None:
    recorder = fake()
    generator = IdGenerator(SegmentClient(recorder.url), *COUNTER, segment_count=10)
    assert [generator.next_id() for _ in range(10)] == list(range(1, 11))
    changed = len(recorder.requests)
    generator.segment_count = 3
    for _ in range(19):
        generator.next_id()
    # Every segment asked for after the assignment has the new size. A
    # generator that prefetches may have sent the request for the next
    # segment before it, reaching the fake after `changed` was read: at most
    # that one, first, has the old size.
    after = [r.json()["segment_count"] for r in recorder.requests[changed:]]
    assert after and after[-1] == 3
    assert after[1:].count(10) == 0, after
