"""Clients and ID generators, with the API of kxy-open-id-client 0.2.1.

``SegmentClient`` allocates segments from a kxy server. ``IdGenerator``
hands out IDs from a local cache of segments: ``next_id()`` is a lock-free
step in the current segment, and the next segment is fetched in the
background before the current one runs out, so calls do not wait on the
network at steady load. The GIL is released whenever a call does wait.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from typing import Dict, Mapping, Optional, Sequence, Tuple, Union

from . import _fork, _native
from .exceptions import (  # noqa: F401 (0.2.1 exported them from here too)
    OpenIdAPIError,
    OpenIdClientError,
    OpenIdConnectionError,
    OpenIdTimeoutError,
)
from .models import ApiResponse, SegmentRequest, SegmentResponse  # noqa: F401

BaseUrl = Union[str, Sequence[str]]


class SegmentClient(_native.NativeSegmentClient):
    """Client for allocating ID segments from kxy.

    Args:
        base_url: the server's URL (e.g. ``"http://localhost:5801"``), or a
            list of URLs tried in order when one fails.
        timeout: request timeout in seconds (default 30.0); ``None`` waits as
            long as it takes, as in kxy-open-id-client 0.2.1.
        verify_ssl: whether to verify TLS certificates (default True).
        headers: extra headers sent with every request.
        api_key: sent as ``Authorization: Bearer <api_key>``.
        connect_timeout: seconds a connect to one server may take (default
            1.0, at most ``timeout``), so that with several base URLs a dead
            one is left quickly.

    The first server that answers for a counter names its store, and the
    client keeps to that store for the counter: a segment from a server on
    another store, or one that does not start above the IDs this process
    already received, is discarded (``discarded_segments`` counts them) and
    the next base URL is tried; see ``OpenIdStoreError``.
    """

    def __init__(
        self,
        base_url: BaseUrl,
        timeout: Optional[float] = 30.0,
        verify_ssl: bool = True,
        headers: Optional[Mapping[str, str]] = None,
        *,
        api_key: Optional[str] = None,
        connect_timeout: float = 1.0,
    ) -> None:
        self.base_url = base_url.rstrip("/") if isinstance(base_url, str) else self.base_urls[0]
        self.timeout = timeout
        self.verify_ssl = verify_ssl
        self.headers = dict(headers or {})
        self.connect_timeout = connect_timeout
        _fork.track(self)

    def allocate_segment(
        self,
        system_code: str,
        db_name: str,
        table_name: str,
        field_name: str,
        segment_count: int = 10000,
    ) -> SegmentResponse:
        """Allocates ``segment_count`` IDs of one counter.

        Returns:
            SegmentResponse: ``start`` and ``end`` of the segment, inclusive.

        Raises:
            OpenIdAPIError: the server refused (unregistered counter, ...).
            OpenIdConnectionError: no server could be reached.
            OpenIdStoreError: every answer was a segment the client
                discarded (its store went backwards, or is not the pinned one).
            OpenIdTimeoutError: no answer within ``timeout``.
            ValueError: an invalid name or ``segment_count``.
        """
        start, end = self._allocate(system_code, db_name, table_name, field_name, segment_count)
        return SegmentResponse(start=start, end=end)

    async def allocate_segment_async(
        self,
        system_code: str,
        db_name: str,
        table_name: str,
        field_name: str,
        segment_count: int = 10000,
    ) -> SegmentResponse:
        """``allocate_segment`` for asyncio code; the event loop keeps running."""
        call = functools.partial(
            self._allocate, system_code, db_name, table_name, field_name, segment_count
        )
        start, end = await asyncio.get_running_loop().run_in_executor(None, call)
        return SegmentResponse(start=start, end=end)


class IdGenerator(_native.NativeIdGenerator):
    """Thread-safe ID generator for one counter, backed by a local cache.

    Args:
        segment_client: the ``SegmentClient`` to fetch segments with.
        system_code, db_name, table_name, field_name: the counter.
        segment_count: size of the first segment, and the smallest; later
            segments grow (up to ``max_segment_count``, default ten million)
            so that each lasts about ten seconds at the rate IDs are used.
        max_segment_count: the largest segment to ask for.
        max_wait: when the cache is empty and no server answers, how many
            seconds ``next_id`` waits before raising.

    ``next_id()`` returns the next ID; ``next_ids(n)`` returns ``n``
    consecutive IDs as a ``range`` (``ValueError`` if ``n`` is more than
    ``max_segment_count`` or than the server hands out at once).
    ``next_id()`` never returns an ID at or below one it returned before:
    segments that would allow it are discarded and counted in
    ``discarded_segments``. A forked child never hands out the IDs its
    parent cached, with or without ``os.register_at_fork``.
    """

    def __init__(
        self,
        segment_client: SegmentClient,
        system_code: str,
        db_name: str,
        table_name: str,
        field_name: str,
        segment_count: int = 10000,
        *,
        max_segment_count: Optional[int] = None,
        max_wait: float = 5.0,
    ) -> None:
        self.segment_client = segment_client
        self.system_code = system_code
        self.db_name = db_name
        self.table_name = table_name
        self.field_name = field_name
        self.segment_count = segment_count
        _fork.track(self)


class AsyncIdGenerator:
    """ID generator for asyncio code: ``await next_id()``.

    Cached IDs are returned at once; only when the cache is empty does the
    call wait for a segment, in a worker thread, without blocking the loop.
    Arguments are those of ``IdGenerator``.
    """

    def __init__(
        self,
        segment_client: SegmentClient,
        system_code: str,
        db_name: str,
        table_name: str,
        field_name: str,
        segment_count: int = 10000,
        *,
        max_segment_count: Optional[int] = None,
        max_wait: float = 5.0,
    ) -> None:
        self._ids = IdGenerator(
            segment_client,
            system_code,
            db_name,
            table_name,
            field_name,
            segment_count,
            max_segment_count=max_segment_count,
            max_wait=max_wait,
        )
        self.segment_client = segment_client
        self.system_code = system_code
        self.db_name = db_name
        self.table_name = table_name
        self.field_name = field_name
        self.segment_count = segment_count

    async def next_id(self) -> int:
        """The next ID."""
        cached = self._ids.try_next_id()
        if cached is not None:
            return cached
        return await asyncio.get_running_loop().run_in_executor(None, self._ids.next_id)

    async def next_ids(self, n: int) -> range:
        """``n`` consecutive IDs as a ``range``."""
        return await asyncio.get_running_loop().run_in_executor(None, self._ids.next_ids, n)


class IdGeneratorFactory:
    """One ``IdGenerator`` per (table, field) of a database, created on first use."""

    def __init__(
        self,
        segment_client: SegmentClient,
        system_code: str,
        db_name: str,
        segment_count: int = 10000,
    ) -> None:
        self.segment_client = segment_client
        self.system_code = system_code
        self.db_name = db_name
        self.segment_count = segment_count
        # Keyed by the (table, field) tuple: a joined string is ambiguous
        # ("a.b", "c") vs ("a", "b.c").
        self._generators: Dict[Tuple[str, str], IdGenerator] = {}
        self._lock = threading.Lock()

    def get_generator(
        self, table_name: str, field_name: str = "id", segment_count: Optional[int] = None
    ) -> IdGenerator:
        """The generator of ``table_name``.``field_name``."""
        key = (table_name, field_name)
        generator = self._generators.get(key)
        if generator is None:
            with self._lock:
                generator = self._generators.get(key)
                if generator is None:
                    generator = IdGenerator(
                        self.segment_client,
                        self.system_code,
                        self.db_name,
                        table_name,
                        field_name,
                        segment_count or self.segment_count,
                    )
                    self._generators[key] = generator
        return generator


class AsyncIdGeneratorFactory:
    """One ``AsyncIdGenerator`` per (table, field); ``await get_generator(...)``."""

    def __init__(
        self,
        segment_client: SegmentClient,
        system_code: str,
        db_name: str,
        segment_count: int = 10000,
    ) -> None:
        self.segment_client = segment_client
        self.system_code = system_code
        self.db_name = db_name
        self.segment_count = segment_count
        # Keyed by the (table, field) tuple, as in IdGeneratorFactory.
        self._generators: Dict[Tuple[str, str], AsyncIdGenerator] = {}
        self._lock = asyncio.Lock()

    async def get_generator(
        self, table_name: str, field_name: str = "id", segment_count: Optional[int] = None
    ) -> AsyncIdGenerator:
        """The generator of ``table_name``.``field_name``."""
        key = (table_name, field_name)
        async with self._lock:
            if key not in self._generators:
                self._generators[key] = AsyncIdGenerator(
                    self.segment_client,
                    self.system_code,
                    self.db_name,
                    table_name,
                    field_name,
                    segment_count or self.segment_count,
                )
        return self._generators[key]
