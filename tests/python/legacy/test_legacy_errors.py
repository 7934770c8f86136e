"""How the published client 0.2.1 meets kxy-server's refusals.

kxy answers errors with a fitting HTTP status. Client 0.2.1 calls
``raise_for_status()`` before reading the envelope, so its users see every
refusal as ``OpenIdConnectionError("HTTP error <status>: ...")`` rather
than ``OpenIdAPIError`` (see the README, "HTTP status and the Python
client"). kxy's own package raises ``OpenIdAPIError`` instead.
"""

from __future__ import annotations

import pytest
from kxy_open_id_client import OpenIdAPIError, OpenIdClientError, SegmentClient
from kxy_open_id_client.exceptions import OpenIdConnectionError

from kxy_server import KxyServer


def test_unregistered_counter_is_refused_with_http_404(kxy: KxyServer) -> None:
    client = SegmentClient(base_url=kxy.base_url)
    with pytest.raises(OpenIdConnectionError, match="HTTP error 404") as raised:
        client.allocate_segment("my-system", "my_database", "never_registered", "id", 10)
    assert isinstance(raised.value, OpenIdClientError)
    assert not isinstance(raised.value, OpenIdAPIError)


def test_invalid_names_and_sizes_are_refused_with_http_400(kxy: KxyServer) -> None:
    client = SegmentClient(base_url=kxy.base_url)
    with pytest.raises(OpenIdConnectionError, match="HTTP error 400"):
        client.allocate_segment("my-system", "my:database", "users", "id", 10)
    # The client allows up to 2^63-1; the server's --max-segment (1e9) does not.
    with pytest.raises(OpenIdConnectionError, match="HTTP error 400"):
        client.allocate_segment("my-system", "my_database", "users", "id", 10**12)
    # Nothing was taken by the refused calls.
    assert client.allocate_segment("my-system", "my_database", "users", "id", 1).start == 1


def test_server_down_is_a_connection_error(kxy: KxyServer) -> None:
    client = SegmentClient(base_url=kxy.base_url, timeout=2.0)
    kxy.stop()
    with pytest.raises(OpenIdConnectionError, match="Failed to connect"):
        client.allocate_segment("my-system", "my_database", "users", "id", 10)


def test_the_readme_example_runs(kxy: KxyServer) -> None:
    printed = kxy.run_example("legacy_client_quickstart.py")
    assert "Allocated IDs: 1 to 10000" in printed
    assert "Generated IDs: [10001, 10002, 10003]" in printed


def test_a_required_api_key_passes_through_headers(kxy_requiring_keys) -> None:
    server, key = kxy_requiring_keys
    client = SegmentClient(server.base_url, headers={"Authorization": f"Bearer {key}"})
    segment = client.allocate_segment("my-system", "my_database", "users", "id", 10)
    assert (segment.start, segment.end) == (1, 10)
    without = SegmentClient(server.base_url)
    with pytest.raises(OpenIdConnectionError, match="HTTP error 401"):
        without.allocate_segment("my-system", "my_database", "users", "id", 10)
