"""The generator's cache: threads, runs, outages, recovery, failover."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from kxy_open_id_client import IdGenerator, OpenIdConnectionError, SegmentClient

from kxy_server import KxyServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_eight_threads_of_100_000_ids_never_repeat(kxy: KxyServer) -> None:
    ids = IdGenerator(SegmentClient(kxy.base_url), "my-system", "my_database", "users", "id", 1000)
    results: list[list[int]] = [[] for _ in range(8)]

    def generate(slot: int) -> None:
        next_id = ids.next_id
        results[slot] = [next_id() for _ in range(100_000)]

    threads = [threading.Thread(target=generate, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every_id = [i for r in results for i in r]
    assert len(set(every_id)) == len(every_id) == 800_000
    assert min(every_id) >= 1


def test_next_ids_returns_consecutive_runs(kxy: KxyServer) -> None:
    ids = IdGenerator(SegmentClient(kxy.base_url), "my-system", "my_database", "orders", "id", 1000)
    first = ids.next_ids(10)
    assert first == range(1, 11)
    runs = [ids.next_ids(n) for n in (1, 999, 5000, 100_000)]
    assert [len(r) for r in runs] == [1, 999, 5000, 100_000]
    taken = [i for r in [first, *runs] for i in r] + [ids.next_id() for _ in range(10)]
    assert len(set(taken)) == len(taken)


def test_with_adaptive_sizing_the_segment_size_grows_with_fast_use(kxy: KxyServer) -> None:
    ids = IdGenerator(SegmentClient(kxy.base_url), "my-system", "my_database", "orders", "id", 1000, adaptive=True)
    for _ in range(300_000):
        ids.next_id()
    assert ids.next_segment_count > 1000


def test_cached_ids_outlive_the_server_then_the_generator_recovers(tmp_path) -> None:
    from kxy_server import register

    data_dir = tmp_path / "data"
    register(data_dir, "my-system", "my_database", "users", "id")
    bind = f"127.0.0.1:{free_port()}"
    server = KxyServer(data_dir, bind=bind)
    ids = IdGenerator(SegmentClient(server.base_url, timeout=1.0), "my-system", "my_database", "users", "id", 1000, max_wait=0.5)
    before = [ids.next_id() for _ in range(300)]
    deadline = time.monotonic() + 10
    while ids.buffered < 1700:  # the prefetched segment has arrived
        assert time.monotonic() < deadline
        time.sleep(0.01)
    server.stop()

    before += [ids.next_id() for _ in range(ids.buffered)]
    started = time.monotonic()
    with pytest.raises(OpenIdConnectionError, match="no IDs available after waiting 500ms"):
        ids.next_id()
    assert time.monotonic() - started < 10

    server = KxyServer(data_dir, bind=bind)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                after = ids.next_id()
                break
            except OpenIdConnectionError:
                assert time.monotonic() < deadline, "no recovery"
        assert after > max(before)
        assert len(set(before)) == len(before)
    finally:
        server.stop()


def test_with_every_server_down_the_wait_is_bounded() -> None:
    urls = [f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"]
    ids = IdGenerator(SegmentClient(urls, timeout=1.0), "my-system", "my_database", "users", "id", max_wait=0.3)
    started = time.monotonic()
    with pytest.raises(OpenIdConnectionError, match="no IDs available after waiting 300ms"):
        ids.next_id()
    assert time.monotonic() - started < 5


def test_a_dead_first_url_fails_over_to_the_second(kxy: KxyServer) -> None:
    client = SegmentClient([f"http://127.0.0.1:{free_port()}", kxy.base_url])
    assert client.base_urls[1] == kxy.base_url
    ids = IdGenerator(client, "my-system", "my_database", "users", "id", 100)
    assert [ids.next_id() for _ in range(3)] == [1, 2, 3]
    assert client.allocate_segment("my-system", "my_database", "orders", "id", 5).end == 5


def test_the_gil_is_released_while_waiting() -> None:
    ids = IdGenerator(
        SegmentClient(f"http://127.0.0.1:{free_port()}", timeout=1.0),
        "my-system", "my_database", "users", "id", max_wait=1.0,
    )
    ticks = 0
    waiting = threading.Event()

    def wait_for_ids() -> None:
        waiting.set()
        with pytest.raises(OpenIdConnectionError):
            ids.next_id()

    waiter = threading.Thread(target=wait_for_ids)
    waiter.start()
    waiting.wait()
    while waiter.is_alive():  # runs only if next_id let go of the GIL
        ticks += 1
        time.sleep(0.001)
    assert ticks > 50
