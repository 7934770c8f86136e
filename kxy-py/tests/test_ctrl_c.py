"""Ctrl-C (SIGINT) interrupts ``next_id()`` / ``allocate_segment()`` while
they wait for a server, as it interrupted 0.2.1's (httpx, pure Python).

The native calls wait for their answer in short slices and check for
signals between them (``kxy-py/src/interruptible.rs``), so a CLI or worker
stuck on an unresponsive server can be stopped, also with ``timeout=None``.
(Found by a hostile review: the wait ran to its timeout, or for ever.)
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

SCRIPT = textwrap.dedent(
    """
    import sys
    from kxy_open_id_client import IdGenerator, SegmentClient
    client = SegmentClient(sys.argv[1], timeout=float(sys.argv[3]) if sys.argv[3] != "None" else None)
    print("ready", flush=True)
    try:
        if sys.argv[2] == "next_id":
            IdGenerator(client, "s", "d", "t", "id", 10).next_id()
        else:
            client.allocate_segment("s", "d", "t", "id", 10)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(3)
    """
)


@pytest.fixture
def silent():
    """Accepts connections and reads, never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


@pytest.mark.parametrize("call", ["next_id", "allocate_segment"])
@pytest.mark.parametrize("timeout", ["None", "30"])
def test_sigint_interrupts_a_waiting_call(silent, call, timeout) -> None:
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, silent, call, timeout], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(1.0)  # the request is in flight
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{call}() still waiting 5 s after SIGINT (timeout={timeout})")
        assert proc.returncode == 3 and time.monotonic() - sent < 5
    finally:
        proc.kill()
        proc.wait()
