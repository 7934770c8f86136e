"""Exceptions of kxy_open_id_client: the hierarchy of kxy-open-id-client.

``OpenIdClientError`` is the base. ``OpenIdAPIError`` means the server
refused the request (its ``code``, ``msg`` and ``trace_id`` say why);
``OpenIdConnectionError`` and ``OpenIdTimeoutError`` mean no server could
be reached in time. ``OpenIdStoreError``, a kind of
``OpenIdConnectionError``, means a server answered with a segment the
client would not hand out (see its docstring).

The published kxy-open-id-client raised ``OpenIdConnectionError`` for every
HTTP error the server answered and for names the server refused (its 400),
so code written for it catches those with ``except OpenIdConnectionError``.
That keeps working: ``OpenIdAPIError`` is an ``OpenIdConnectionError``, and
invalid arguments raise ``OpenIdInvalidArgumentError``, which is both a
``ValueError`` and an ``OpenIdConnectionError``.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple


class OpenIdClientError(Exception):
    """Base exception for all client errors."""


class OpenIdConnectionError(OpenIdClientError):
    """No server could be reached, or the connection failed; also the base
    of ``OpenIdAPIError`` and ``OpenIdInvalidArgumentError``, as the
    published client raised this class for those (see the module doc)."""


class OpenIdAPIError(OpenIdConnectionError):
    """The server answered with an error envelope.

    Attributes:
        code: the envelope's non-zero ``code`` (for example 40401: the
            counter is not registered).
        msg: the server's explanation.
        trace_id: the request's trace id, to find it in the server's log.
    """

    def __init__(self, code: int, msg: str, trace_id: Optional[str] = None) -> None:
        self.code = code
        self.msg = msg
        self.trace_id = trace_id
        super().__init__(f"API Error {code}: {msg}")

    def __reduce__(self) -> Tuple[Any, ...]:  # keep code/msg/trace_id through pickling
        return (type(self), (self.code, self.msg, self.trace_id))


class OpenIdTimeoutError(OpenIdClientError):
    """The server did not answer in time."""


class OpenIdInvalidArgumentError(OpenIdConnectionError, ValueError):
    """An argument the client refuses before asking any server (a name with
    a ``:``, a count below 1, a bad URL...). A ``ValueError``, and an
    ``OpenIdConnectionError`` as the published client raised for names the
    server refused."""


class OpenIdStoreError(OpenIdConnectionError):
    """A server handed out a segment the client discarded, never handing out
    its IDs, because handing them out could repeat IDs:

    - ``reason == "went_backwards"``: the segment does not start above the
      IDs this process already received from the same store. The store lost
      allocations (a Redis that lost writes, a restore from an older
      backup); an operator must raise the counter past the IDs in use.
    - ``reason == "store_mismatch"``: the server answered from another store
      than the one this client first got the counter from; two stores count
      independently and hand out the same ranges.

    It is an ``OpenIdConnectionError`` because, as in an outage, no
    trustworthy server gave IDs and a later attempt (or another base URL)
    may succeed; the server did not refuse the request, so it is not an
    ``OpenIdAPIError``.

    Attributes:
        reason: ``"went_backwards"`` or ``"store_mismatch"``.
        url: the server that sent the segment.
    """

    def __init__(self, message: str, reason: str, url: str) -> None:
        self.reason = reason
        self.url = url
        super().__init__(message)

    def __reduce__(self) -> Tuple[Any, ...]:  # keep reason/url through pickling
        return (type(self), (self.args[0], self.reason, self.url))
