"""A busy server is waited for within ``timeout``, as 0.2.1 waited.

With one base URL the connect is bounded by ``timeout`` (0.2.1, httpx); a
server whose accept queue is full drops SYNs, Linux retransmits after 1 s,
and the request completes a little later. Only with several base URLs does
``connect_timeout`` default to 1 s, to leave a dead one quickly. (Found by
a hostile review.) Linux only.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time

import pytest
from kxy_open_id_client import SegmentClient

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux SYN-drop behaviour")


@pytest.fixture
def busy_server():
    """Accept queue full; starts accepting (and answering) after 1.5 s."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(0)
    port = lsock.getsockname()[1]
    fillers = []
    for _ in range(3):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(s)
    time.sleep(0.2)

    def handle(c):
        try:
            c.settimeout(5)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = c.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
            while len(body) < length:
                body += c.recv(65536)
            count = json.loads(body)["segment_count"]
            out = json.dumps({"code": 0, "msg": "", "data": {"start": 1, "end": count}}).encode()
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(out) + out)
        except OSError:
            pass
        finally:
            c.close()

    def serve():
        time.sleep(1.5)
        for s in fillers:
            s.close()
        while True:
            try:
                c, _ = lsock.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(c,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{port}"
    lsock.close()


def test_a_busy_server_is_waited_for_within_timeout(busy_server) -> None:
    client = SegmentClient(busy_server)  # defaults, as 0.2.1 code constructs it
    assert client.allocate_segment("s", "d", "t", "id", 5).end == 5
