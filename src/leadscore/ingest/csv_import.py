"""CSV exports (HubSpot, Salesforce, any spreadsheet) → leads and accounts, row by row.

Headers become attribute names through ``attributes.canonical`` unless ``--map`` says otherwise. A bad
row (a byte its encoding cannot read, a number that is not one, a value the store cannot hold) is
reported with its number as a spreadsheet shows it (header = row 1) and its column, and skipped; good
rows before and after it are committed in chunks. The encoding and each column's number format are
decided from the whole file first (``csv_encoding``, ``csv_numbers``). Importing the same file twice
changes nothing.
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from sqlalchemy import Column, Connection, Table, select
from sqlalchemy.exc import SQLAlchemyError

from leadscore.errors import InputError, Problem
from leadscore.ingest.apply import Ids, suppressed_in
from leadscore.ingest.attributes import CONSENT, canonical, consent_value, normalise_domain
from leadscore.ingest.csv_encoding import Encoding, detect, undecodable
from leadscore.ingest.csv_numbers import ColumnFormat, ColumnProfile, Mark, NumberProblem
from leadscore.ingest.limits import MAX_ROW_CHARS, email_refusal
from leadscore.ingest.person_names import NameRefused, person_name
from leadscore.ingest.traits import NAME_TRAITS
from leadscore.model.text_case import normalise_text
from leadscore.store import Store
from leadscore.store.people import find_lead, normalise_email, upsert_account, upsert_lead
from leadscore.store.schema import accounts, leads

Progress = Callable[[int, int], None]  # (bytes read, file size)
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
DOMAIN = re.compile(
    r"^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$"
)
LEAD_TEXT = {"email": leads.c.email, "user_id": leads.c.external_id, "first_name": leads.c.first_name,
             "last_name": leads.c.last_name, "company": leads.c.company}  # fmt: skip
TEXT_FIELDS = frozenset({*LEAD_TEXT, "name", "domain", "website"})  # ids and names are never numbers
CHUNK = 500


@dataclass(frozen=True)
class ImportOptions:
    """``mapping``: header → attribute name (overrides the canonical one); ``ignore``: headers to skip;
    ``encoding``: the file's encoding (None: detected); ``decimal``: the decimal mark of every numeric
    column (None: decided per column)."""

    mapping: Mapping[str, str] = field(default_factory=dict)
    ignore: frozenset[str] = frozenset()
    encoding: str | None = None
    decimal: Mark | None = None
    max_errors: int | None = None
    chunk_size: int = CHUNK
    max_row_chars: int = MAX_ROW_CHARS  # a longer row is refused (``csv_records``)


@dataclass
class ImportReport:
    """What an import did; ``changed_leads`` are the leads whose score may have moved."""

    file: str
    encoding: str = "UTF-8"
    notes: list[str] = field(default_factory=list)  # how the file was read, when not plain UTF-8
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    problems: list[Problem] = field(default_factory=list)
    aborted: bool = False
    changed_leads: set[int] = field(default_factory=set)
    leads_linked: int = 0
    # rows left out on purpose, not errors: a person erased with --suppress (``_suppressed_rows``)
    skipped: list[Problem] = field(default_factory=list)

    @property
    def suppressed(self) -> int:
        return len(self.skipped)

    @property
    def rejected(self) -> int:
        return len(self.problems)


@dataclass
class _Row:
    number: int
    values: dict[str, Any]  # attribute name → value (text or number)
    headers: dict[str, str]  # attribute name → the header it came from


class _Rejected(Exception):
    def __init__(self, header: str | None, reason: str) -> None:
        self.header, self.reason = header, reason


def sniff_delimiter(header_line: str) -> str:
    """``,``, ``;`` or tab, guessed from the header line (``,`` when nothing else fits)."""
    try:
        return csv.Sniffer().sniff(header_line, delimiters=",;\t").delimiter
    except csv.Error:
        return ","


def resolve_columns(headers: list[str], options: ImportOptions, file: str) -> list[str | None]:
    """Each header's attribute name, or None when ignored; a mapped or ignored header must exist."""
    by_key = {h.strip().casefold(): h for h in reversed(headers)}

    def find(name: str) -> str:
        found = name if name in headers else by_key.get(name.strip().casefold())
        if found is None:
            raise InputError(Problem(f"no column {name!r}; the columns are {', '.join(headers)}", file, 1))
        return found

    targets = {find(h): target for h, target in options.mapping.items()}
    mapped = {h: canonical(target) for h, target in targets.items()}
    ignored = {find(h) for h in options.ignore}
    columns = [None if h in ignored or not h.strip() else mapped.get(h, canonical(h)) for h in headers]
    for index, (header, name) in enumerate(zip(headers, columns, strict=True)):
        if name != "":
            continue
        # stored under the empty name, two such columns were one: refused, as a trait of no letter or digit
        column, why = f"column {index + 1} ({header!r})", "has no letter or digit to name an attribute by"
        if header in mapped:
            message = f"--map target {targets[header]!r} of {column} {why}"
        else:
            message = f"{column} {why}; name it with --map or skip it with --ignore"
        raise InputError(Problem(message, file, 1, field=header))
    return columns


def read_as_one(
    headers: Sequence[str], names: Sequence[str | None], skip: Callable[[str], bool] | None = None
) -> tuple[int, int, str] | None:
    """The first two headers read as one name (``Employees`` twice, or ``Title`` and ``Job Title``), as
    (index of the first, index of the second, the name), or None: a reader keeps one cell of the two
    (``learn`` and ``evaluate`` refuse the file, ``outcomes import`` too, ``import leads`` notes it).
    ``names``: each header's name (None or empty: not read); ``skip``: names that may repeat."""
    first: dict[str, int] = {}
    for index, name in enumerate(names):
        if not name or (skip is not None and skip(name)):
            continue
        if name in first:
            return first[name], index, name
        first[name] = index
    return None


def read_as_one_message(headers: Sequence[str], twice: tuple[int, int, str]) -> str:
    a, b, name = twice
    return f"columns {a + 1} ({headers[a]!r}) and {b + 1} ({headers[b]!r}) are both read as {name!r}"


@dataclass
class CsvFile:
    """A CSV file ready to be read: its encoding, columns and how each column's cells are read.

    Opening it reads the whole file once to decide the encoding and each column's number format
    (``csv_encoding``, ``csv_numbers``); ``rows`` then reads it again, row by row.
    """

    path: Path
    encoding: Encoding
    delimiter: str
    headers: list[str]
    columns: list[str | None]
    formats: dict[int, ColumnFormat]  # column index → its format (every profiled column)
    limit: int = MAX_ROW_CHARS  # the most characters a row holds

    @property
    def notes(self) -> list[str]:
        notes = [self.encoding.note] if self.encoding.note else []
        twice = read_as_one(self.headers, self.columns)
        if twice is not None:
            notes.append(
                read_as_one_message(self.headers, twice) + ": each row keeps the first non-blank cell"
            )
        return notes

    def rows(self, progress: Progress | None = None) -> Iterator[_Row | Problem]:
        """A ``_Row`` per non-blank good row, a ``Problem`` per bad one (the row is skipped)."""
        file, size = str(self.path), self.path.stat().st_size
        with csv_records(self.path, self.encoding, self.delimiter, limit=self.limit) as (raw, records):
            next(records, None)  # the header
            for number, cells in records:
                if progress is not None and number % 100 == 0:
                    progress(raw.tell(), size)
                if isinstance(cells, Problem):
                    yield cell_named(cells, self.headers)
                elif len(cells) != len(self.headers):
                    yield Problem(f"expected {len(self.headers)} columns, found {len(cells)}", file, number)
                else:
                    yield self._to_row(number, cells)
        if progress is not None:
            progress(size, size)

    def _to_row(self, number: int, cells: list[str]) -> _Row | Problem:
        row, file = _Row(number, {}, {}), str(self.path)
        for index, (header, name, cell) in enumerate(zip(self.headers, self.columns, cells, strict=True)):
            if name is None or name in row.values:
                continue
            damage = undecodable(cell, self.encoding) if not cell.isascii() else None
            if damage is not None:
                return Problem(damage, file, number, field=header)
            if "\x00" in cell:
                return Problem("contains a NUL character", file, number, field=header)
            # in NFC as rules' literals are (model.text_case); an id is kept as given, as an API's is
            text = cell.strip() if name == "user_id" else normalise_text(cell.strip())
            if not text:
                continue
            value: Any = text
            if name in CONSENT:
                value = consent_value(text)
                if value is None:
                    return Problem(
                        f"{text!r} is not a consent value (yes/no, true/false)", file, number, field=header
                    )
            elif (column := self.formats.get(index)) is not None and column.numeric:
                try:
                    value = column.convert(text)
                except NumberProblem as exc:
                    return Problem(str(exc), file, number, field=header)
            row.values[name], row.headers[name] = value, header
        return row


def cell_named(problem: Problem, names: Sequence[str]) -> Problem:
    """A row's problem with a cell given by number (``column``, from ``csv_records``) names the cell's
    column instead, as every other problem of a row does (``names``: each column's, in file order)."""
    if problem.column is None or not 0 < problem.column <= len(names):
        return problem
    return replace(problem, column=None, field=names[problem.column - 1])


class _TooLong(Exception):
    """The record being read is over the row limit (``_Lines``)."""


class _Lines:
    """The text's physical lines as the csv reader takes them, remembering the lines of the record being
    read (``taken``) and whether it reached the end of the file (``hit_end``: only a quote still open
    does), so that a record whose quote swallowed the lines after it can be read again from its second
    line (``read_again``).

    A record may hold at most ``limit`` characters (``MAX_ROW_CHARS``): the line that would take it past
    that raises ``_TooLong`` instead of being taken, and is read again after the record; a physical line
    over the limit is never held (``physical``): None stands for it and refuses its row."""

    def __init__(self, text: TextIO, limit: int) -> None:
        self._text, self.limit = text, limit
        self._again: list[str | None] = []  # lines to read again, the next one last (None: over the limit)
        self._carry = ""  # a character read past the end of a line over the limit
        self.taken: list[str] = []
        self._size = 0  # characters taken
        self.hit_end = False

    def physical(self) -> str | None:
        """The next physical line (empty at the end), or None when it is over ``limit`` characters: its
        text is then read ``limit`` characters at a time and dropped, never held whole."""
        carry, self._carry = self._carry, ""
        if carry == "\r":  # an empty line of its own
            return carry
        line = carry + self._text.readline(self.limit + 1 - len(carry))
        if len(line) <= self.limit:
            return line
        while line and not line.endswith(("\n", "\r")):  # the rest of the line, a piece at a time
            line = self._text.readline(self.limit + 1)
        if line.endswith("\r"):  # a CR LF cut between its two characters ends at the LF
            after = self._text.read(1)
            self._carry = "" if after == "\n" else after
        return None

    def peek(self) -> str | None:
        """The next physical line (as ``physical``), left to be read."""
        line = self.physical()
        self._again.append(line)
        return line

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self._again.pop() if self._again else self.physical()
        if line == "":
            self.hit_end = True
            raise StopIteration
        if line is None or self._size + len(line) > self.limit:
            if self.taken:  # read after the record it would have taken over the limit
                self._again.append(line)
            raise _TooLong
        self.taken.append(line)
        self._size += len(line)
        return line

    def start_record(self) -> None:
        self.taken, self._size, self.hit_end = [], 0, False

    def read_again(self, lines: Sequence[str | None]) -> None:
        self._again.extend(reversed(lines))


def _unclosed_quote(lines: _Lines, over: bool) -> str | None:
    """Why the record just read is one row's quote that never closed, or None: it spans several lines and
    ran to the end of the file, or past the row limit (``over``). A quote closed on a later line ends its
    record there, so a real multi-line cell is neither."""
    if not lines.taken or (len(lines.taken) < 2 and not over):
        return None
    if lines.hit_end and not over:
        return "a quote opened in this cell is never closed; the lines after it are read as rows"
    if over:
        return (f"a quote opened in this cell is not closed within {lines.limit:,} characters (the most a "
                "row may hold); the lines after it are read as rows")  # fmt: skip
    return None


@contextmanager
def csv_records(path: Path, encoding: Encoding, delimiter: str | None = None, blank: bool = False,
                limit: int = MAX_ROW_CHARS,
                ) -> Iterator[tuple[BinaryIO, Iterator[tuple[int, list[str] | Problem]]]]:  # fmt: skip
    """The file's records with their spreadsheet row numbers (header = 1; a quoted newline does not
    start a row), rows of blank cells left out unless ``blank`` (an empty line always); undecodable bytes
    stay in the cells as lone surrogates. An unreadable row is a Problem; a quote that never closes loses
    its own row only (a Problem naming its cell by number, ``column``: ``cell_named``), not the rows
    after it; so does a row over ``limit`` characters, never held whole. ``delimiter`` None: sniffed
    from the header line."""
    with (
        path.open("rb") as raw,
        io.TextIOWrapper(raw, encoding=encoding.codec, errors="surrogateescape", newline="") as text,
    ):
        lines = _Lines(text, limit)
        delimiter = delimiter or sniff_delimiter(lines.peek() or "")
        reader = csv.reader(lines, delimiter=delimiter)
        too_long = f"the row is longer than {limit:,} characters (the most a row may hold)"

        def records() -> Iterator[tuple[int, list[str] | Problem]]:
            number = 0
            while True:
                number += 1
                lines.start_record()
                error: csv.Error | None = None
                over = False
                try:
                    cells = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    error, cells = exc, []
                except _TooLong:
                    over, cells = True, []
                unclosed = _unclosed_quote(lines, over)
                if unclosed is not None:
                    first, *after = lines.taken
                    lines.read_again(after)
                    column = len(next(csv.reader([first], delimiter=delimiter)))
                    yield number, Problem(unclosed, str(path), number, column=column)
                elif over:
                    yield number, Problem(too_long, str(path), number)
                elif error is not None:
                    yield number, Problem(f"unreadable row: {error}", str(path), number)
                elif any(c.strip() for c in cells) or number == 1 or (blank and cells):
                    yield number, cells

        yield raw, records()


def open_csv(path: Path, options: ImportOptions, need: tuple[str, ...] = ()) -> CsvFile:
    """Read the header and profile every column (``need``: attribute names of which at least one must
    be a column, else the file is refused)."""
    file = str(path)
    try:
        encoding = detect(path, options.encoding)
    except ValueError as exc:
        raise InputError(Problem(str(exc), file, 1)) from None
    with (
        path.open("rb") as raw,
        io.TextIOWrapper(raw, encoding=encoding.codec, errors="surrogateescape", newline="") as text,
    ):
        delimiter = sniff_delimiter(_Lines(text, options.max_row_chars).physical() or "")
    with csv_records(path, encoding, delimiter, limit=options.max_row_chars) as (_, records):
        first = next(records, None)
        if first is not None and isinstance(first[1], Problem):
            raise InputError(replace(first[1], message=f"the header row: {first[1].message}"))
        headers = first[1] if first is not None and isinstance(first[1], list) else []
        if not any(h.strip() for h in headers):
            raise InputError(Problem("the file has no header row", file, 1))
        damaged = next((d for h in headers if (d := undecodable(h, encoding))), None)
        if damaged is not None:
            raise InputError(Problem(f"the header row is {damaged}", file, 1))
        nul = next((i for i, h in enumerate(headers) if "\x00" in h), None)
        if nul is not None:
            # a header read as another name (Emp\0loyees as emp_loyees), or UTF-16 without a byte-order mark
            raise InputError(Problem(f"the header row contains a NUL character (column {nul + 1}); a UTF-16 "
                                     "file without a byte-order mark reads so", file, 1))  # fmt: skip
        columns = resolve_columns(headers, options, file)
        if need and not set(need) & set(columns):
            wanted = " or ".join(need)
            raise InputError(
                Problem(f"no column for {wanted}; name one with --map 'Header={need[0]}'", file, 1)
            )
        profiled = {
            i: ColumnProfile()
            for i, name in enumerate(columns)
            if name and name not in (*TEXT_FIELDS, *CONSENT)
        }
        for number, cells in records:
            if isinstance(cells, Problem) or len(cells) != len(headers):
                continue
            for i, profile in profiled.items():
                value = cells[i].strip()
                if value:
                    profile.add(number, value)
    formats = {i: ColumnFormat.decide(p, options.decimal) for i, p in profiled.items()}
    return CsvFile(path, encoding, delimiter, headers, columns, formats, options.max_row_chars)


def read_rows(
    path: Path, options: ImportOptions, need: tuple[str, ...] = (), progress: Progress | None = None
) -> Iterator[_Row | Problem]:
    """Parse the file: a ``_Row`` per non-blank good row, a ``Problem`` per bad one."""
    return open_csv(path, options, need).rows(progress)


def _limit(column: Column[Any]) -> int | None:
    """The most characters a text column holds (None: unbounded)."""
    return getattr(column.type, "length", None)


def _text(row: _Row, name: str, limit: int | None = None) -> str | None:
    value = row.values.pop(name, None)
    if value is None:
        return None
    text = str(value)
    if limit is not None and len(text) > limit:
        raise _Rejected(
            row.headers[name], f"longer than {limit} characters ({len(text)}); it cannot be stored"
        )
    return text


def _lead_args(row: _Row) -> dict[str, Any]:
    limits = {name: _limit(col) for name, col in LEAD_TEXT.items()}
    email = _text(row, "email")
    if email is not None and (why := email_refusal(email)) is not None:  # as a message's traits are
        raise _Rejected(row.headers["email"], why)
    if email is not None and not EMAIL.match(email):
        raise _Rejected(row.headers["email"], f"not an e-mail address: {email!r}")
    external_id = _text(row, "user_id", limits["user_id"])
    if email is None and external_id is None:
        raise _Rejected(None, "no e-mail and no id (a lead needs at least one)")
    try:  # the one rule of names (``ingest.person_names``), as a message's traits are read
        first, last = person_name(*(_text(row, name) for name in NAME_TRAITS))
    except NameRefused as refused:
        raise _Rejected(row.headers[refused.field], refused.reason) from None
    fields = {"first_name": first, "last_name": last, "company": _text(row, "company", limits["company"])}
    return {"email": email, "external_id": external_id, "fields": fields, "attributes": row.values}


def _snapshot(conn: Connection, table: Table, row_id: int | None) -> dict[str, Any] | None:
    if row_id is None:
        return None
    row = conn.execute(select(table).where(table.c.id == row_id)).mappings().first()
    return {k: v for k, v in row.items() if k not in ("updated_ms", "attribute_ts")} if row else None


def _outcome(before: dict[str, Any] | None, after: dict[str, Any] | None, created: bool) -> str:
    return "created" if created else "unchanged" if before == after else "updated"


Handler = Callable[[Connection, _Row, int, ImportReport], str]
# the rows of a chunk to leave out, by row number, with the reason
Screen = Callable[[Connection, list[_Row]], dict[int, Problem]]
SUPPRESSED_ROW = "skipped: its {} is of a person erased with --suppress (leadscore privacy unsuppress)"
# the reasons a row is skipped, by the column that named her: a user id first, else an address
SKIPPED = {"user_id": SUPPRESSED_ROW.format("user id"), "email": SUPPRESSED_ROW.format("e-mail address")}


def _suppressed_rows(conn: Connection, rows: list[_Row]) -> dict[int, Problem]:
    """The rows whose user id or e-mail address names a person erased with ``--suppress``: the same check
    as the tracking paths' (``suppressed_in``), once per chunk."""
    hits = suppressed_in(conn, rows, _row_ids)
    if hits is None:
        return {}
    skipped = {}
    for row, hit in zip(rows, hits, strict=True):
        if hit:
            column = "user_id" if any(name.startswith("u:") for name in hit) else "email"
            skipped[row.number] = Problem(SKIPPED[column], None, row.number, field=row.headers.get(column))
    return skipped


def _row_ids(row: _Row) -> Ids:
    user_id, email = row.values.get("user_id"), row.values.get("email")
    given = (normalise_email(str(email)),) if email is not None else ()
    return (str(user_id) if user_id is not None else None), None, None, given


def _apply_lead(conn: Connection, row: _Row, now: int, report: ImportReport) -> str:
    args = _lead_args(row)
    before = _snapshot(conn, leads, find_lead(conn, email=args["email"], external_id=args["external_id"]))
    lead_id, created = upsert_lead(conn, now_ms=now, **args)
    outcome = _outcome(before, _snapshot(conn, leads, lead_id), created)
    if outcome != "unchanged":
        report.changed_leads.add(lead_id)
    return outcome


def _apply_account(conn: Connection, row: _Row, now: int, report: ImportReport) -> str:
    domain_field = "domain" if "domain" in row.values else "website"
    source = row.values.get(domain_field)
    domain = normalise_domain(str(source)) if source is not None else None
    if domain is not None and not DOMAIN.match(domain):
        raise _Rejected(row.headers[domain_field], f"not a domain or website: {source!r}")
    row.values.pop("domain", None)
    name = _text(row, "company", _limit(accounts.c.name)) or _text(row, "name", _limit(accounts.c.name))
    if domain is None and name is None:
        raise _Rejected(None, "no domain, website or name (an account needs one)")
    if "user_id" in row.values:  # an account's own CRM id, not a lead's user id
        row.values["external_id"] = row.values.pop("user_id")
    found = select(accounts.c.id).where(accounts.c.domain == domain if domain else accounts.c.name == name)
    before = _snapshot(conn, accounts, conn.execute(found).scalar())
    unlinked = select(leads.c.id).where(leads.c.email_domain == domain, leads.c.account_id.is_(None))
    linking = set(conn.execute(unlinked).scalars()) if domain else set()
    account_id, created = upsert_account(conn, now_ms=now, domain=domain, name=name, attributes=row.values)
    outcome = _outcome(before, _snapshot(conn, accounts, account_id), created)
    report.leads_linked += len(linking)
    report.changed_leads |= linking
    if outcome != "unchanged":
        report.changed_leads |= set(
            conn.execute(select(leads.c.id).where(leads.c.account_id == account_id)).scalars()
        )
    return outcome


def _flush(
    store: Store, rows: list[_Row], handle: Handler, now: int, report: ImportReport, screen: Screen | None
) -> None:
    """Apply rows in one transaction; if the database refuses one, redo them one by one to find it. Rows
    ``screen`` names are skipped (``ImportReport.skipped``)."""
    try:
        scratch = ImportReport(report.file)
        with store.begin() as conn:
            skip = screen(conn, rows) if screen is not None else {}
            outcomes = [(row, skip.get(row.number) or _try(conn, row, handle, now, scratch)) for row in rows]
        _merge(report, scratch, outcomes)
    except SQLAlchemyError:
        for row in rows:
            scratch = ImportReport(report.file)
            try:
                with store.begin() as conn:
                    skipped = screen(conn, [row]).get(row.number) if screen is not None else None
                    outcome = skipped or _try(conn, row, handle, now, scratch)
            except SQLAlchemyError as exc:
                reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
                outcome = Problem(f"cannot be stored: {reason}", report.file, row.number)
            _merge(report, scratch, [(row, outcome)])


def _try(conn: Connection, row: _Row, handle: Handler, now: int, scratch: ImportReport) -> str | Problem:
    """``handle`` on a copy of ``row`` (a handler takes its values as it reads them): a chunk the database
    refused is tried again row by row (``_flush``), each row as read from the file."""
    try:
        return handle(conn, replace(row, values=dict(row.values)), now, scratch)
    except _Rejected as exc:
        return Problem(exc.reason, scratch.file, row.number, field=exc.header)


def _merge(report: ImportReport, scratch: ImportReport, outcomes: list[tuple[_Row, str | Problem]]) -> None:
    for _, outcome in outcomes:
        if isinstance(outcome, Problem) and outcome.message in SKIPPED.values():
            report.skipped.append(replace(outcome, file=report.file))
        elif isinstance(outcome, Problem):
            report.problems.append(outcome)
        else:
            setattr(report, outcome, getattr(report, outcome) + 1)
    report.changed_leads |= scratch.changed_leads
    report.leads_linked += scratch.leads_linked


def _import(store: Store, path: Path, options: ImportOptions, handle: Handler, need: tuple[str, ...],
            progress: Progress | None, screen: Screen | None = None) -> ImportReport:  # fmt: skip
    source = open_csv(path, options, need)
    report = ImportReport(str(path), source.encoding.name, source.notes)
    now = int(time.time() * 1000)
    pending: list[_Row] = []
    for item in source.rows(progress):
        if options.max_errors is not None and report.rejected >= options.max_errors:
            report.aborted = True  # the rows read so far stay imported
            break
        report.rows += 1
        if isinstance(item, Problem):
            report.problems.append(item)
        else:
            pending.append(item)
        if len(pending) >= options.chunk_size:
            _flush(store, pending, handle, now, report, screen)
            pending = []
    if pending:
        _flush(store, pending, handle, now, report, screen)
    report.problems.sort(key=lambda p: p.line or 0)
    report.skipped.sort(key=lambda p: p.line or 0)
    return report


def import_leads(
    store: Store, path: Path, options: ImportOptions | None = None, progress: Progress | None = None
) -> ImportReport:
    """Create or update a lead per row (matched by id, then e-mail); bad rows go to the report, and rows of
    a person erased with --suppress to its ``skipped``."""
    need = ("email", "user_id")
    return _import(store, path, options or ImportOptions(), _apply_lead, need, progress, _suppressed_rows)


def import_accounts(
    store: Store, path: Path, options: ImportOptions | None = None, progress: Progress | None = None
) -> ImportReport:
    """Create or update an account per row (matched by domain, else name); leads with its e-mail domain join it."""
    need = ("domain", "website", "company", "name")
    return _import(store, path, options or ImportOptions(), _apply_account, need, progress)
