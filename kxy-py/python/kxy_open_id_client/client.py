"""Clients and ID generators, with the API of kxy-open-id-client 0.2.1.

``SegmentClient`` allocates segments from a kxy server (``_client.py``).
``IdGenerator`` hands out IDs from a local cache of segments: ``next_id()``
is a lock-free step in the current segment, and the next segment is fetched
in the background before the current one runs out, so calls do not wait on
the network at steady load (``_generator.py``). The factories below keep
one generator per table. Everything the published ``client`` module
exported can still be imported from here.
"""

from __future__ import annotations

import threading
from typing import Any, Dict, Optional, Tuple

from ._client import SegmentClient
from ._generator import AsyncIdGenerator, IdGenerator
from .exceptions import (
    OpenIdAPIError,
    OpenIdClientError,
    OpenIdConnectionError,
    OpenIdTimeoutError,
)
from .models import ApiResponse, SegmentRequest, SegmentResponse

__all__ = [
    "SegmentClient",
    "IdGenerator",
    "AsyncIdGenerator",
    "IdGeneratorFactory",
    "AsyncIdGeneratorFactory",
    # What 0.2.1's client module imported, and so exported.
    "SegmentRequest",
    "SegmentResponse",
    "ApiResponse",
    "OpenIdAPIError",
    "OpenIdClientError",
    "OpenIdConnectionError",
    "OpenIdTimeoutError",
]


class IdGeneratorFactory:
    """One ``IdGenerator`` per (table, field) of a database, created on first use."""

    def __init__(
        self,
        segment_client: Any,
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
        segment_client: Any,
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
        # Nothing is awaited while a generator is made, so a thread lock
        # suffices and works under any event loop (asyncio.Lock does not
        # under trio).
        self._lock = threading.Lock()

    async def get_generator(
        self, table_name: str, field_name: str = "id", segment_count: Optional[int] = None
    ) -> AsyncIdGenerator:
        """The generator of ``table_name``.``field_name``."""
        key = (table_name, field_name)
        with self._lock:
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
