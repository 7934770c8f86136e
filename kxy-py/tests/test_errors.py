"""Errors as kxy's package raises them: the server's reason, not just a status."""

from __future__ import annotations

import pickle
import socket
import threading

import pytest
from kxy_open_id_client import (
    IdGenerator,
    OpenIdAPIError,
    OpenIdClientError,
    OpenIdConnectionError,
    OpenIdInvalidArgumentError,
    OpenIdTimeoutError,
    SegmentClient,
)

from kxy_server import KxyServer


def test_a_refusal_is_an_api_error_with_code_message_and_trace_id(kxy: KxyServer) -> None:
    client = SegmentClient(kxy.base_url)
    with pytest.raises(OpenIdAPIError) as raised:
        client.allocate_segment("my-system", "my_database", "never_registered", "id", 10)
    error = raised.value
    assert error.code == 40401
    assert "not registered" in error.msg
    assert error.trace_id is not None and len(error.trace_id) == 32
    assert isinstance(error, OpenIdClientError)
    assert str(error).startswith("API Error 40401: counter my-system:my_database:never_registered:id")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.code, copy.msg, copy.trace_id) == (error.code, error.msg, error.trace_id)


def test_a_generator_raises_the_refusal_at_once(kxy: KxyServer) -> None:
    ids = IdGenerator(SegmentClient(kxy.base_url), "my-system", "my_database", "nobody", "id", max_wait=30)
    with pytest.raises(OpenIdAPIError) as raised:
        ids.next_id()
    assert raised.value.code == 40401


def test_invalid_arguments_are_value_errors_and_send_nothing(kxy: KxyServer) -> None:
    client = SegmentClient(kxy.base_url)
    with pytest.raises(ValueError, match="db_name contains ':'"):
        client.allocate_segment("my-system", "my:database", "users", "id")
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        client.allocate_segment("my-system", "my_database", "users", "id", 0)
    with pytest.raises(ValueError, match="not an http"):
        SegmentClient("localhost:5801")
    with pytest.raises(ValueError, match="timeout"):
        SegmentClient(kxy.base_url, timeout=0)
    with pytest.raises(ValueError, match="n must be at least 1"):
        IdGenerator(client, "my-system", "my_database", "users", "id").next_ids(0)
    assert client.allocate_segment("my-system", "my_database", "users", "id", 1).start == 1


def test_except_clauses_written_for_the_published_client_still_catch(kxy: KxyServer) -> None:
    """kxy-open-id-client 0.2.1 raised OpenIdConnectionError for the server's
    HTTP errors and for names the server refused; code that catches it keeps
    working, and the finer classes are there for new code."""
    client = SegmentClient(kxy.base_url)
    try:
        client.allocate_segment("my-system", "my_database", "never_registered", "id", 10)
    except OpenIdConnectionError as error:  # what a 0.2.1 caller wrote
        assert isinstance(error, OpenIdAPIError) and error.code == 40401
    else:
        pytest.fail("a refusal must raise")
    for bad in ["my:db", "", "x" * 300, "数据库"]:
        for caught in (OpenIdConnectionError, OpenIdClientError, ValueError):
            with pytest.raises(caught):
                client.allocate_segment("my-system", bad, "users", "id", 1)
        with pytest.raises(OpenIdInvalidArgumentError):
            client.allocate_segment("my-system", bad, "users", "id", 1)


def test_no_server_is_a_connection_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = SegmentClient(f"http://127.0.0.1:{port}", timeout=2.0)
    with pytest.raises(OpenIdConnectionError, match="Connection refused"):
        client.allocate_segment("my-system", "my_database", "users", "id")


def test_a_silent_server_is_a_timeout() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted = []
    threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True).start()
    client = SegmentClient(f"http://127.0.0.1:{listener.getsockname()[1]}", timeout=0.3)
    try:
        with pytest.raises(OpenIdTimeoutError):
            client.allocate_segment("my-system", "my_database", "users", "id")
    finally:
        listener.close()


def test_api_keys_are_sent_when_given(kxy_requiring_keys) -> None:
    from kxy_open_id_client import IdGenerator

    server, key = kxy_requiring_keys
    client = SegmentClient(server.base_url, api_key=key)
    assert client.allocate_segment("my-system", "my_database", "users", "id", 5).end == 5
    ids = IdGenerator(client, "my-system", "my_database", "orders", "id", 100)
    assert ids.next_id() == 1
    with pytest.raises(OpenIdAPIError) as refused:
        SegmentClient(server.base_url).allocate_segment("my-system", "my_database", "users", "id", 5)
    assert refused.value.code == 40100
    with pytest.raises(ValueError, match="API key"):
        SegmentClient(server.base_url, api_key="bad\nkey")


def test_it_is_the_published_distributions_next_version() -> None:
    """Installed as kxy-open-id-client, above 0.2.1, so pip replaces one with
    the other in place; and the names 0.2.1 exported from its client module
    are there too."""
    from importlib.metadata import version

    import kxy_open_id_client
    from kxy_open_id_client.client import (  # noqa: F401
        ApiResponse,
        OpenIdConnectionError as FromClient,
        SegmentRequest,
    )

    installed = version("kxy-open-id-client")
    assert installed == kxy_open_id_client.__version__
    assert tuple(int(part) for part in installed.split(".")[:3]) > (0, 2, 1)
    assert FromClient is OpenIdConnectionError


def test_no_timeout_is_accepted_as_in_the_published_client(kxy: KxyServer) -> None:
    """0.2.1 passed ``timeout`` to httpx, where ``None`` means no limit."""
    client = SegmentClient(kxy.base_url, timeout=None)
    assert client.timeout is None
    assert client.allocate_segment("my-system", "my_database", "users", "id", 5).end >= 5
