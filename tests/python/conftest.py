"""Shared by every Python test directory: the ``kxy`` server fixture."""

from kxy_server import kxy  # noqa: F401  (a pytest fixture)
