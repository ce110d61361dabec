"""The cyclic garbage collector paused around work that builds many objects which stay alive.

Reading a scoring result, parsing and storing a chunk of an import, a rescoring pass: each builds tens of
thousands of objects (rows, ledgers, messages; none in a reference cycle, so reference counting frees
them), and with CPython's default thresholds each 700 allocations start a collection that walks every
young object, and every few thousand one that walks the whole heap. Paused, the collector runs once
after the block instead (its counts kept growing), on what the block left.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collection_paused() -> Iterator[None]:
    """No cyclic garbage collection inside: a fifth of reading three scores' results was collections
    walking the ledgers already read, measured. Collection resumes after, if it was on (another thread's
    pause may end first: collection is then on for the rest of this one, no harm)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
