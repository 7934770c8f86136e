"""Exceptions of kxy_open_id_client: the hierarchy of kxy-open-id-client.

``OpenIdClientError`` is the base. ``OpenIdAPIError`` means the server
refused the request (its ``code``, ``msg`` and ``trace_id`` say why);
``OpenIdConnectionError`` and ``OpenIdTimeoutError`` mean no server could
be reached in time. Invalid arguments raise ``ValueError``.
"""

from __future__ import annotations

from typing import Optional


class OpenIdClientError(Exception):
    """Base exception for all client errors."""


class OpenIdAPIError(OpenIdClientError):
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

    def __reduce__(self):  # keep code/msg/trace_id through pickling
        return (type(self), (self.code, self.msg, self.trace_id))


class OpenIdConnectionError(OpenIdClientError):
    """No server could be reached, or the connection failed."""


class OpenIdTimeoutError(OpenIdClientError):
    """The server did not answer in time."""
