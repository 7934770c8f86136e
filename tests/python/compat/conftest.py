"""Fixtures of the compatibility suite: fake servers, stopped after each test."""

from __future__ import annotations

import pathlib
from typing import Callable, Iterator, List, Union

import pytest

from fakes import HttpFake, SilentServer, TlsFiles, tls_files


@pytest.fixture
def fake() -> Iterator[Callable[..., HttpFake]]:
    """``fake(respond, delay=0, tls=None)`` starts an ``HttpFake``."""
    started: List[Union[HttpFake, SilentServer]] = []

    def start(respond=None, delay: float = 0.0, tls=None) -> HttpFake:
        server = HttpFake(respond or HttpFake.segments(), delay=delay, tls=tls)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return tls_files(pathlib.Path(tmp_path_factory.mktemp("tls")))
