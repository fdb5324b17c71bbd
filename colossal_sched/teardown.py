"""Teardown, at interpreter exit, of what colossal_sched creates: process groups, stores, lock heartbeats.

``atexit`` callbacks run before finalisation, while gloo's threads can still finish: one that finishes after it
aborts the process (``terminate called without an active exception``; README, "A clean exit")."""
from __future__ import annotations

import atexit
import weakref
from typing import Callable


def close_at_exit(close: Callable[[], None]) -> Callable[[], None]:
    """Call the bound method ``close`` at exit, holding its object weakly; ``atexit.unregister`` the result once closed."""
    method = weakref.WeakMethod(close)

    def callback() -> None:
        live = method()
        if live is not None:
            live()

    atexit.register(callback)
    return callback
