"""A real kxy-server for the Python tests, and the pytest fixture around it.

The server binary is ``$KXY_SERVER_BIN`` or ``target/debug/kxy-server``
(built by the README's test command). Each test gets its own server on a
free port with its own embedded data directory.
"""

from __future__ import annotations

import os
import pathlib
import queue
import subprocess
import threading
from typing import Iterator

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def server_binary() -> str:
    path = pathlib.Path(os.environ.get("KXY_SERVER_BIN") or ROOT / "target" / "debug" / "kxy-server")
    if not path.exists():
        pytest.fail(f"{path} does not exist: run `cargo build -p kxy-server` or set KXY_SERVER_BIN")
    return str(path)


class KxyServer:
    """A kxy-server process on a free port, with its log kept for assertions."""

    def __init__(self, data_dir: pathlib.Path, *args: str, bind: str = "127.0.0.1:0") -> None:
        self.data_dir = data_dir
        self.log: list[str] = []
        self.process = subprocess.Popen(
            [server_binary(), "--data-dir", str(data_dir), "--bind", bind, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "RUST_LOG": "info"},
        )
        address: queue.Queue[str] = queue.Queue()

        def drain() -> None:
            assert self.process.stderr is not None
            for line in self.process.stderr:
                self.log.append(line)
                if "listening on http://" in line:
                    address.put(line.split("listening on http://", 1)[1].split()[0])

        threading.Thread(target=drain, daemon=True).start()
        try:
            self.base_url = "http://" + address.get(timeout=30)
        except queue.Empty:
            self.stop()
            pytest.fail("kxy-server did not start:\n" + "".join(self.log))

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()

    def run_example(self, name: str) -> str:
        """Runs ``examples/python/<name>`` against this server, as a user
        would (``KXY_URL`` set), and returns what it printed."""
        import sys

        result = subprocess.run(
            [sys.executable, str(ROOT / "examples" / "python" / name)],
            env={**os.environ, "KXY_URL": self.base_url},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout


def register(data_dir: pathlib.Path, system: str, db: str, table: str, field: str, start: int = 0) -> None:
    """Registers a counter with the CLI, as an operator does before first use."""
    subprocess.run(
        [server_binary(), "--data-dir", str(data_dir), "counters", "add",
         "--system", system, "--db", db, "--table", table, "--field", field, "--start", str(start)],
        check=True,
        capture_output=True,
    )


@pytest.fixture
def kxy(tmp_path: pathlib.Path) -> Iterator[KxyServer]:  # noqa: D401
    """A server with the counters the client README's examples use."""
    data_dir = tmp_path / "data"
    for table, field in [("users", "id"), ("orders", "id"), ("products", "id"), ("orders", "order_id")]:
        register(data_dir, "my-system", "my_database", table, field)
    server = KxyServer(data_dir)
    yield server
    server.stop()


def _call(base_url: str, method: str, path: str, body: dict, token: str = "") -> dict:
    """One JSON call to the server; returns the envelope's data."""
    import json
    import urllib.request

    request = urllib.request.Request(
        base_url + path,
        data=json.dumps(body).encode(),
        method=method,
        headers={"content-type": "application/json", **({"authorization": f"Bearer {token}"} if token else {})},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["data"]


@pytest.fixture
def kxy_requiring_keys(tmp_path: pathlib.Path) -> Iterator[tuple[KxyServer, str]]:
    """A server whose allocation needs an API key, with the README's
    counters registered, and a key that may allocate."""
    data_dir = tmp_path / "data"
    for table, field in [("users", "id"), ("orders", "id")]:
        register(data_dir, "my-system", "my_database", table, field)
    server = KxyServer(data_dir, "--allocation-requires-key")
    credentials = {"username": "root", "password": "root password 1"}
    _call(server.base_url, "POST", "/api/auth/init-user", credentials)
    token = _call(server.base_url, "POST", "/api/auth/login", credentials)["access_token"]
    key = _call(server.base_url, "POST", "/api/keys", {"name": "python"}, token)["secret"]
    yield server, key
    server.stop()
