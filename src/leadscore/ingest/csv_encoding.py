"""Which text encoding a CSV file is in, and which cell holds a byte that encoding cannot read.

A file is read as UTF-8 unless it says otherwise (a UTF-16 byte-order mark) or the user declares one.
When it is not UTF-8 throughout, its lines decide: if no line with non-ASCII bytes is valid UTF-8, the
file was saved in a single-byte encoding (Excel's "CSV" on Windows: Windows-1252, a superset of the
printable Latin-1) and is read as that, which the report says. If some lines are valid UTF-8 and others
are not, the file is UTF-8 with a few damaged rows: those rows are reported (row, column, byte) and
skipped, and the rest imported.

Bytes an encoding cannot read are kept as lone surrogates (Python's ``surrogateescape``), so a damaged
row still splits into its cells and the damage is found in the cell that holds it.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

UTF8, CP1252, UTF16 = "utf-8-sig", "cp1252", "utf-16"
NAMES = {UTF8: "UTF-8", CP1252: "Windows-1252", UTF16: "UTF-16"}
PIECE = 1 << 16  # bytes of a line read at a time
_ESCAPED = re.compile("[\udc80-\udcff]")


@dataclass(frozen=True)
class Encoding:
    """The codec a file is read with and, when it was guessed rather than plain UTF-8, why."""

    codec: str
    note: str | None = None

    @property
    def name(self) -> str:
        return NAMES.get(self.codec, self.codec)


def detect(path: Path, declared: str | None = None) -> Encoding:
    """The encoding to read ``path`` with (see the module docstring for the rule)."""
    if declared is not None:
        try:
            codec = codecs.lookup(declared).name
        except LookupError:
            raise ValueError(f"unknown encoding {declared!r}") from None
        codec = {"utf-8": UTF8, "windows-1252": CP1252}.get(codec, codec)
        return Encoding(codec, f"read as {NAMES.get(codec, codec)}, as declared")
    with path.open("rb") as raw:
        start = raw.read(4)
        if start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return Encoding(UTF16, "read as UTF-16 (the file starts with a UTF-16 byte-order mark)")
        if start.startswith(codecs.BOM_UTF8):
            return Encoding(UTF8)
        raw.seek(0)
        valid = invalid = 0
        for utf8 in _lines_utf8(raw):
            if utf8 is True:
                valid += 1
            elif utf8 is False:
                invalid += 1
    if invalid and not valid:
        return Encoding(
            CP1252,
            f"read as Windows-1252: the file is not UTF-8 ({invalid} lines with accented letters, none of "
            "them UTF-8); save it as UTF-8 or pass --encoding if it is another encoding",
        )
    return Encoding(UTF8)


def _lines_utf8(raw: BinaryIO) -> Iterator[bool | None]:
    """For each physical line of ``raw``: None when it is ASCII, else whether it is valid UTF-8; read
    ``PIECE`` bytes at a time, so that a line of any length is never held whole."""
    decoder, ascii_, valid = codecs.getincrementaldecoder("utf-8")(), True, True
    while piece := raw.readline(PIECE):
        ends = piece.endswith(b"\n")
        if ascii_ and not piece.isascii():
            ascii_ = False
        if not ascii_ and valid:
            try:
                decoder.decode(piece, final=ends)
            except UnicodeDecodeError:
                valid = False
        if ends:
            yield None if ascii_ else valid
            decoder.reset()
            ascii_, valid = True, True
    if not ascii_:  # the last line, with no line break
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            valid = False
        yield valid


def undecodable(cell: str, encoding: Encoding) -> str | None:
    """Why ``cell`` (decoded with ``surrogateescape``) is damaged, or None when it is not."""
    found = _ESCAPED.search(cell)
    if found is None:
        return None
    byte = ord(found.group()) - 0xDC00
    return f"not valid {encoding.name} (byte 0x{byte:02X} at position {found.start() + 1})"
