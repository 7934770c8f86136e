"""``IdGenerator`` and ``AsyncIdGenerator``: IDs of one counter from a cache.

With the stock ``SegmentClient`` a generator takes the native path: IDs
come from a Rust cache of segments, one lock-free step each, and the next
segment is fetched in the background before the current one runs out (at
most one segment ahead: a process that exits leaves at most two segments
unused). With any other client (a fake, a ``unittest.mock``, a subclass
overriding ``allocate_segment``, a patched method) it takes the Python
path, which is the published client's algorithm: when the segment runs out,
call ``client.allocate_segment(...)`` with keyword arguments, under a lock.
Either way no ID is handed out twice: a segment that does not start above
everything that path handed out before is refused.

A call that finds the cache empty waits only while a fetch is in flight:
each base URL is asked once, within the client's ``timeout``, and if none
gives a segment the call raises that round's error, as the published
client did. ``max_wait`` opts into retrying for that long instead.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections import deque
from typing import Any, Deque, Dict, List, Optional, Tuple

import sniffio

from . import _aio, _client, _fork, _native
from .exceptions import OpenIdStoreError
from .models import SegmentRequest

#: The arguments a generator is built from; pickled, and re-read when
#: ``segment_count`` or ``segment_client`` is assigned.
_ARGUMENTS = (
    "segment_client",
    "system_code",
    "db_name",
    "table_name",
    "field_name",
    "segment_count",
    "adaptive",
    "max_segment_count",
    "max_wait",
)


#: What the native async calls raise when the generator left the native
#: path between the check and the call.
_NotNative = RuntimeError


def _checked_count(gen: Any) -> int:
    """``segment_count`` as the published client's ``SegmentRequest``
    checks and converts it (pydantic, lax)."""
    return SegmentRequest(
        system_code=gen.system_code,
        db_name=gen.db_name,
        table_name=gen.table_name,
        field_name=gen.field_name,
        segment_count=gen.segment_count,
    ).segment_count


def _segment_of(gen: Any, segment: Any) -> Tuple[int, int]:
    """``(start, end)`` of a segment a Python client returned, if it starts
    above everything handed out before."""
    start, end = int(segment.start), int(segment.end)
    highest = gen.__dict__.get("_py_highest")
    if highest is not None and start <= highest:
        raise OpenIdStoreError(
            f"{type(gen.segment_client).__name__}.allocate_segment returned {start}..={end}, "
            f"not above {highest}, the highest ID this generator handed out; "
            "handing it out could repeat IDs",
            "went_backwards",
            "",
        )
    gen.__dict__["_py_highest"] = end
    return start, end


class IdGenerator(_native.NativeIdGenerator):
    """Thread-safe ID generator for one counter, backed by a local cache.

    Args:
        segment_client: the client to fetch segments with: a
            ``SegmentClient``, or any object with the same
            ``allocate_segment`` (then called as the published client did).
        system_code, db_name, table_name, field_name: the counter.
        segment_count: the size of each segment asked for.
        adaptive: let segments grow (up to ``max_segment_count``, default
            ten million) so that each lasts about ten seconds at the rate
            IDs are used: fewer requests at high rates, more IDs left unused
            when the process exits.
        max_segment_count: the largest segment when ``adaptive``.
        max_wait: retry for up to this many seconds when no server gives a
            segment, instead of failing after one round over the servers.

    ``next_id()`` returns the next ID; ``next_ids(n)`` returns ``n``
    consecutive IDs as a ``range``. No ID is handed out twice; on the
    native path ``next_id()`` never returns an ID at or below one it
    returned before: segments that would allow it are discarded and counted
    in ``discarded_segments``. A forked child never
    hands out the IDs its parent cached. Pickled or copied, a generator
    starts with an empty cache.
    """

    segment_client: Any
    _py_lock: threading.Lock
    system_code: str
    db_name: str
    table_name: str
    field_name: str
    segment_count: int
    adaptive: bool
    max_segment_count: Optional[int]
    max_wait: Optional[float]

    def __init__(
        self,
        segment_client: Any,
        system_code: str,
        db_name: str,
        table_name: str,
        field_name: str,
        segment_count: int = 10000,
        *,
        adaptive: bool = False,
        max_segment_count: Optional[int] = None,
        max_wait: Optional[float] = None,
    ) -> None:
        state = self.__dict__
        state.update(
            segment_client=segment_client,
            system_code=system_code,
            db_name=db_name,
            table_name=table_name,
            field_name=field_name,
            segment_count=segment_count,
            adaptive=adaptive or max_segment_count is not None,
            max_segment_count=max_segment_count,
            max_wait=max_wait,
        )
        state["_py_lock"] = threading.Lock()
        state["_py_current"] = None
        state["_py_end"] = None
        _fork.track(self)
        _client._path_listeners.add(self)
        self._choose_path()

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if "_py_lock" not in self.__dict__:
            return  # inside a subclass's __init__, before ours ran
        if name in _ARGUMENTS:
            self._choose_path()

    def _choose_path(self) -> None:
        """The native path for the stock client with valid arguments, the
        Python path otherwise.

        Arguments are checked as the published client checked them: by the
        request, not by the constructor. So a name the server would refuse,
        or a ``segment_count`` pydantic refuses, puts the generator on the
        Python path, where ``next_id()`` raises what the stock
        ``allocate_segment`` raises for it; a valid value assigned later
        brings it back."""
        # Under the lock of client rebuilds: a settings change or a patch
        # meanwhile cannot be undone by this older view.
        with _client._REBUILDING:
            client = self.__dict__.get("segment_client")
            previous = self.__dict__.get("_attached_to")
            if previous is not None and previous() is not client and previous() is not None:
                previous()._detach(self)
            self.__dict__["_attached_to"] = None
            if client is None or not _client.is_stock(client):
                self._set_python_path(True)
                return
            try:
                native = client._native_client()
                count = _checked_count(self)
                adaptive = bool(self.adaptive)
                if self._configured:
                    self._use_client(native)
                    self._resize(count, adaptive, self.max_segment_count, self.max_wait)
                else:
                    self._configure(
                        native,
                        self.system_code,
                        self.db_name,
                        self.table_name,
                        self.field_name,
                        count,
                        adaptive,
                        self.max_segment_count,
                        self.max_wait,
                    )
            except ValueError:  # pydantic's ValidationError, OpenIdInvalidArgumentError
                self._set_python_path(True)
                return
            client._attach(self)
            self.__dict__["_attached_to"] = weakref.ref(client)
            self._set_python_path(False)

    # -- the Python path: the published client's algorithm --------------

    def _allocate_python(self, at_least: int = 0) -> None:
        """Asks the client for a segment (lock held), as 0.2.1 did; for a
        run of ``at_least`` IDs, a segment at least that long."""
        count: Any = self.segment_count
        if at_least:
            try:
                count = max(int(count), at_least)
            except (TypeError, ValueError):
                pass  # the client's own check will say what is wrong
        segment = self.segment_client.allocate_segment(
            system_code=self.system_code,
            db_name=self.db_name,
            table_name=self.table_name,
            field_name=self.field_name,
            segment_count=count,
        )
        start, end = _segment_of(self, segment)
        self.__dict__["_py_current"] = start
        self.__dict__["_py_end"] = end

    def _take_python(self, n: int) -> Optional[int]:
        state = self.__dict__
        current, end = state["_py_current"], state["_py_end"]
        if current is None or current + n - 1 > end:
            return None
        state["_py_current"] = current + n
        return int(current)

    def _next_id_python(self) -> int:
        with self._py_lock:
            taken = self._take_python(1)
            if taken is None:
                self._allocate_python()
                taken = self._take_python(1)
            assert taken is not None
            return taken

    def _try_next_id_python(self) -> Optional[int]:
        with self._py_lock:
            return self._take_python(1)

    def _next_ids_python(self, n: int) -> range:
        if n < 1:
            raise ValueError(f"n must be at least 1; got {n}")
        with self._py_lock:
            first = self._take_python(n)
            if first is None:
                self._allocate_python(at_least=n)
                first = self._take_python(n)
            if first is None:
                raise ValueError(f"n = {n} is more than the segment the client returned holds")
            return range(first, first + n)

    def _reset_after_fork(self) -> None:
        state = self.__dict__
        state["_py_lock"] = threading.Lock()
        state["_py_current"] = state["_py_end"] = None
        super()._reset_after_fork()

    # -- pickling: the arguments, never the cache -----------------------

    def __getstate__(self) -> Dict[str, Any]:
        return {name: self.__dict__[name] for name in _ARGUMENTS}

    def __setstate__(self, state: Dict[str, Any]) -> None:
        args = dict(state)
        IdGenerator.__init__(
            self,
            args.pop("segment_client"),
            args.pop("system_code"),
            args.pop("db_name"),
            args.pop("table_name"),
            args.pop("field_name"),
            args.pop("segment_count"),
            **args,
        )


class AsyncIdGenerator:
    """ID generator for async code (asyncio or trio): ``await next_id()``.

    Cached IDs are returned at once. When the cache is empty the call waits
    for the fetch in flight without blocking the event loop or borrowing its
    executor; cancelling the call stops waiting. With a client other than
    the stock ``SegmentClient``, it awaits the client's
    ``allocate_segment_async`` as the published client did. Arguments are
    those of ``IdGenerator``.
    """

    def __init__(
        self,
        segment_client: Any,
        system_code: str,
        db_name: str,
        table_name: str,
        field_name: str,
        segment_count: int = 10000,
        *,
        adaptive: bool = False,
        max_segment_count: Optional[int] = None,
        max_wait: Optional[float] = None,
    ) -> None:
        self.__dict__["_ids"] = IdGenerator(
            segment_client,
            system_code,
            db_name,
            table_name,
            field_name,
            segment_count,
            adaptive=adaptive,
            max_segment_count=max_segment_count,
            max_wait=max_wait,
        )
        self.__dict__["_segments"] = deque()

    def __getattr__(self, name: str) -> Any:
        if name in _ARGUMENTS:
            return getattr(self.__dict__["_ids"], name)
        raise AttributeError(name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _ARGUMENTS:
            setattr(self._ids, name, value)
        else:
            object.__setattr__(self, name, value)

    async def next_id(self) -> int:
        """The next ID."""
        ids: IdGenerator = self._ids
        if not ids._python_path:
            try:
                return int(await _aio.wait(ids._next_id_async))
            except _NotNative:  # a patch came in between
                pass
        return await self._next_id_python()

    async def next_ids(self, n: int) -> range:
        """``n`` consecutive IDs as a ``range``."""
        ids: IdGenerator = self._ids
        if not ids._python_path:
            try:
                start, end = await _aio.wait(lambda done: ids._next_ids_async(n, done))
                return range(start, end + 1)
            except _NotNative:  # a patch came in between
                pass
        if n < 1:
            raise ValueError(f"n must be at least 1; got {n}")
        return await self._take_python(n)

    async def _next_id_python(self) -> int:
        return (await self._take_python(1)).start

    async def _take_python(self, n: int) -> range:
        """The published algorithm with the client's own
        ``allocate_segment_async``, under a lock of the running event loop's
        kind (asyncio's or trio's), so that one fetch serves the callers
        waiting for it, as in 0.2.1."""
        async with self._lock():
            return await self._take_python_locked(n)

    def _lock(self) -> Any:
        library = sniffio.current_async_library()
        locks: Dict[str, Any] = self.__dict__.setdefault("_locks", {})
        if library not in locks:
            if library == "trio":
                import trio

                locks[library] = trio.Lock()
            else:
                locks[library] = asyncio.Lock()
        return locks[library]

    async def _take_python_locked(self, n: int) -> range:
        segments: Deque[List[int]] = self._segments
        while segments and segments[0][0] + n - 1 > segments[0][1]:
            segments.popleft()
        if not segments:
            ids = self._ids
            response = await ids.segment_client.allocate_segment_async(
                system_code=ids.system_code,
                db_name=ids.db_name,
                table_name=ids.table_name,
                field_name=ids.field_name,
                segment_count=ids.segment_count,
            )
            start, end = _segment_of(ids, response)
            if start + n - 1 > end:
                raise ValueError(f"n = {n} is more than one segment of {end - start + 1} holds")
            segments.append([start, end])
        segment = segments[0]
        segment[0] += n
        return range(segment[0] - n, segment[0])

    def __getstate__(self) -> Dict[str, Any]:
        ids: IdGenerator = self._ids
        return ids.__getstate__()

    def __setstate__(self, state: Dict[str, Any]) -> None:
        args = dict(state)
        AsyncIdGenerator.__init__(
            self,
            args.pop("segment_client"),
            args.pop("system_code"),
            args.pop("db_name"),
            args.pop("table_name"),
            args.pop("field_name"),
            args.pop("segment_count"),
            **args,
        )
