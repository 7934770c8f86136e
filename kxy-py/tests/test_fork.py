"""A forked process never hands out IDs its parent cached."""

from __future__ import annotations

import multiprocessing

from kxy_open_id_client import IdGenerator, SegmentClient

from kxy_server import KxyServer

_ids: IdGenerator


def _child_ids(count: int) -> list[int]:
    return [_ids.next_id() for _ in range(count)]


def test_forked_children_never_reuse_the_parents_cache(kxy: KxyServer) -> None:
    global _ids
    _ids = IdGenerator(SegmentClient(kxy.base_url), "my-system", "my_database", "users", "id", 10_000)
    parent = [_ids.next_id() for _ in range(100)]  # the cache now holds 9,900 more
    context = multiprocessing.get_context("fork")
    with context.Pool(4) as pool:
        children = pool.map(_child_ids, [20_000] * 4)
    parent += [_ids.next_id() for _ in range(20_000)]
    every_id = parent + [i for c in children for i in c]
    assert len(set(every_id)) == len(every_id) == 100_100
