"""The ``kxy`` server fixture, shared with the repository's other Python tests."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tests" / "python"))

from kxy_server import kxy, kxy_requiring_keys  # noqa: E402,F401  (pytest fixtures)
