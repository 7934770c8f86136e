"""The calls of kxy-open-id-client's README, against a real kxy-server.

These tests run twice: with the published client 0.2.1 and with kxy's own
package (same import name), which is what makes ours a drop-in.
"""

from __future__ import annotations

import asyncio
import threading

from kxy_open_id_client import (
    AsyncIdGenerator,
    AsyncIdGeneratorFactory,
    IdGenerator,
    IdGeneratorFactory,
    SegmentClient,
)

from kxy_server import KxyServer


def test_allocate_segment_as_in_the_client_readme(kxy: KxyServer) -> None:
    client = SegmentClient(base_url=kxy.base_url)
    segment = client.allocate_segment(
        system_code="my-system",
        db_name="my_database",
        table_name="users",
        field_name="id",
        segment_count=10000,
    )
    assert (segment.start, segment.end) == (1, 10000)
    # The default segment_count of the client is 10000 too.
    segment = client.allocate_segment("my-system", "my_database", "users", "id")
    assert (segment.start, segment.end) == (10001, 20000)


def test_allocate_segment_async(kxy: KxyServer) -> None:
    async def main() -> list[tuple[int, int]]:
        client = SegmentClient(base_url=kxy.base_url)
        segments = await asyncio.gather(
            *[
                client.allocate_segment_async("my-system", "my_database", "orders", "order_id", 5000)
                for _ in range(10)
            ]
        )
        return sorted((s.start, s.end) for s in segments)

    ranges = asyncio.run(main())
    assert ranges == [(1 + i * 5000, (i + 1) * 5000) for i in range(10)]


def test_id_generator_hands_out_consecutive_ids(kxy: KxyServer) -> None:
    client = SegmentClient(base_url=kxy.base_url)
    id_gen = IdGenerator(
        segment_client=client,
        system_code="my-system",
        db_name="my_database",
        table_name="users",
        field_name="id",
        segment_count=100,
    )
    ids = [id_gen.next_id() for _ in range(1000)]
    assert ids == list(range(1, 1001))


def test_id_generator_across_threads_never_repeats(kxy: KxyServer) -> None:
    client = SegmentClient(base_url=kxy.base_url)
    id_gen = IdGenerator(client, "my-system", "my_database", "users", "id", segment_count=500)
    results: list[list[int]] = [[] for _ in range(8)]

    def generate(slot: int) -> None:
        results[slot] = [id_gen.next_id() for _ in range(5000)]

    threads = [threading.Thread(target=generate, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every_id = [i for ids in results for i in ids]
    assert len(every_id) == len(set(every_id)) == 40000


def test_two_generators_on_one_counter_share_no_id(kxy: KxyServer) -> None:
    # As two processes of one service would: separate clients, one counter.
    a = IdGenerator(SegmentClient(kxy.base_url), "my-system", "my_database", "orders", "id", 64)
    b = IdGenerator(SegmentClient(kxy.base_url), "my-system", "my_database", "orders", "id", 64)
    ids = [g.next_id() for _ in range(2000) for g in (a, b)]
    assert len(ids) == len(set(ids))


def test_async_id_generator(kxy: KxyServer) -> None:
    async def main() -> list[int]:
        client = SegmentClient(base_url=kxy.base_url)
        id_gen = AsyncIdGenerator(client, "my-system", "my_database", "orders", "order_id", 10000)
        return [await id_gen.next_id() for _ in range(5)]

    assert asyncio.run(main()) == [1, 2, 3, 4, 5]


def test_factories_keep_one_generator_per_table(kxy: KxyServer) -> None:
    client = SegmentClient(base_url=kxy.base_url)
    factory = IdGeneratorFactory(client, "my-system", "my_database")
    user_id = factory.get_generator("users").next_id()
    order_id = factory.get_generator("orders").next_id()
    product_id = factory.get_generator("products").next_id()
    assert (user_id, order_id, product_id) == (1, 1, 1)
    assert factory.get_generator("users") is factory.get_generator("users")
    assert factory.get_generator("users").next_id() == 2

    async def main() -> tuple[int, int]:
        factory = AsyncIdGeneratorFactory(client, "my-system", "my_database", segment_count=10)
        gen = await factory.get_generator("orders", "order_id")
        assert gen is await factory.get_generator("orders", "order_id")
        return await gen.next_id(), await gen.next_id()

    assert asyncio.run(main()) == (1, 2)


def test_client_configuration_from_the_readme(kxy: KxyServer) -> None:
    client = SegmentClient(
        base_url=kxy.base_url + "/",  # the client strips a trailing slash
        timeout=5.0,
        verify_ssl=True,
        headers={"X-Custom-Header": "value", "X-Trace-Id": "legacy-client-1"},
    )
    segment = client.allocate_segment("my-system", "my_database", "users", "id", 1)
    assert (segment.start, segment.end) == (1, 1)
