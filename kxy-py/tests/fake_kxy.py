"""A minimal fake kxy server (standard library only) for tests that need
to control answers: which store they name, when they arrive."""

from __future__ import annotations

import http.server
import json
import threading


class FakeKxy:
    """Answers POST /api/segment/allocate with consecutive segments from
    ``first``, naming ``store_id`` (None: names no store). ``gate``: while
    cleared, answers wait for it. Records the headers of every request."""

    def __init__(self, store_id=None, first=1, delay=0.0):
        self.store_id, self.next_start, self.delay = store_id, first, delay
        self.gate = threading.Event()
        self.gate.set()
        self.requests = []  # (headers dict, body dict)
        self.arrived = threading.Event()
        self._lock = threading.Lock()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                fake.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                fake.arrived.set()
                fake.gate.wait(30)
                if fake.delay:
                    import time
                    time.sleep(fake.delay)
                count = int(body["segment_count"])
                with fake._lock:
                    start = fake.next_start
                    fake.next_start += count
                data = {"start": start, "end": start + count - 1}
                if fake.store_id:
                    data["store_id"] = fake.store_id
                out = json.dumps({"code": 0, "msg": "ok", "data": data, "traceId": "t"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False

        self._server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self):
        self.gate.set()
        self._server.shutdown()
        self._server.server_close()
