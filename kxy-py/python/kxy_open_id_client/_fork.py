"""Fork safety: a forked child never hands out its parent's cached IDs.

After ``os.fork()`` (multiprocessing, gunicorn workers) parent and child
hold copies of the same cached segments. The hook below runs in every child
and gives each live client and generator a fresh cache and connection, so
the child fetches segments of its own.
"""

from __future__ import annotations

import os
import weakref

from . import _native

_live: "weakref.WeakSet[object]" = weakref.WeakSet()


def track(obj: object) -> None:
    """Registers a client or generator to be reset in forked children."""
    _live.add(obj)


def _after_fork_in_child() -> None:
    _native.after_fork_in_child()
    for obj in list(_live):
        obj._reset_after_fork()  # type: ignore[attr-defined]


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
