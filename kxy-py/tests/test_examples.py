"""The README's Python quick start, run as written."""

from __future__ import annotations

import os
import subprocess
import sys

from kxy_server import ROOT, KxyServer


def test_the_python_quickstart_runs(kxy: KxyServer) -> None:
    example = ROOT / "examples" / "python" / "quickstart.py"
    result = subprocess.run(
        [sys.executable, str(example)],
        env={**os.environ, "KXY_URL": kxy.base_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "first id: 1"
    assert lines[1] == "a batch: range(2, 1002)"
    assert lines[2] == "orders: 1"
