"""The ``kxy`` server fixture, shared with the repository's other Python tests."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tests" / "python"))

from kxy_server import kxy  # noqa: E402,F401  (a pytest fixture)
