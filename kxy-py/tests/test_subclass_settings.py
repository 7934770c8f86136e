"""A ``SegmentClient`` subclass may compute a setting with a property.

As with 0.2.1, where every request sent ``self.headers``, a subclass can
make ``headers`` a property that returns a fresh token each time: settings
are read through the attributes. (Found by a hostile review.)
"""

from __future__ import annotations

import itertools

from kxy_open_id_client import SegmentClient

COUNTER = ("s", "d", "t", "id")

from fake_kxy import FakeKxy


def test_a_headers_property_is_sent() -> None:
    server = FakeKxy()
    tokens = itertools.count(1)

    class Refreshing(SegmentClient):
        @property
        def headers(self):
            return {"Authorization": f"Bearer t{next(tokens)}"}

        @headers.setter
        def headers(self, value):
            pass

    try:
        client = Refreshing(server.url)
        client.allocate_segment(*COUNTER, segment_count=5)
        client.allocate_segment(*COUNTER, segment_count=5)
        sent = [h.get("authorization") for h, _ in server.requests]
        assert all(s and s.startswith("Bearer t") for s in sent) and len(set(sent)) == 2, sent
    finally:
        server.stop()
