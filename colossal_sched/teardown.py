"""Teardown, at interpreter exit, of what colossal_sched creates: process groups, stores, lock heartbeats.

A gloo worker thread that releases a collective's tensors once the interpreter has begun to finalise
cannot take the GIL and ends the process with ``terminate called without an active exception``
(SIGABRT; torch 2.13 does it with a plain ``init_process_group`` script too). ``atexit`` callbacks run
before finalisation, while every thread can still finish, so each object that owns such threads is
closed by one of them, unless it was closed before.
"""
from __future__ import annotations

import atexit
import weakref
from typing import Callable


def close_at_exit(close: Callable[[], None]) -> Callable[[], None]:
    """Call the bound method ``close`` at interpreter exit, holding its object weakly (an object collected
    before is torn down by its own destructor). Returns the callback: ``atexit.unregister`` it once closed."""
    method = weakref.WeakMethod(close)

    def callback() -> None:
        live = method()
        if live is not None:
            live()

    atexit.register(callback)
    return callback
