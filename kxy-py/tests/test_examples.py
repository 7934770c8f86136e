"""The README's Python quick start, run as written."""

from __future__ import annotations

from kxy_server import KxyServer


def test_the_python_quickstart_runs(kxy: KxyServer) -> None:
    lines = kxy.run_example("quickstart.py").splitlines()
    assert lines[0] == "first id: 1"
    assert lines[1] == "a batch: range(2, 1002)"
    assert lines[2] == "orders: 1"
