"""The client never hands out an ID twice, even when servers do.

Each test is a situation a deployment can get into, run against real
kxy-server processes: a store rolled back under a running program, two
servers on two stores behind one client, a fork the Python hooks do not
see, runs longer than the server gives, a first server that hangs, and
IDs at the top of the 64-bit range.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import pathlib
import pickle
import socket
import subprocess
import time
import warnings
from typing import Iterator

import pytest
from kxy_open_id_client import (
    AsyncIdGeneratorFactory,
    IdGenerator,
    IdGeneratorFactory,
    OpenIdAPIError,
    OpenIdConnectionError,
    OpenIdStoreError,
    SegmentClient,
    _fork,
)

from kxy_server import KxyServer, register, server_binary

HIGH_START = 1_000_000_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def drain(ids: IdGenerator, limit: int = 1_000_000) -> tuple[list[int], Exception]:
    """Takes IDs until the generator raises; returns them and the error.
    Fails if it is still handing out IDs after ``limit`` (far more than it
    can have cached)."""
    taken = []
    while len(taken) < limit:
        try:
            taken.append(ids.next_id())
        except Exception as error:  # noqa: BLE001 (the test inspects it)
            return taken, error
    pytest.fail(f"the generator kept handing out IDs ({limit} after the refusal began)")


class PrivateRedis:
    """A redis-server of the test's own on a free port (never the shared one)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True).returncode != 0:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        self.url = f"redis://127.0.0.1:{self.port}"

    def set(self, key: str, value: int) -> None:
        subprocess.run(["redis-cli", "-p", str(self.port), "SET", key, str(value)], check=True, capture_output=True)

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    redis = PrivateRedis()
    yield redis
    redis.stop()


def redis_store_args(redis: PrivateRedis) -> list[str]:
    # The test Redis keeps nothing on disk, which the server accepts only
    # when told so. A shared store needs a token signing key the store does
    # not hold.
    return ["--store", "redis", "--redis-url", redis.url, "--redis-durability", "unsafe",
            "--jwt-secret", "kxy test signing key: at least 32 bytes long"]


def test_a_rolled_back_store_is_refused_and_no_id_repeats(tmp_path: pathlib.Path, private_redis: PrivateRedis) -> None:
    store = redis_store_args(private_redis)
    subprocess.run(
        [server_binary(), *store, "--data-dir", str(tmp_path / "first"), "counters", "add",
         "--system", "my-system", "--db", "my_database",
         "--table", "users", "--field", "id", "--start", str(HIGH_START)],
        check=True, capture_output=True,
    )
    bind = f"127.0.0.1:{free_port()}"
    server = KxyServer(tmp_path / "first", *store, bind=bind)
    ids = IdGenerator(SegmentClient(server.base_url), "my-system", "my_database", "users", "id", 100, max_wait=1.0)
    handed_out = [ids.next_id() for _ in range(250)]
    assert handed_out[0] == HIGH_START + 1

    # The store is restored from an old backup; the server restarts afresh.
    server.stop()
    private_redis.set("kxy:id:segment:my-system:my_database:users:id", 0)
    server = KxyServer(tmp_path / "fresh", *store, bind=bind)
    try:
        rest, error = drain(ids)
        handed_out += rest
        assert len(set(handed_out)) == len(handed_out)
        # The client tells the server its store and high water with every
        # request, so the server refuses before handing anything out.
        assert isinstance(error, OpenIdAPIError), repr(error)
        assert error.code == 50303
        assert "went backwards" in error.msg

        # A new client sends no hint, and the server hands the old range out
        # again: the process's fence discards it.
        newcomer = SegmentClient(server.base_url)
        with pytest.raises(OpenIdStoreError, match="went backwards") as refused:
            newcomer.allocate_segment("my-system", "my_database", "users", "id", 10)
        assert isinstance(refused.value, OpenIdConnectionError)
        assert refused.value.url == server.base_url
        copy = pickle.loads(pickle.dumps(refused.value))
        assert (copy.reason, copy.url, str(copy)) == ("went_backwards", server.base_url, str(refused.value))
        assert newcomer.discarded_segments == 1
    finally:
        server.stop()


def test_a_client_keeps_to_its_store_when_its_server_dies(tmp_path: pathlib.Path) -> None:
    servers = []
    for name in ("a", "b"):
        register(tmp_path / name, "my-system", "my_database", "users", "id")
        servers.append(KxyServer(tmp_path / name))
    first, second = servers
    try:
        client = SegmentClient([first.base_url, second.base_url])
        ids = IdGenerator(client, "my-system", "my_database", "users", "id", 50, max_wait=1.0)
        handed_out = [ids.next_id() for _ in range(500)]
        first.stop()
        rest, error = drain(ids)
        handed_out += rest
        assert len(set(handed_out)) == len(handed_out)
        assert isinstance(error, OpenIdStoreError), repr(error)
        assert error.reason == "store_mismatch"
        assert ids.discarded_segments >= 1
    finally:
        second.stop()


def test_a_fork_the_python_hooks_never_see_still_gets_ids_of_its_own(kxy: KxyServer) -> None:
    ids = IdGenerator(SegmentClient(kxy.base_url), "my-system", "my_database", "users", "id", 1000)
    parent = [ids.next_id() for _ in range(300)]
    read_end, write_end = os.pipe()
    # fork() straight from the C library, as a C extension would: Python's
    # os.register_at_fork hooks do not run, only pthread_atfork handlers.
    pid = ctypes.PyDLL(None).fork()
    if pid == 0:
        status = 0
        try:
            taken = [ids.next_id() for _ in range(3000)]
            os.write(write_end, "\n".join(map(str, taken)).encode())
        except BaseException as error:  # noqa: BLE001 (reported to the parent)
            os.write(write_end, f"error: {error!r}".encode())
            status = 1
        finally:
            os._exit(status)
    os.close(write_end)
    parent += [ids.next_id() for _ in range(3000)]
    with os.fdopen(read_end, "rb") as pipe:
        report = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    assert status == 0, report
    child = [int(line) for line in report.splitlines()]
    assert len(child) == 3000
    assert min(child) > parent[299], "the child fetched segments of its own"
    every_id = parent + child
    assert len(set(every_id)) == len(every_id)


def test_a_failing_reset_after_fork_does_not_skip_the_others(kxy: KxyServer) -> None:
    ids = IdGenerator(SegmentClient(kxy.base_url), "my-system", "my_database", "users", "id", 1000)
    ids.next_id()
    assert ids.buffered > 0

    class Unresettable:
        def _reset_after_fork(self) -> None:
            raise RuntimeError("cannot reset")

    broken = Unresettable()
    _fork.track(broken)
    # What a forked child runs; here in this process, which only costs the
    # cached IDs.
    with pytest.warns(RuntimeWarning, match="Unresettable: RuntimeError"):
        _fork._after_fork_in_child()
    assert ids.buffered == 0, "the generator was reset despite the failure before or after it"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ids.next_id() > 1


def test_next_ids_longer_than_allowed_is_a_value_error(tmp_path: pathlib.Path) -> None:
    register(tmp_path / "data", "my-system", "my_database", "users", "id")
    server = KxyServer(tmp_path / "data", "--max-segment", "1000")
    try:
        ids = IdGenerator(SegmentClient(server.base_url), "my-system", "my_database", "users", "id", 100,
                          max_segment_count=100_000, max_wait=2.0)
        assert len(ids.next_ids(800)) == 800  # above the request size, within the server's limit
        with pytest.raises(ValueError, match="n = 5000 is more than the server hands out"):
            ids.next_ids(5000)
        # Longer than the generator's largest segment: asked of the server
        # directly, which allows no more than 1000.
        with pytest.raises(ValueError, match="n = 100001 is more than the server hands out"):
            ids.next_ids(100_001)
        assert ids.next_id() > 800
    finally:
        server.stop()


def test_a_hung_first_server_does_not_keep_next_id_from_the_second(kxy: KxyServer) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # connects complete, nothing is ever answered
    try:
        client = SegmentClient([f"http://127.0.0.1:{silent.getsockname()[1]}", kxy.base_url])
        # One round: the hung server has the client's timeout, then the next one is asked.
        client.timeout = 1.0
        ids = IdGenerator(client, "my-system", "my_database", "users", "id", 100)
        assert ids.next_id() == 1
        # Retrying (max_wait): each server gets a share of it.
        client.timeout = 30.0
        ids = IdGenerator(client, "my-system", "my_database", "orders", "id", 100, max_wait=5.0)
        assert ids.next_id() == 1
    finally:
        silent.close()


def test_next_ids_can_end_at_the_largest_id(tmp_path: pathlib.Path) -> None:
    largest = 9223372036854775807
    register(tmp_path / "data", "my-system", "my_database", "users", "id", start=largest - 1000)
    server = KxyServer(tmp_path / "data")
    try:
        ids = IdGenerator(SegmentClient(server.base_url), "my-system", "my_database", "users", "id", 500)
        assert ids.next_ids(500) == range(largest - 999, largest - 499)
        top = ids.next_ids(500)
        assert top == range(largest - 499, largest + 1)
        assert top[-1] == largest and len(top) == 500
        with pytest.raises(OpenIdAPIError) as exhausted:
            ids.next_id()
        assert exhausted.value.code // 100 == 409
    finally:
        server.stop()


def test_factories_tell_apart_names_that_join_alike(kxy: KxyServer) -> None:
    factory = IdGeneratorFactory(SegmentClient(kxy.base_url), "my-system", "my_database")
    dotted_table = factory.get_generator("a.b", "c")
    dotted_field = factory.get_generator("a", "b.c")
    assert dotted_table is not dotted_field
    assert (dotted_table.table_name, dotted_table.field_name) == ("a.b", "c")
    assert (dotted_field.table_name, dotted_field.field_name) == ("a", "b.c")
    assert factory.get_generator("a.b", "c") is dotted_table


def test_async_factories_tell_apart_names_that_join_alike(kxy: KxyServer) -> None:
    async def generators() -> tuple[object, object, object]:
        factory = AsyncIdGeneratorFactory(SegmentClient(kxy.base_url), "my-system", "my_database")
        return (
            await factory.get_generator("a.b", "c"),
            await factory.get_generator("a", "b.c"),
            await factory.get_generator("a.b", "c"),
        )

    dotted_table, dotted_field, again = asyncio.run(generators())
    assert dotted_table is not dotted_field
    assert again is dotted_table
