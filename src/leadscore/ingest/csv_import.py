"""CSV exports (HubSpot, Salesforce, any spreadsheet) → leads and accounts, row by row.

Headers become attribute names through ``attributes.canonical`` unless ``--map`` says otherwise. A bad
row is reported with its number as a spreadsheet shows it (header = row 1) and skipped; good rows are
committed in chunks. Importing the same file twice changes nothing.
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Connection, Table, select
from sqlalchemy.exc import SQLAlchemyError

from leadscore.errors import InputError, Problem
from leadscore.ingest.attributes import CONSENT, canonical, coerce, consent_value, normalise_domain
from leadscore.store import Store
from leadscore.store.people import email_domain, find_lead, upsert_account, upsert_lead
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
    """``mapping``: header → attribute name (overrides the canonical one); ``ignore``: headers to skip."""

    mapping: Mapping[str, str] = field(default_factory=dict)
    ignore: frozenset[str] = frozenset()
    max_errors: int | None = None
    chunk_size: int = CHUNK


@dataclass
class ImportReport:
    """What an import did; ``changed_leads`` are the leads whose score may have moved."""

    file: str
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    problems: list[Problem] = field(default_factory=list)
    aborted: bool = False
    changed_leads: set[int] = field(default_factory=set)
    leads_linked: int = 0

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

    mapped = {find(h): canonical(target) for h, target in options.mapping.items()}
    ignored = {find(h) for h in options.ignore}
    return [None if h in ignored or not h.strip() else mapped.get(h, canonical(h)) for h in headers]


def read_rows(
    path: Path, options: ImportOptions, need: tuple[str, ...] = (), progress: Progress | None = None
) -> Iterator[_Row | Problem]:
    """Parse the file: a ``_Row`` per non-blank good row, a ``Problem`` per malformed one.

    ``need``: attribute names of which at least one must be a column (else the file is refused).
    """
    file, size = str(path), path.stat().st_size
    with path.open("rb") as raw, io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as text:
        try:
            header_line = text.readline()
            delimiter = sniff_delimiter(header_line)
            reader = csv.reader(chain([header_line], text), delimiter=delimiter)
            headers = next(reader, [])
            if not any(h.strip() for h in headers):
                raise InputError(Problem("the file has no header row", file, 1))
            columns = resolve_columns(headers, options, file)
            if need and not set(need) & set(columns):
                wanted = " or ".join(need)
                raise InputError(
                    Problem(f"no column for {wanted}; name one with --map 'Header={need[0]}'", file, 1)
                )
            number = 1
            while True:
                number += 1
                try:
                    cells = next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:
                    yield Problem(f"unreadable row: {exc}", file, number)
                    continue
                if progress is not None and number % 100 == 0:
                    progress(raw.tell(), size)
                if not any(c.strip() for c in cells):
                    continue
                if len(cells) != len(headers):
                    yield Problem(f"expected {len(headers)} columns, found {len(cells)}", file, number)
                    continue
                yield _to_row(number, headers, columns, cells, file)
        except UnicodeDecodeError as exc:
            raise InputError(
                Problem(f"not UTF-8 text (byte {exc.start} of a read block); save it as UTF-8", file)
            ) from None
    if progress is not None:
        progress(size, size)


def _to_row(
    number: int, headers: list[str], columns: list[str | None], cells: list[str], file: str
) -> _Row | Problem:
    row = _Row(number, {}, {})
    for header, name, cell in zip(headers, columns, cells, strict=True):
        if name is None or name in row.values:
            continue
        if "\x00" in cell:
            return Problem("contains a NUL character", file, number, field=header)
        value = (cell.strip() or None) if name in TEXT_FIELDS else coerce(cell)
        if name in CONSENT and value is not None:
            value = consent_value(cell)
            if value is None:
                return Problem(
                    f"{cell.strip()!r} is not a consent value (yes/no, true/false)",
                    file,
                    number,
                    field=header,
                )
        if value is not None:
            row.values[name], row.headers[name] = value, header
    return row


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
    email = _text(row, "email", limits["email"])
    if email is not None and not EMAIL.match(email):
        raise _Rejected(row.headers["email"], f"not an e-mail address: {email!r}")
    domain = email_domain(email)
    if domain is not None and len(domain) > (most := _limit(leads.c.email_domain) or len(domain)):
        raise _Rejected(
            row.headers["email"], f"its domain is longer than {most} characters; it cannot be stored"
        )
    external_id = _text(row, "user_id", limits["user_id"])
    if email is None and external_id is None:
        raise _Rejected(None, "no e-mail and no id (a lead needs at least one)")
    fields = {name: _text(row, name, limits[name]) for name in ("first_name", "last_name", "company")}
    full_name = _text(row, "name")
    if full_name and not fields["first_name"] and not fields["last_name"]:
        first, _, last = full_name.partition(" ")
        fields["first_name"], fields["last_name"] = first[: limits["first_name"]], last[: limits["last_name"]]
    return {"email": email, "external_id": external_id, "fields": fields, "attributes": row.values}


def _snapshot(conn: Connection, table: Table, row_id: int | None) -> dict[str, Any] | None:
    if row_id is None:
        return None
    row = conn.execute(select(table).where(table.c.id == row_id)).mappings().first()
    return {k: v for k, v in row.items() if k not in ("updated_ms", "attribute_ts")} if row else None


def _outcome(before: dict[str, Any] | None, after: dict[str, Any] | None, created: bool) -> str:
    return "created" if created else "unchanged" if before == after else "updated"


Handler = Callable[[Connection, _Row, int, ImportReport], str]


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


def _flush(store: Store, rows: list[_Row], handle: Handler, now: int, report: ImportReport) -> None:
    """Apply rows in one transaction; if the database refuses one, redo them one by one to find it."""
    try:
        scratch = ImportReport(report.file)
        with store.begin() as conn:
            outcomes = [(row, _try(conn, row, handle, now, scratch)) for row in rows]
        _merge(report, scratch, outcomes)
    except SQLAlchemyError:
        for row in rows:
            scratch = ImportReport(report.file)
            try:
                with store.begin() as conn:
                    outcome = _try(conn, row, handle, now, scratch)
            except SQLAlchemyError as exc:
                reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
                outcome = Problem(f"cannot be stored: {reason}", report.file, row.number)
            _merge(report, scratch, [(row, outcome)])


def _try(conn: Connection, row: _Row, handle: Handler, now: int, scratch: ImportReport) -> str | Problem:
    try:
        return handle(conn, row, now, scratch)
    except _Rejected as exc:
        return Problem(exc.reason, scratch.file, row.number, field=exc.header)


def _merge(report: ImportReport, scratch: ImportReport, outcomes: list[tuple[_Row, str | Problem]]) -> None:
    for _, outcome in outcomes:
        if isinstance(outcome, Problem):
            report.problems.append(outcome)
        else:
            setattr(report, outcome, getattr(report, outcome) + 1)
    report.changed_leads |= scratch.changed_leads
    report.leads_linked += scratch.leads_linked


def _import(store: Store, path: Path, options: ImportOptions, handle: Handler, need: tuple[str, ...],
            progress: Progress | None) -> ImportReport:  # fmt: skip
    report = ImportReport(str(path))
    now = int(time.time() * 1000)
    pending: list[_Row] = []
    for item in read_rows(path, options, need, progress):
        if options.max_errors is not None and report.rejected >= options.max_errors:
            report.aborted = True  # the rows read so far stay imported
            break
        report.rows += 1
        if isinstance(item, Problem):
            report.problems.append(item)
        else:
            pending.append(item)
        if len(pending) >= options.chunk_size:
            _flush(store, pending, handle, now, report)
            pending = []
    if pending:
        _flush(store, pending, handle, now, report)
    report.problems.sort(key=lambda p: p.line or 0)
    return report


def import_leads(
    store: Store, path: Path, options: ImportOptions | None = None, progress: Progress | None = None
) -> ImportReport:
    """Create or update a lead per row (matched by id, then e-mail); bad rows go to the report."""
    return _import(store, path, options or ImportOptions(), _apply_lead, ("email", "user_id"), progress)


def import_accounts(
    store: Store, path: Path, options: ImportOptions | None = None, progress: Progress | None = None
) -> ImportReport:
    """Create or update an account per row (matched by domain, else name); leads with its e-mail domain join it."""
    need = ("domain", "website", "company", "name")
    return _import(store, path, options or ImportOptions(), _apply_account, need, progress)
