"""Store pins survive settings changes: no store switch repeats IDs.

A client pins each counter to the store that first answered for it, and a
server on another store is refused (``OpenIdStoreError``). Changing a
setting rebuilds the client's native client; every rebuilt one shares the
pins, so a request still in flight on the old one (a generator's prefetch,
a thread in ``allocate_segment``) pins for the new one too, and a
``base_url`` moved afterwards to a server on another store is refused.
(Found by a hostile review: the pins were copied, not shared, and the
second store handed out the same IDs again.)
"""

from __future__ import annotations

import threading
import uuid

import pytest
from kxy_open_id_client import IdGenerator, OpenIdStoreError, SegmentClient

COUNTER = ("s", "d", "t", "id")

from fake_kxy import FakeKxy


@pytest.fixture
def stores():
    # fresh store ids: the high-water marks are per process and per store
    a, b = FakeKxy(uuid.uuid4().hex), FakeKxy(uuid.uuid4().hex)
    yield a, b
    a.stop()
    b.stop()


def test_switching_to_another_store_is_refused(stores) -> None:
    a, b = stores
    client = SegmentClient(a.url)
    assert client.allocate_segment(*COUNTER, segment_count=10).start == 1
    client.base_url = b.url
    with pytest.raises(OpenIdStoreError):
        client.allocate_segment(*COUNTER, segment_count=10)


def test_a_settings_change_during_a_request_keeps_the_pin(stores) -> None:
    a, b = stores
    client = SegmentClient(a.url)
    a.gate.clear()  # store A answers only when released
    got = []
    t = threading.Thread(target=lambda: got.append(client.allocate_segment(*COUNTER, segment_count=10)))
    t.start()
    assert a.arrived.wait(10)
    client.headers["X-Request-Source"] = "batch"  # any setting: the native client is rebuilt
    a.gate.set()
    t.join(10)
    assert (got[0].start, got[0].end) == (1, 10)  # from store A: the counter is pinned to A
    client.base_url = b.url
    with pytest.raises(OpenIdStoreError):
        second = client.allocate_segment(*COUNTER, segment_count=10)
        pytest.fail(f"store B's segment {second.start}..{second.end} was accepted: IDs 1..10 handed out twice")


def test_two_generators_sharing_a_client_never_share_an_id(stores) -> None:
    a, b = stores
    client = SegmentClient(a.url)
    first = IdGenerator(client, *COUNTER, segment_count=10)
    a.gate.clear()
    got = []
    t = threading.Thread(target=lambda: got.append(first.next_id()))
    t.start()
    assert a.arrived.wait(10)
    client.timeout = 10.0  # e.g. a config reload while the generator fetches
    a.gate.set()
    t.join(10)
    assert got == [1]
    client.base_url = b.url  # failover to a server of another deployment
    second = IdGenerator(client, *COUNTER, segment_count=10)
    try:
        other = second.next_id()
    except OpenIdStoreError:
        return
    assert other not in range(1, 11), f"ID {other} handed out by both generators"
