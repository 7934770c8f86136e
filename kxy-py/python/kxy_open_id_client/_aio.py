"""Awaiting a native request under asyncio or trio.

A native async call starts a task on kxy's own runtime (see
``kxy-py/src/pending.rs``) and returns a ``Pending`` handle, or a value at
once when none is needed (a cached ID). The task calls ``done(ok, value)``
from its own thread; ``wait`` hands that to the waiting coroutine the way
its event loop allows: ``call_soon_threadsafe`` under asyncio, a trio
token under trio. The event loop's default executor is never used, so a
stalled server cannot starve other ``run_in_executor`` users. If the
awaiting coroutine is cancelled, the task is aborted and the request in
flight dropped. The event loop is told apart with ``sniffio``, as httpx
does.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, List, Tuple

import sniffio

from . import _native

Done = Callable[[bool, Any], None]


async def wait(start: Callable[[Done], Any]) -> Any:
    """Starts a native request with ``start(done)`` and waits for it."""
    library = sniffio.current_async_library()
    if library == "trio":
        return await _wait_trio(start)
    if library == "asyncio":
        return await _wait_asyncio(start)
    raise RuntimeError(f"kxy_open_id_client supports asyncio and trio, not {library}")


def _settle(future: "asyncio.Future[Any]", ok: bool, value: Any) -> None:
    if future.cancelled():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


async def _wait_asyncio(start: Callable[[Done], Any]) -> Any:
    loop = asyncio.get_running_loop()
    future: "asyncio.Future[Any]" = loop.create_future()

    def done(ok: bool, value: Any) -> None:
        try:
            loop.call_soon_threadsafe(_settle, future, ok, value)
        except RuntimeError:  # the loop closed meanwhile: nobody waits
            pass

    pending = start(done)
    if not isinstance(pending, _native.Pending):
        return pending
    try:
        return await future
    except BaseException:
        pending.cancel()
        raise


async def _wait_trio(start: Callable[[Done], Any]) -> Any:
    import trio

    token = trio.lowlevel.current_trio_token()
    finished = trio.Event()
    outcome: List[Tuple[bool, Any]] = []

    def done(ok: bool, value: Any) -> None:
        outcome.append((ok, value))
        try:
            token.run_sync_soon(finished.set)
        except trio.RunFinishedError:  # the run ended meanwhile
            pass

    pending = start(done)
    if not isinstance(pending, _native.Pending):
        return pending
    try:
        await finished.wait()
    except BaseException:
        pending.cancel()
        raise
    ok, value = outcome[0]
    if ok:
        return value
    raise value
