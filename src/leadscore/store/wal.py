"""SQLite's write-ahead log: how much of it waits to be copied into the database, and when it is copied.

A checkpoint copies the log's pages into the database file and syncs twice (the log, then the database;
and whichever commit next starts the log over syncs its header), on the disk that every acknowledgement
syncs too. Copied after every processor batch, that was 77 ``fdatasync`` in 8 s beside the server's, whose
own went from 1.5 to 8–10 ms (bench/README.md, "where the time goes"). So the processor copies the log
only once ``CHECKPOINT_FRAMES`` pages wait there, half of the threshold at which SQLite's automatic
checkpoint runs inside a commit (an acknowledgement's, while its writer holds the turn; SQLite's own
default, kept: at 4,000 frames ``/v1/track`` with no processor ran at half the rate in three runs of
four, bench/README.md), so that the automatic one is not reached while a processor runs.

How many pages wait is read from the wal-index header in ``<database>-shm`` (the unix VFS's shared
memory, documented in https://sqlite.org/walformat.html, "The WAL-Index Header"): ``mxFrame``, the last
valid frame of the log, at byte 16, and ``nBackfill``, the frames already copied, at byte 96, both
32-bit in the machine's byte order. ``PRAGMA wal_checkpoint`` reports the same two numbers, but only by
checkpointing.

The file is read through a descriptor this process opens once and never closes while it is the file
SQLite uses: SQLite's locks on ``-shm`` are POSIX record locks, which belong to the process and are all
released when the process closes *any* descriptor of that file. A descriptor opened and closed per read
dropped the shared lock every SQLite connection of the process holds on it, so the next process to open
the database took itself for the only one and truncated the shared memory under this one's mapping: the
processor died of SIGBUS, or worked on an index rebuilt beneath it (``tests/test_wal_backlog.py``).
"""

from __future__ import annotations

import os
import struct
import threading

# every connection's automatic checkpoint (SQLite's default): the commit that grows the log past this
# many frames copies it
WAL_AUTOCHECKPOINT = 1000
# the processor checkpoints after a batch once this many pages wait in the log
CHECKPOINT_FRAMES = WAL_AUTOCHECKPOINT // 2

_U32 = struct.Struct("=I")
_MX_FRAME = 16  # in the first of the header's two copies (48 bytes each)
_N_BACKFILL = 96  # the first field of the checkpoint information that follows them
_HEADER_BYTES = 100


# the shared-memory file's path → a descriptor of it and the file it was opened on (device, inode)
_OPEN: dict[str, tuple[int, tuple[int, int]]] = {}
_LOCK = threading.Lock()


def backlog(database: str) -> int | None:
    """Frames in the write-ahead log of the SQLite file ``database`` not yet copied into it; None when
    that is not known (no shared-memory file: no connection has the database open in WAL mode)."""
    fd = _shm(f"{database}-shm")
    if fd is None:
        return None
    header = os.pread(fd, _HEADER_BYTES, 0)
    if len(header) < _HEADER_BYTES:
        return None
    (frames,) = _U32.unpack_from(header, _MX_FRAME)
    (copied,) = _U32.unpack_from(header, _N_BACKFILL)
    # a header caught between two writers' updates: the next batch reads it again
    return max(0, frames - copied)


def _shm(path: str) -> int | None:
    """This process's descriptor of the shared-memory file at ``path`` (None: there is none). Opened once
    and kept (the module's docstring): only a descriptor of a file no longer at ``path`` is closed, which
    SQLite removed or replaced once no connection used it, so no lock of the process is on it."""
    with _LOCK:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            st = None
        held = _OPEN.get(path)
        if held is not None and (st is None or held[1] != (st.st_dev, st.st_ino)):
            del _OPEN[path]
            os.close(held[0])
            held = None
        if held is None and st is not None:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                return None
            now = os.fstat(fd)
            held = _OPEN[path] = (fd, (now.st_dev, now.st_ino))
        return None if held is None else held[0]
