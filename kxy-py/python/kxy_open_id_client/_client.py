"""``SegmentClient``: the settings of a client, as attributes users may change.

As in kxy-open-id-client 0.2.1, a client is a plain object whose
``base_url``, ``timeout``, ``verify_ssl`` and ``headers`` users read and
assign; the next request uses the new values. Underneath, a native client
(Rust, connection pool, store fences) is built from them and rebuilt, with
the same store pins, whenever one changes: by assignment, or by a change to
``client.headers`` in place. Generators using the client are switched to
the rebuilt one at once, so their next fetch sends the new headers.

``IdGenerator`` calls a client's Python ``allocate_segment`` (the published
client's slow path) when it is not the stock method: a subclass override,
a ``unittest.mock`` patch on the class or the instance, or another object
altogether. Patches come and go at run time, so assigning
``allocate_segment`` on the class or an instance tells the generators to
choose their path again.
"""

from __future__ import annotations

import os
import pathlib
import ssl
import threading
import weakref
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from . import _aio, _fork, _native
from .exceptions import OpenIdInvalidArgumentError
from .models import SegmentRequest, SegmentResponse

BaseUrl = Union[str, Sequence[str]]

#: Generators to tell when an ``allocate_segment`` is patched or unpatched.
_path_listeners: "weakref.WeakSet[Any]" = weakref.WeakSet()

#: What the client keeps for itself; never pickled.
_INTERNAL = frozenset({"_native", "_generators", "_tracked"})

#: ``timeout=None``: no limit (a day stands for it).
_NO_TIMEOUT = 86400.0

#: The methods generators call: a patch or override of either sends them
#: the Python way.
_ALLOCATORS = frozenset({"allocate_segment", "allocate_segment_async"})

#: The attributes a native client is built from.
_SETTINGS = frozenset(
    {"base_url", "base_urls", "timeout", "verify_ssl", "headers", "api_key", "connect_timeout"}
)


#: Held while a native client is rebuilt (see SegmentClient._native_client).
_REBUILDING = threading.RLock()


def _fresh_lock_after_fork() -> None:
    # A parent thread may have held it at the fork; the child must not wait
    # for a thread it does not have.
    global _REBUILDING
    _REBUILDING = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_fresh_lock_after_fork)


def _paths_changed() -> None:
    for generator in list(_path_listeners):
        generator._choose_path()


class _WatchesOverrides(type):
    """Metaclass of ``SegmentClient``: notices ``allocate_segment`` being
    patched or restored on the class (``mock.patch.object``)."""

    def __setattr__(cls, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name in _ALLOCATORS:
            _paths_changed()

    def __delattr__(cls, name: str) -> None:
        super().__delattr__(name)
        if name in _ALLOCATORS:
            _paths_changed()


def _notifying(name: str) -> Any:
    """``dict.<name>``, then telling the client its headers changed."""
    method = getattr(dict, name)

    def changing(self: "_Headers", *args: Any, **kwargs: Any) -> Any:
        result = method(self, *args, **kwargs)
        self._changed()
        return result

    changing.__name__ = name
    return changing


class _Headers(Dict[str, str]):
    """``client.headers``: a dict that tells its client when it changes."""

    def __init__(self, owner: "SegmentClient", items: Mapping[str, str]) -> None:
        super().__init__(items)
        self._owner = weakref.ref(owner)

    def _changed(self) -> None:
        owner = self._owner()
        if owner is not None:
            owner._settings_changed()

    def __reduce__(self) -> Any:  # pickles as a plain dict
        return (dict, (dict(self),))

    __setitem__ = _notifying("__setitem__")
    __delitem__ = _notifying("__delitem__")
    __ior__ = _notifying("__ior__")
    update = _notifying("update")
    pop = _notifying("pop")
    popitem = _notifying("popitem")
    clear = _notifying("clear")
    setdefault = _notifying("setdefault")


def _trust(verify_ssl: Any) -> Tuple[bool, Optional[bytes], Optional[List[bytes]]]:
    """``verify_ssl`` as httpx read it: a bool; a path to a CA bundle (PEM
    file, or a directory of them), whose CAs alone are trusted; or an
    ``ssl.SSLContext``, whose loaded CAs alone are trusted (the system's if
    it loaded none from a file; none at all if it verifies nothing).
    Client certificates in a context are not used."""
    if isinstance(verify_ssl, ssl.SSLContext):
        if verify_ssl.verify_mode == ssl.CERT_NONE:
            return False, None, None
        der = verify_ssl.get_ca_certs(binary_form=True)
        return True, None, [bytes(c) for c in der] or None
    if isinstance(verify_ssl, (str, os.PathLike)):
        path = pathlib.Path(verify_ssl)
        files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
        try:
            pem = b"\n".join(f.read_bytes() for f in files)
        except OSError as error:
            raise OpenIdInvalidArgumentError(f"verify_ssl: cannot read the CA bundle {str(path)!r}: {error}") from None
        return True, pem, None
    return bool(verify_ssl), None, None


def _urls(base_url: BaseUrl) -> List[str]:
    if isinstance(base_url, str):
        return [base_url.rstrip("/")]
    return [str(url).rstrip("/") for url in base_url]


class SegmentClient(metaclass=_WatchesOverrides):
    """Client for allocating ID segments from kxy.

    Args:
        base_url: the server's URL (e.g. ``"http://localhost:5801"``), or a
            list of URLs tried in order when one fails.
        timeout: request timeout in seconds (default 30.0); ``None`` waits as
            long as it takes, as in kxy-open-id-client 0.2.1.
        verify_ssl: whether to verify TLS certificates (default True); as in
            httpx, also the path of a CA bundle or an ``ssl.SSLContext``,
            whose CAs are then the only ones trusted.
        headers: extra headers sent with every request.
        api_key: sent as ``Authorization: Bearer <api_key>``.
        connect_timeout: seconds a connect to one server may take (at most
            ``timeout``); by default ``timeout`` with one base URL, as in
            0.2.1, and 1.0 with several, so that a dead one is left quickly.

    Every setting is an attribute; assigning one (or changing
    ``client.headers`` in place) takes effect on the next request, also for
    the generators using this client.

    The first server that answers for a counter names its store, and the
    client keeps to that store for the counter: a segment from a server on
    another store, or one that does not start above the IDs this process
    already received, is discarded (``discarded_segments`` counts them) and
    the next base URL is tried; see ``OpenIdStoreError``.
    """

    base_url: str
    base_urls: List[str]
    timeout: Optional[float]
    verify_ssl: Any
    headers: Dict[str, str]
    api_key: Optional[str]
    connect_timeout: Optional[float]

    def __init__(
        self,
        base_url: BaseUrl,
        timeout: Optional[float] = 30.0,
        verify_ssl: Any = True,
        headers: Optional[Mapping[str, str]] = None,
        *,
        api_key: Optional[str] = None,
        connect_timeout: Optional[float] = None,
    ) -> None:
        # A str or a list: __setattr__ sets base_urls too, and base_url to the first.
        self.base_url = base_url  # type: ignore[assignment]
        self.timeout = timeout
        self.verify_ssl = verify_ssl
        self.headers = headers or {}  # type: ignore[assignment]
        self.api_key = api_key
        self.connect_timeout = connect_timeout
        # Built now, so that a bad URL or header fails here, not on first use.
        self._native_client()

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "base_url":
            urls = _urls(value)
            object.__setattr__(self, "base_urls", urls)
            value = urls[0] if urls else value
        elif name == "base_urls":
            value = _urls(value)
            object.__setattr__(self, "base_url", value[0] if value else "")
        elif name == "headers":
            value = _Headers(self, value or {})
        object.__setattr__(self, name, value)
        if name in _SETTINGS:
            self._settings_changed()
        elif name in _ALLOCATORS:
            _paths_changed()

    def __delattr__(self, name: str) -> None:
        object.__delattr__(self, name)
        if name in _ALLOCATORS:
            _paths_changed()

    # -- the native client, built from the settings ---------------------

    def _settings(self) -> Tuple[Any, ...]:
        # getattr, not __dict__: a subclass may make a setting a property.
        headers = getattr(self, "headers", None) or {}
        return (
            tuple(getattr(self, "base_urls", None) or ()),
            getattr(self, "timeout", 30.0),
            getattr(self, "verify_ssl", True),
            tuple(headers.items()),
            getattr(self, "api_key", None),
            getattr(self, "connect_timeout", None),
        )

    @staticmethod
    def _build_native(
        settings: Tuple[Any, ...], previous: Optional[_native.NativeSegmentClient]
    ) -> _native.NativeSegmentClient:
        base_urls, timeout, verify_ssl, headers, api_key, connect_timeout = settings
        if connect_timeout is None:
            # With one server, the request timeout bounds the connect too, as
            # in 0.2.1 (a busy server's backlog may take a SYN retry, ~1 s);
            # with several, a dead one is left after 1 s.
            connect_timeout = 1.0 if len(base_urls) > 1 else (timeout or _NO_TIMEOUT)
        verify, ca_pem, ca_der = _trust(verify_ssl)
        return _native.NativeSegmentClient(
            list(base_urls),
            timeout,
            verify,
            dict(headers),
            api_key=api_key,
            connect_timeout=connect_timeout,
            previous=previous,
            ca_pem=ca_pem,
            ca_der=ca_der,
        )

    def _native_client(self) -> _native.NativeSegmentClient:
        """The native client for the current settings (rebuilt if they
        changed since it was built)."""
        state = self.__dict__
        built = state.get("_native")  # (native client, the settings it was built from)
        if built is not None and built[1] == self._settings():
            return built[0]  # type: ignore[no-any-return]
        # Rebuilds are rare; one lock for all clients keeps two threads that
        # change settings at once from leaving a generator on the older one.
        with _REBUILDING:
            built = state.get("_native")
            settings = self._settings()
            if built is None or built[1] != settings:
                native = self._build_native(settings, built[0] if built else None)
                state["_native"] = built = (native, settings)
                if "_tracked" not in state:
                    state["_tracked"] = True
                    _fork.track(self)
                for generator in list(self._users()):
                    generator._use_client(native)
            return built[0]

    def _settings_changed(self) -> None:
        # Before the first build (inside __init__) there is nothing to update.
        if "_native" in self.__dict__:
            self._native_client()

    def _users(self) -> "weakref.WeakSet[Any]":
        users = self.__dict__.get("_generators")
        if users is None:
            users = weakref.WeakSet()
            self.__dict__["_generators"] = users
        return users

    def _attach(self, generator: Any) -> None:
        """``generator`` uses this client's native client; keep it current."""
        self._users().add(generator)

    def _detach(self, generator: Any) -> None:
        """``generator`` moved to another client."""
        self._users().discard(generator)

    def _reset_after_fork(self) -> None:
        built = self.__dict__.get("_native")
        if built is not None:
            built[0]._reset_after_fork()

    # -- pickling: the settings, never the connections or the pins -----

    def __getstate__(self) -> Dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if k not in _INTERNAL}
        state["headers"] = dict(state.get("headers") or {})
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        for name, value in state.items():
            setattr(self, name, value)

    # -- the published API ----------------------------------------------

    @property
    def discarded_segments(self) -> int:
        """Segments this client discarded (another store than the pinned
        one, or not above what this process had received)."""
        return self._native_client().discarded_segments

    def allocate_segment(
        self,
        system_code: str,
        db_name: str,
        table_name: str,
        field_name: str,
        segment_count: int = 10000,
    ) -> SegmentResponse:
        """Allocates ``segment_count`` IDs of one counter.

        Arguments are checked as the published client did, by
        ``SegmentRequest`` (pydantic, lax: ``"10"`` is 10; a wrong type
        raises ``pydantic.ValidationError``).

        Returns:
            SegmentResponse: ``start`` and ``end`` of the segment, inclusive.

        Raises:
            OpenIdAPIError: the server refused (unregistered counter, ...);
                an ``OpenIdConnectionError`` too, as the published client
                raised for HTTP errors.
            OpenIdConnectionError: no server could be reached.
            OpenIdStoreError: every answer was a segment the client
                discarded (its store went backwards, or is not the pinned one).
            OpenIdTimeoutError: no answer within ``timeout``.
            OpenIdInvalidArgumentError: a name the server would refuse (a
                ``ValueError`` and an ``OpenIdConnectionError``).
            pydantic.ValidationError: an argument of the wrong type.
        """
        request = _request(system_code, db_name, table_name, field_name, segment_count)
        start, end = self._native_client()._allocate(*request)
        return SegmentResponse(start=start, end=end)

    async def allocate_segment_async(
        self,
        system_code: str,
        db_name: str,
        table_name: str,
        field_name: str,
        segment_count: int = 10000,
    ) -> SegmentResponse:
        """``allocate_segment`` for async code (asyncio or trio). The request
        runs on kxy's own runtime, not in the event loop's executor;
        cancelling the call stops the request."""
        request = _request(system_code, db_name, table_name, field_name, segment_count)
        native = self._native_client()
        start, end = await _aio.wait(lambda done: native._allocate_async(*request, done))
        return SegmentResponse(start=start, end=end)


def _request(
    system_code: Any, db_name: Any, table_name: Any, field_name: Any, segment_count: Any
) -> Tuple[str, str, str, str, int]:
    """The arguments as the published client's ``SegmentRequest`` checks
    and converts them."""
    r = SegmentRequest(
        system_code=system_code,
        db_name=db_name,
        table_name=table_name,
        field_name=field_name,
        segment_count=segment_count,
    )
    return (r.system_code, r.db_name, r.table_name, r.field_name, r.segment_count)


#: The stock methods: a generator whose client still has both takes the
#: native path.
_STOCK = {name: SegmentClient.__dict__[name] for name in _ALLOCATORS}


def is_stock(client: Any) -> bool:
    """Whether ``client`` allocates with the stock method (not a fake, a
    mock, an override or a patch)."""
    if not isinstance(client, SegmentClient):
        return False
    own = getattr(client, "__dict__", {})
    return all(
        getattr(type(client), name, None) is stock and name not in own
        for name, stock in _STOCK.items()
    )

