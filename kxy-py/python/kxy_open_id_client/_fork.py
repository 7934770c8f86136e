"""Fork safety: a forked child never hands out its parent's cached IDs.

After ``os.fork()`` (multiprocessing, gunicorn workers) parent and child
hold copies of the same cached segments. The Rust core notices a fork by
itself (a ``pthread_atfork`` handler counts forks, and every generator
starts over in a newer generation), so even a fork these hooks miss is
safe. The hook below adds a second line: it runs in every child and gives
each live client and generator a fresh cache and connection. A client or
generator that fails to reset does not keep the others from it: all are
reset, then the failures are reported with one warning.
"""

from __future__ import annotations

import os
import warnings
import weakref

from . import _native

_live: "weakref.WeakSet[object]" = weakref.WeakSet()


def track(obj: object) -> None:
    """Registers a client or generator to be reset in forked children."""
    _live.add(obj)


def _after_fork_in_child() -> None:
    _native.after_fork_in_child()
    failures = []
    for obj in list(_live):
        try:
            obj._reset_after_fork()  # type: ignore[attr-defined]
        except Exception as error:  # noqa: BLE001 (reset every object first)
            failures.append(f"{type(obj).__name__}: {error!r}")
    if failures:
        warnings.warn(
            "kxy_open_id_client: after fork, could not reset "
            + "; ".join(failures)
            + " (their Rust core still starts over by itself before handing out IDs)",
            RuntimeWarning,
            stacklevel=2,
        )


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
