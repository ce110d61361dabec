"""JSONL files of Segment-spec messages (plain or gzip) → the event log, in chunks.

Each chunk goes to an ``ingest`` callable (the CLI passes ``scoring.pipeline.ingest``, which stores the
messages and rescores the leads they touch); this module only reads, checks and batches. A bad line is
reported with its number (and column, for JSON syntax) and skipped. Re-importing adds nothing: every
message has an id (its ``messageId``, else one derived from its content).
"""

from __future__ import annotations

import gzip
import os
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

import orjson

from leadscore.collection import collection_paused
from leadscore.errors import InputError, Problem
from leadscore.ingest.segment import MAX_MESSAGE_BYTES, Message, line_message, parse_line

Progress = Callable[[int, int], None]  # (bytes read, file size)
CHUNK = 5000
# what a parsing process takes at a time: lines, and bytes (what is read ahead stays small beside a chunk)
BATCH, BATCH_BYTES = 2000, 1 << 20
PARALLEL_BYTES = 8 << 20  # files from this size are parsed in another process (start-up: ~0.1 s)
GZIP_MAGIC = b"\x1f\x8b"


class ChunkResult(Protocol):
    """What ingesting one chunk reports (``scoring.pipeline.IngestReport`` has this shape)."""

    accepted: int
    duplicates: int
    suppressed: int
    leads_rescored: int
    created_leads: set[int]


Ingest = Callable[[Sequence[Message]], ChunkResult]


@dataclass
class EventImportReport:
    file: str
    lines: int = 0
    accepted: int = 0
    duplicates: int = 0
    suppressed: int = 0  # messages naming a person erased with --suppress: dropped, unstored
    leads_created: int = 0
    leads_rescored: int = 0
    problems: list[Problem] = field(default_factory=list)
    aborted: bool = False

    @property
    def rejected(self) -> int:
        return len(self.problems)


def _bounded_lines(stream: IO[bytes] | gzip.GzipFile, limit: int) -> Iterator[bytes]:
    """The stream's lines, each cut to its first ``limit`` bytes, the rest of a longer one read and dropped
    a piece at a time: a line no message can be is refused by its length (``_parse``), never held whole
    (a gzip file of a few hundred KB can hold a line of gigabytes)."""
    while line := stream.readline(limit):
        if len(line) == limit and not line.endswith(b"\n"):
            _drop_rest_of_line(stream, limit)
        yield line


def _drop_rest_of_line(stream: IO[bytes] | gzip.GzipFile, limit: int) -> None:
    """Read what is left of the current line, ``limit`` bytes at a time, and keep none of it."""
    rest = stream.readline(limit)
    while rest and not rest.endswith(b"\n"):
        rest = stream.readline(limit)


def _lines(raw: IO[bytes], file: str) -> Iterator[tuple[int, bytes | Problem]]:
    """Numbered raw lines of a plain or gzip stream, each at most one byte past the longest message; a
    corrupt gzip tail ends it with a Problem."""
    magic = raw.read(2)
    raw.seek(0)
    stream = gzip.GzipFile(fileobj=raw, mode="rb") if magic == GZIP_MAGIC else raw
    number = 0
    try:
        # ``number`` is read after the loop
        for number, line in enumerate(_bounded_lines(stream, MAX_MESSAGE_BYTES + 1), start=1):
            yield number, line
    except (OSError, EOFError) as exc:
        yield (
            number + 1,
            Problem(
                f"the gzip stream is corrupt or truncated ({exc}); lines after it are lost", file, number + 1
            ),
        )


def _parse(number: int, line: bytes, file: str, received_ms: int) -> Message | Problem | None:
    """One raw line as a Message, a Problem naming it, or None for a blank line.

    A line that is one JSON value in valid UTF-8 (the common case) is decoded from its bytes once; any
    other (blank, a byte order mark, bad UTF-8 or JSON) takes the path through text, which words the
    problem. Both read the same value: orjson decodes text by its UTF-8 bytes."""
    if len(line) > MAX_MESSAGE_BYTES:
        return Problem(f"longer than {MAX_MESSAGE_BYTES // 1024} KiB (the Segment limit)", file, number)
    try:
        raw = orjson.loads(line)
    except orjson.JSONDecodeError:
        pass  # not one JSON value in valid UTF-8: the text path below reads it and words the problem
    else:  # parse_line's size check is this function's (the bytes counted here include the newline)
        try:
            return line_message(raw, number, file, received_ms=received_ms)
        except InputError as exc:
            return exc.problem
    try:
        text = line.decode("utf-8-sig" if number == 1 else "utf-8")
    except UnicodeDecodeError as exc:
        return Problem(f"not UTF-8 text (byte {exc.start + 1})", file, number, exc.start + 1)
    if not text.strip():
        return None
    try:
        return parse_line(text, number, file, received_ms=received_ms)
    except InputError as exc:
        return exc.problem


def _parse_batch(
    batch: list[tuple[int, bytes | Problem]], file: str, received_ms: int
) -> list[Message | Problem]:
    """``_parse`` over numbered lines (a worker process runs this); Problems pass through in place."""
    out: list[Message | Problem] = []
    for number, line in batch:
        item = line if isinstance(line, Problem) else _parse(number, line, file, received_ms)
        if item is not None:
            out.append(item)
    return out


def _batches(path: Path, progress: Progress | None) -> Iterator[list[tuple[int, bytes | Problem]]]:
    """The numbered raw lines of ``path`` in lists of ``BATCH`` lines or ``BATCH_BYTES`` bytes, whichever
    comes first, reporting progress as they are read."""
    file_size = path.stat().st_size
    with path.open("rb") as raw:
        batch: list[tuple[int, bytes | Problem]] = []
        size = 0
        for number, line in _lines(raw, str(path)):
            if progress is not None and number % 1000 == 0:
                progress(raw.tell(), file_size)
            batch.append((number, line))
            size += len(line) if isinstance(line, bytes) else 0
            if len(batch) >= BATCH or size >= BATCH_BYTES:
                yield batch
                batch, size = [], 0
        if batch:
            yield batch
    if progress is not None:
        progress(file_size, file_size)


def read_messages(
    path: Path, *, received_ms: int, progress: Progress | None = None, workers: int = 0
) -> Generator[Message | Problem, None, None]:
    """Every non-blank line as a Message, or a Problem naming the line (and column for JSON syntax).

    With ``workers`` the lines are parsed and checked in that many other processes, ``BATCH`` lines a
    task, while this one goes on with what they return (in file order; at most ``2 * workers`` batches
    are read ahead, so memory stays bounded). Without, here.
    """
    file = str(path)
    if workers <= 0:
        for batch in _batches(path, progress):
            yield from _parse_batch(batch, file, received_ms)
        return
    import multiprocessing
    from concurrent.futures import Future, ProcessPoolExecutor

    from leadscore.children import child_init

    # fork where there is one: the parser is imported already, a spawned child would import it again
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    pool = ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context(method), initializer=child_init
    )
    try:
        ahead: deque[Future[list[Message | Problem]]] = deque()
        for batch in _batches(path, progress):
            ahead.append(pool.submit(_parse_batch, batch, file, received_ms))
            if len(ahead) > 2 * workers:
                yield from ahead.popleft().result()
        while ahead:
            yield from ahead.popleft().result()
    finally:  # also when the reader stops early (too many errors): queued batches are dropped
        pool.shutdown(wait=True, cancel_futures=True)


def parse_workers(path: Path) -> int:
    """How many processes to parse ``path`` in: one beside the store's when the file is large enough to
    repay starting it and a core is idle (load average below the cores less one), else none. On a busy
    machine the two processes wait for each other's turns, and a pipeline is slower than one process."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if cores < 2 or path.stat().st_size < PARALLEL_BYTES:
        return 0
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return 1 if load < cores - 1 else 0


def import_events(
    path: Path,
    ingest: Ingest,
    *,
    chunk_size: int = CHUNK,
    max_errors: int | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
) -> EventImportReport:
    """Read ``path`` and hand its good messages to ``ingest`` in chunks; bad lines go to the report.

    ``workers``: processes parsing lines beside this one (default: ``parse_workers``)."""
    report = EventImportReport(str(path))
    workers = parse_workers(path) if workers is None else workers
    items = read_messages(path, received_ms=int(time.time() * 1000), progress=progress, workers=workers)
    with closing(items):  # stopping early stops the parsing processes too
        more = True
        while more:
            # the collector paused while a chunk is read and stored: its messages stay alive until then
            # (none in a cycle), and each young collection walked them again (a third of the parse, a tenth
            # of storing, measured); it runs between chunks, on what the chunk left
            with collection_paused():
                more = _chunk(items, ingest, chunk_size, max_errors, report)
    return report


def _chunk(
    items: Iterator[Message | Problem],
    ingest: Ingest,
    chunk_size: int,
    max_errors: int | None,
    report: EventImportReport,
) -> bool:
    """Read the next ``chunk_size`` good messages (bad lines to the report) and hand them to ``ingest``;
    whether lines may be left (False: the file ended, or ``max_errors`` stopped the import)."""
    pending: list[Message] = []
    full = False
    for item in items:
        if max_errors is not None and report.rejected >= max_errors:
            report.aborted = True  # the lines read so far stay imported
            break
        report.lines += 1
        if isinstance(item, Problem):
            report.problems.append(item)
        else:
            pending.append(item)
        if len(pending) >= chunk_size:
            full = True
            break
    if pending:
        _send(ingest, pending, report)
    return full


def _send(ingest: Ingest, messages: Sequence[Message], report: EventImportReport) -> None:
    result = ingest(messages)
    report.accepted += result.accepted
    report.duplicates += result.duplicates
    report.suppressed += result.suppressed
    report.leads_rescored += result.leads_rescored
    report.leads_created += len(result.created_leads)
