"""In a forked child, a generator and its client share their store pins.

After ``os.fork()`` every client and generator is reset; the generator's
rebuilt client and the ``SegmentClient``'s rebuilt native client share one
set of pins, so a store the generator pinned in the child is known to the
client, and moving ``client.base_url`` to a server on another store is
refused there as it is without the fork. (Found by a hostile review.)
"""

from __future__ import annotations

import os
import uuid

import pytest
from kxy_open_id_client import IdGenerator, OpenIdStoreError, SegmentClient

COUNTER = ("s", "d", "t", "id")

from fake_kxy import FakeKxy


def scenario(client, store_b_url):
    """The generator takes an ID; failover to store B; B's segment must be refused."""
    gen_ids = [IdGenerator(client, *COUNTER, segment_count=10).next_id()]
    client.base_url = store_b_url
    try:
        seg = client.allocate_segment(*COUNTER, segment_count=10)
    except OpenIdStoreError:
        return "refused"
    return f"accepted {seg.start}..{seg.end} after the generator handed out {gen_ids}"


def test_without_fork_the_switch_is_refused() -> None:
    a, b = FakeKxy(uuid.uuid4().hex), FakeKxy(uuid.uuid4().hex)
    try:
        assert scenario(SegmentClient(a.url), b.url) == "refused"
    finally:
        a.stop()
        b.stop()


def test_in_a_forked_child_the_switch_is_refused() -> None:
    a, b = FakeKxy(uuid.uuid4().hex), FakeKxy(uuid.uuid4().hex)
    try:
        client = SegmentClient(a.url)
        gen = IdGenerator(client, *COUNTER, segment_count=10)  # made before the fork, used after
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                taken = gen.next_id()
                client.base_url = b.url
                try:
                    seg = client.allocate_segment(*COUNTER, segment_count=10)
                    out = f"accepted {seg.start}..{seg.end} after the generator handed out {taken}"
                except OpenIdStoreError:
                    out = "refused"
            except BaseException as error:  # noqa: BLE001
                out = f"error {error!r}"
            os.write(write_end, out.encode())
            os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end) as pipe:
            out = pipe.read()
        os.waitpid(pid, 0)
        assert out == "refused"
    finally:
        a.stop()
        b.stop()
