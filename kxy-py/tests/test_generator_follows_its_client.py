"""A generator moved to another client follows only the new one.

``gen.segment_client = new`` detaches the generator from the old client, so
a later settings change on the old client no longer switches the
generator back to the old client's servers and credentials. (Found by a
hostile review.)
"""

from __future__ import annotations

import time

from kxy_open_id_client import IdGenerator, SegmentClient

COUNTER = ("s", "d", "t", "id")

from fake_kxy import FakeKxy


def test_the_old_clients_settings_no_longer_reach_the_generator() -> None:
    old_server, new_server = FakeKxy(first=1), FakeKxy(first=1000)
    try:
        old, new = SegmentClient(old_server.url), SegmentClient(new_server.url)
        gen = IdGenerator(old, *COUNTER, segment_count=5)
        assert gen.next_id() == 1
        deadline = time.monotonic() + 10
        while gen.buffered < 9 and time.monotonic() < deadline:  # the prefetch from the old server is in
            time.sleep(0.01)
        gen.segment_client = new
        old.headers["X-Unrelated"] = "1"  # someone reconfigures the old client
        before = len(old_server.requests)
        ids = [gen.next_id() for _ in range(20)]
        assert gen.segment_client is new
        assert len(old_server.requests) == before, (
            f"generator of {new_server.url} fetched from the old client's server: {ids}"
        )
    finally:
        old_server.stop()
        new_server.stop()
