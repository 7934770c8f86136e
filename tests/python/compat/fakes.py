"""Small fake kxy servers for the compatibility suite (standard library only).

Each fake listens on a free 127.0.0.1 port, serves from daemon threads and
is stopped by the fixture that made it (``stop()``). They record what they
receive, so a test can check what the client sent and how often:

- ``SilentServer``: accepts TCP connections and never answers.
- ``HttpFake``: answers every request with ``respond(request)``, optionally
  after a delay during which it watches for the client closing the
  connection (``closed_early`` / ``closed_at``). ``segments`` is a
  responder that hands out consecutive segments in a valid envelope;
  ``fixed`` answers one fixed status and body (5xx, odd envelopes, non-JSON);
  ``redirect`` answers 302 to another URL.
- ``tls_files`` makes a self-signed CA and a server certificate for
  127.0.0.1 with the ``openssl`` CLI; ``HttpFake(..., tls=...)`` serves
  HTTPS with them.
"""

from __future__ import annotations

import http.server
import json
import pathlib
import select
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on: connecting is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Request:
    """One request a fake received."""

    method: str
    path: str
    headers: Dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)

    def json(self) -> dict:
        return json.loads(self.body)


Answer = Tuple[int, Dict[str, str], bytes]
Responder = Callable[[Request], Answer]


class HttpFake:
    """An HTTP(S) server answering with ``respond``; see the module doc."""

    def __init__(self, respond: Responder, delay: float = 0.0, tls: Optional["TlsFiles"] = None) -> None:
        self.respond = respond
        self.delay = delay
        self.requests: List[Request] = []
        # For delayed answers: when the client closed the connection while
        # the fake was still waiting to answer (cancellation, timeouts).
        self.closed_at: List[float] = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def handle_one(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(
                    method=self.command,
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length) if length else b"",
                )
                fake.requests.append(request)
                if fake.delay and fake._client_closed_within(self.connection, fake.delay):
                    fake.closed_at.append(time.monotonic())
                    self.close_connection = True
                    return
                status, headers, body = fake.respond(request)
                self.send_response(status)
                for name, value in {"Content-Length": str(len(body)), **headers}.items():
                    self.send_header(name, value)
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

            do_GET = do_POST = do_PUT = handle_one

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False

            def get_request(self):  # the TLS handshake runs in the handler's thread
                conn, addr = self.socket.accept()
                if tls is not None:
                    conn = tls.server_context().wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
                return conn, addr

            def finish_request(self, request, client_address):
                if isinstance(request, ssl.SSLSocket):
                    try:
                        request.settimeout(5)
                        request.do_handshake()
                        request.settimeout(None)
                    except (OSError, ssl.SSLError):
                        return  # the client refused our certificate
                super().finish_request(request, client_address)

            def handle_error(self, request, client_address):  # a client hanging up is normal here
                pass

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @staticmethod
    def _client_closed_within(conn: socket.socket, seconds: float) -> bool:
        """Waits ``seconds`` unless the client closes the connection first."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            readable, _, _ = select.select([conn], [], [], left)
            if readable:
                try:
                    data = conn.recv(1, socket.MSG_PEEK)
                except (OSError, ssl.SSLError):
                    return True
                if not data:
                    return True
                time.sleep(0.01)  # pipelined bytes: keep waiting

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- responders ---------------------------------------------------------

    @staticmethod
    def segments(first: int = 1) -> Responder:
        """Consecutive segments of the requested size, as kxy-server answers."""
        lock = threading.Lock()
        next_start = [first]

        def respond(request: Request) -> Answer:
            count = int(request.json()["segment_count"])
            with lock:
                start = next_start[0]
                next_start[0] += count
            end = start + count - 1
            return envelope(
                {"code": 0, "msg": f"Allocated segment: {start} to {end}", "data": {"start": start, "end": end},
                 "traceId": "fake"}
            )

        return respond

    @staticmethod
    def fixed(status: int, body: bytes, content_type: str = "application/json") -> Responder:
        def respond(request: Request) -> Answer:
            return status, {"Content-Type": content_type}, body

        return respond

    @staticmethod
    def redirect(location: str) -> Responder:
        def respond(request: Request) -> Answer:
            return 302, {"Location": location}, b""

        return respond


def envelope(body: object, status: int = 200) -> Answer:
    return status, {"Content-Type": "application/json"}, json.dumps(body).encode()


class SilentServer:
    """Accepts TCP connections (and reads what is sent) but never answers."""

    def __init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.05)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.connections: List[socket.socket] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connections.append(conn)

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()
        self._listener.close()
        for conn in self.connections:
            conn.close()


@dataclass
class TlsFiles:
    """A self-signed CA (``ca``) and a certificate for 127.0.0.1 signed by it."""

    directory: pathlib.Path

    @property
    def ca(self) -> pathlib.Path:
        return self.directory / "ca.pem"

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.directory / "server.pem", self.directory / "server.key")
        return context


def tls_files(directory: pathlib.Path) -> TlsFiles:
    """Makes the CA and server certificate with the ``openssl`` CLI."""
    directory.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=kxy compat test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (directory / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid\n"
    )
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "2", "-extfile", "server.ext")
    return TlsFiles(directory)
