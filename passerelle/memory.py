"""Pausing the cyclic garbage collector while a large configuration is built.

Translating or compiling thousands of Ingresses allocates hundreds of thousands of objects, all
freed by reference counting; the cyclic collector would meanwhile rescan the whole snapshot again
and again (measured: 0.35 s of a 0.9 s translation of 10,000 Ingresses). It runs again as soon as
the build is done.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
