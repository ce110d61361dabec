"""JSONL files of Segment-spec messages (plain or gzip) → the event log, in chunks.

Each chunk goes to an ``ingest`` callable (the CLI passes ``scoring.pipeline.ingest``, which stores the
messages and rescores the leads they touch); this module only reads, checks and batches. A bad line is
reported with its number (and column, for JSON syntax) and skipped. Re-importing adds nothing: every
message has an id (its ``messageId``, else one derived from its content).
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

from leadscore.errors import InputError, Problem
from leadscore.ingest.segment import MAX_MESSAGE_BYTES, Message, parse_line

Progress = Callable[[int, int], None]  # (bytes read, file size)
CHUNK = 5000
GZIP_MAGIC = b"\x1f\x8b"


class ChunkResult(Protocol):
    """What ingesting one chunk reports (``scoring.pipeline.IngestReport`` has this shape)."""

    accepted: int
    duplicates: int
    leads_rescored: int
    created_leads: set[int]


Ingest = Callable[[Sequence[Message]], ChunkResult]


@dataclass
class EventImportReport:
    file: str
    lines: int = 0
    accepted: int = 0
    duplicates: int = 0
    leads_created: int = 0
    leads_rescored: int = 0
    problems: list[Problem] = field(default_factory=list)
    aborted: bool = False

    @property
    def rejected(self) -> int:
        return len(self.problems)


def _lines(raw: IO[bytes], file: str) -> Iterator[tuple[int, bytes | Problem]]:
    """Numbered raw lines of a plain or gzip stream; a corrupt gzip tail ends it with a Problem."""
    magic = raw.read(2)
    raw.seek(0)
    stream: Iterable[bytes] = gzip.GzipFile(fileobj=raw, mode="rb") if magic == GZIP_MAGIC else raw
    number = 0
    try:
        for number, line in enumerate(stream, start=1):  # ``number`` is read after the loop
            yield number, line
    except (OSError, EOFError) as exc:
        yield (
            number + 1,
            Problem(
                f"the gzip stream is corrupt or truncated ({exc}); lines after it are lost", file, number + 1
            ),
        )


def read_messages(
    path: Path, *, received_ms: int, progress: Progress | None = None
) -> Iterator[Message | Problem]:
    """Every non-blank line as a Message, or a Problem naming the line (and column for JSON syntax)."""
    file, size = str(path), path.stat().st_size
    with path.open("rb") as raw:
        for number, line in _lines(raw, file):
            if progress is not None and number % 1000 == 0:
                progress(raw.tell(), size)
            if isinstance(line, Problem):
                yield line
                continue
            if len(line) > MAX_MESSAGE_BYTES:
                yield Problem(
                    f"longer than {MAX_MESSAGE_BYTES // 1024} KiB (the Segment limit)", file, number
                )
                continue
            try:
                text = line.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                yield Problem(f"not UTF-8 text (byte {exc.start + 1})", file, number, exc.start + 1)
                continue
            if not text.strip():
                continue
            try:
                yield parse_line(text, number, file, received_ms=received_ms)
            except InputError as exc:
                yield exc.problem
    if progress is not None:
        progress(size, size)


def import_events(
    path: Path,
    ingest: Ingest,
    *,
    chunk_size: int = CHUNK,
    max_errors: int | None = None,
    progress: Progress | None = None,
) -> EventImportReport:
    """Read ``path`` and hand its good messages to ``ingest`` in chunks; bad lines go to the report."""
    report = EventImportReport(str(path))
    pending: list[Message] = []
    for item in read_messages(path, received_ms=int(time.time() * 1000), progress=progress):
        if max_errors is not None and report.rejected >= max_errors:
            report.aborted = True  # the lines read so far stay imported
            break
        report.lines += 1
        if isinstance(item, Problem):
            report.problems.append(item)
        else:
            pending.append(item)
        if len(pending) >= chunk_size:
            _send(ingest, pending, report)
            pending = []
    if pending:
        _send(ingest, pending, report)
    return report


def _send(ingest: Ingest, messages: Sequence[Message], report: EventImportReport) -> None:
    result = ingest(messages)
    report.accepted += result.accepted
    report.duplicates += result.duplicates
    report.leads_rescored += result.leads_rescored
    report.leads_created += len(result.created_leads)
