"""Shared by every Python test directory: the ``kxy`` server fixture."""

from kxy_server import kxy, kxy_requiring_keys  # noqa: F401  (pytest fixtures)
