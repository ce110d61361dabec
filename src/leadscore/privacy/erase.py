"""Erase a person: their rows in every table, found by exact keys (``privacy/tables.py``), in one
transaction; then, on SQLite, the database files rewritten so no deleted copy stays on disk.

Nothing is deleted because it *mentions* the person: another lead's page view of ``?plan=1001`` or an
event titled with her name are someone else's data. After the deletions the rules are run again and
must find nothing (the verification); then, once the transaction has committed (the scan is long and its
locks stop the processor), every text and JSON column is scanned for her identifiers as whole words
(``mentions``), which are reported for a person to review, never deleted. The audit log
keeps its entries about her with the personal parts redacted. An address that unsubscribed stays
suppressed (as a peppered hash), and one whose consent to mail was withdrawn is suppressed the same
way, so a later import or identify of the address is not mailed. A digest of several leads in the
outbox (``digest_leads``) is rendered again without her, or deleted when she was its only lead, whether
it is pending, sent or failed (``lifecycle.notify.forget_leads``). Her account's stored score and stage
(MQA), which counted her engagement, are computed again without her in the same transaction
(``lifecycle.accounts.refresh_active``). With ``suppress`` her identity keys and every e-mail address
she used are kept as peppered hashes (``store.suppressions.suppress_keys``), and every later message
naming one of the keys or giving one of the addresses is dropped unstored.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from itertools import groupby
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    JSON,
    Connection,
    Integer,
    String,
    Table,
    Text,
    case,
    cast,
    delete,
    func,
    select,
    update,
)

from leadscore.compile.dialects import LowerText
from leadscore.errors import StoreError
from leadscore.ingest.apply import Applied
from leadscore.lifecycle.accounts import refresh_active
from leadscore.lifecycle.notify import forget_leads
from leadscore.model.text_case import fold_case
from leadscore.privacy.person import Person, as_now
from leadscore.privacy.tables import REDACT, Ids, condition, present_tables, rules_for, unaccounted
from leadscore.scoring.pipeline import rescore_touched
from leadscore.store import Store
from leadscore.store.audit import audit
from leadscore.store.event_log import drop_from_inbox, hold_inbox, waiting_rows
from leadscore.store.id_lists import contains_any
from leadscore.store.people import account_colleagues, anonymous_key, user_key
from leadscore.store.schema import leads
from leadscore.store.suppressions import suppress, suppress_keys, unsuppress_keys

REDACTED = "[erased]"
WITHDRAWN = (("consent_email", False), ("unsubscribed", True))


@dataclass
class EraseReport:
    deleted: dict[str, int] = field(default_factory=dict)
    redacted: dict[str, int] = field(default_factory=dict)
    remaining: list[str] = field(default_factory=list)  # tables whose rules still find rows: must be empty
    mentions: dict[str, int] = field(default_factory=dict)  # "table.column" → other rows naming her
    suppressed: bool = False  # her address was added to the mail suppressions
    keys_suppressed: int = 0  # her identity keys newly suppressed (``--suppress``): her later events dropped
    # her e-mail addresses newly suppressed (``--suppress``): the lead's and every one her traits gave
    addresses_suppressed: int = 0
    rescored: int = 0  # her colleagues scored again without her events (account-scope rules)
    disk: str = ""  # what was done to the database files
    # her identifiers as the erasure found them (``as_now``): what the mention scan looks for, once the
    # erasure has committed (never stored or shown)
    identifiers: tuple[str, ...] = field(default=(), repr=False)

    @property
    def clean(self) -> bool:
        return not self.remaining


class NotErased(StoreError):
    """The verification found rows of the person after the deletions; nothing was erased."""

    def __init__(self, report: EraseReport) -> None:
        self.report = report
        super().__init__(f"rows of the person remain in {', '.join(report.remaining)}; nothing was erased")


def erase_person(
    conn: Connection, person: Person, pepper: str, now_ms: int, *, suppress_ids: bool = False
) -> EraseReport:
    """Delete the person's rows everywhere, in the caller's transaction, and verify by the same rules;
    with ``suppress_ids`` her identity keys are suppressed (their later messages dropped) as well. The
    rows of others that mention her are counted after the transaction (``mentions``, as ``erase`` does):
    the scan reads every text value of the store, once per identifier of hers, and the transaction holds
    SQLite's write lock and PostgreSQL's inbox rows, which the processor needs."""
    missing = unaccounted(conn)
    if missing:
        raise StoreError(f"no erasure rule for table(s) {', '.join(missing)}: add one in privacy/tables.py")
    hold_inbox(conn)  # PostgreSQL: a processor holding some of her waiting events has committed them
    person = as_now(conn, person)
    report = EraseReport()
    ids = Ids.of(conn, person)
    report.suppressed = _carry_suppression(conn, person, pepper, now_ms)
    if suppress_ids:
        keys = [user_key(u) for u in person.user_ids] + [anonymous_key(a) for a in person.anonymous_ids]
        report.keys_suppressed, report.addresses_suppressed = suppress_keys(
            conn, keys, ids.values["addresses"], person.email, pseudonym(person), now_ms, pepper
        )
    _count(report.deleted, "inbox", drop_from_inbox(conn, ids.owns))  # EVENT_ARRAYS: the inbox only
    # her account's stored score and stage count her engagement, and her colleagues' scores her events
    # (a model's account-scope rules): scored again without her below
    account = _account_of(conn, person)
    colleagues = [mate for _, mate in account_colleagues(conn, ids.values["lead_id"])]
    rendered, emptied = forget_leads(conn, ids.values["lead_id"])  # before the digest_leads rule runs
    _count(report.redacted, "outbox", rendered)
    _count(report.deleted, "outbox", emptied)
    for table in reversed(present_tables(conn)):  # children before parents
        rules = rules_for(table)
        if rules is not None:
            _count(
                report.deleted,
                table.name,
                conn.execute(delete(table).where(condition(table, rules, ids))).rowcount,
            )
    report.rescored = _rescore_colleagues(conn, colleagues, "erasure of a colleague", now_ms)
    if account is not None:
        refresh_active(conn, [account], now_ms)
    for name, rules in REDACT.items():
        table = next(t for t in present_tables(conn) if t.name == name)
        done = conn.execute(
            update(table)
            .where(condition(table, rules, ids))
            .values(target=REDACTED, details={"redacted": True})
        ).rowcount
        _count(report.redacted, name, done)
    report.remaining = remaining(conn, ids)
    report.identifiers = person.identifiers
    return report


def remaining(conn: Connection, ids: Ids) -> list[str]:
    """Tables where the rules still find the person's rows (after an erasure: none)."""
    left = []
    for table in present_tables(conn):
        rules = rules_for(table) or REDACT.get(table.name)
        if (
            rules
            and conn.execute(
                select(func.count()).select_from(table).where(condition(table, rules, ids))
            ).scalar()
        ):
            left.append(table.name)
    if any(ids.owns(row) for row in waiting_rows(conn)):
        left.append("inbox")
    return left


def _rescore_colleagues(conn: Connection, colleagues: list[int], cause: str, now_ms: int) -> int:
    """Her colleagues lose her events, of any age, from their account's, as when she leaves the account
    (``Applied.left``: a model with an account-scope rule scores them again, whole history included;
    to every other model they are no change). Returns the leads scored."""
    if not colleagues:
        return 0
    left = Applied(left_exact=True)
    for colleague in colleagues:
        left.leave(colleague, now_ms, cause)
    scored, _ = rescore_touched(conn, Store.sources(), left, as_of=now_ms)
    return scored


def _account_of(conn: Connection, person: Person) -> int | None:
    if person.lead_id is None:
        return None
    return conn.execute(select(leads.c.account_id).where(leads.c.id == person.lead_id)).scalar()


def _carry_suppression(conn: Connection, person: Person, pepper: str, now_ms: int) -> bool:
    """A lead who withdrew consent to mail is suppressed by hash before the lead is deleted."""
    if person.lead_id is None or not person.email:
        return False
    attributes = conn.execute(select(leads.c.attributes).where(leads.c.id == person.lead_id)).scalar() or {}
    if any(attributes.get(name) is value for name, value in WITHDRAWN):
        return suppress(conn, person.email, "erased after withdrawing consent", now_ms, pepper)
    return False


def _count(counts: dict[str, int], table: str, n: int) -> None:
    if n:
        counts[table] = counts.get(table, 0) + n


def _words(identifiers: list[str]) -> re.Pattern[str]:
    """Any of ``identifiers`` (folded by ``fold_case``, as the text they are looked for in) as a whole word:
    not inside a longer id, address or number (1001 in 11001, ann@ in joann@), though it may stand after
    ``=`` or ``/`` in a URL. One pattern for all of them, their shared beginnings written once
    (``_alternatives``): a person merged with hundreds has hundreds of identifiers, and an alternation of
    them all was tried one by one at every word of every value (600 identifiers: 2.3 s for 20,000 values
    against 0.06). No IGNORECASE: both sides are folded already, and it also took ``ſ`` for ``s``."""
    return re.compile(rf"(?<![\w.@+-]){_alternatives(identifiers)}(?![\w@+-]|\.\w)")


TRIE_DEPTH = 50  # groups nested at most in ``_alternatives`` (Python's parser recurses through each)


def _alternatives(words: list[str], depth: int = 0) -> str:
    """A pattern matching exactly the literal ``words`` (sorted, distinct; ``""`` among them makes the
    whole optional) as a trie: ``a(?:nn|b)`` for ann, ab. At each position the pattern takes one branch
    for each character read, so it costs the same for three words or three thousand. Past ``TRIE_DEPTH``
    levels (hundreds of ids, each a prefix of the next) the rest are listed one by one."""
    optional = bool(words) and words[0] == ""
    rest = words[1:] if optional else words
    if not rest:
        return ""
    if depth >= TRIE_DEPTH:
        branches = [re.escape(word) for word in rest]
    else:
        branches = []
        for _, grouped in groupby(rest, key=itemgetter(0)):
            group = list(grouped)
            # sorted: what the first and the last share, all share
            first, last = group[0], group[-1]
            shared = next(
                (i for i, (a, b) in enumerate(zip(first, last, strict=False)) if a != b),
                min(len(first), len(last)),
            )
            prefix = first[:shared]
            branches.append(re.escape(prefix) + _alternatives([w[len(prefix) :] for w in group], depth + 1))
    if len(branches) == 1 and not optional:
        return branches[0]
    return "(?:" + "|".join(branches) + (")?" if optional else ")")


def _text_columns(table: Table) -> list[Any]:
    return [c for c in table.columns if isinstance(c.type, String | Text | JSON)]


def _text_of(column: Any, sqlite: bool) -> Any:
    """A text or JSON column as text, a JSON one with its characters unescaped on SQLite
    (``store.engine.json_text``), as PostgreSQL writes one."""
    text = cast(column, Text)
    if sqlite and isinstance(column.type, JSON):
        # the function only where an escape is: most rows (orjson writes the characters) skip the call
        return case((func.instr(text, "\\u") > 0, func.leadscore_json_text(text)), else_=text)
    return text


MENTIONS_READ = 1000  # rows the mention scan holds at a time (PostgreSQL)
# PostgreSQL: up to this many identifiers, the rows containing one are found in SQL first (a pass over a
# value for each identifier: strpos; a regular expression of them all costs as much, its automaton built
# again for each value); past it every value is read and looked at here, in one pass whatever their number.
# 20,000 events (bench/erase_mentions.py), CPU of both processes: reading all 0.8 s at any number, SQL
# first 0.71 s for 4 identifiers, 0.85 for 6, 1.23 for 10, 2.6 for 24
MENTIONS_IN_SQL = 5
MENTIONS_FUNCTION = "leadscore_mentions"  # SQLite: the scan's test of one value, while it runs


def mentions(conn: Connection, identifiers: tuple[str, ...]) -> dict[str, int]:
    """How many rows of each text or JSON column name one of ``identifiers`` as a whole word (``_words``),
    the text and the identifiers folded alike by the one case folding every engine's comparisons use
    (SQLite's lower() folds ASCII only: "JÜRGEN" did not contain "jürgen"). Each value is looked at once
    by one pattern, whatever the number of identifiers: on SQLite in a function of the scan's connection,
    on PostgreSQL here, the rows read ``MENTIONS_READ`` at a time (a whole result is otherwise taken at
    once: a common name in millions of events held them all)."""
    found: dict[str, int] = {}
    folded = sorted({fold_case(i) for i in identifiers} - {""})
    if not folded:
        return found
    words = _words(folded)

    def named(value: Any) -> bool:
        return value is not None and words.search(fold_case(str(value))) is not None

    sqlite = conn.dialect.name == "sqlite"
    with _registered(conn, named) if sqlite else nullcontext():
        for table in present_tables(conn):
            for column in _text_columns(table):
                text = _text_of(column, sqlite)
                if sqlite:
                    hits = conn.execute(
                        select(func.count()).select_from(table).where(_named_in_sql(text) == 1)
                    ).scalar_one()
                else:
                    hits = sum(map(named, _candidates(conn, text, folded)))
                if hits:
                    found[f"{table.name}.{column.name}"] = hits
    return found


def _named_in_sql(text: Any) -> Any:
    return getattr(func, MENTIONS_FUNCTION)(text, type_=Integer)


@contextmanager
def _registered(conn: Connection, named: Callable[[Any], bool]) -> Iterator[None]:
    """SQLite: ``named`` as the scan's function on its connection, removed after it (it holds her
    identifiers, and the connection goes back to the pool)."""
    driver = _driver(conn)
    driver.create_function(MENTIONS_FUNCTION, 1, lambda value: int(named(value)), deterministic=True)
    try:
        yield
    finally:
        driver.create_function(MENTIONS_FUNCTION, 1, None)


def _candidates(conn: Connection, text: Any, folded: list[str]) -> Iterator[Any]:
    """PostgreSQL: the values of ``text`` that may name one of ``folded``, read a bounded part at a time.
    A text holds no NUL there, so no identifier with one is looked for."""
    parts = [part for part in folded if "\x00" not in part]
    if not parts:
        return iter(())
    where = (
        contains_any(LowerText.of_any_text(text), parts)
        if len(parts) <= MENTIONS_IN_SQL
        else text.is_not(None)
    )
    return conn.execute(select(text).where(where).execution_options(yield_per=MENTIONS_READ)).scalars()


def erase(
    store: Store, person: Person, pepper: str, now_ms: int, actor: str, *, suppress_ids: bool = False
) -> EraseReport:
    """Erase in one transaction (audited under a pseudonym), then leave no deleted copy on disk.

    SQLite: the transaction runs with ``secure_delete`` (freed space is zeroed), then ``VACUUM`` rewrites
    the file (space freed earlier, by the processor's inbox deletions say, may still hold copies) and a
    ``wal_checkpoint(TRUNCATE)`` empties the write-ahead log. PostgreSQL: see docs/privacy.md (VACUUM).
    Raises NotErased, with nothing changed, when the verification finds rows left.
    """
    sqlite = store.dialect == "sqlite"
    with store.begin() as conn:
        if sqlite:
            _driver(conn).execute("PRAGMA secure_delete=ON")
        try:
            report = erase_person(conn, person, pepper, now_ms, suppress_ids=suppress_ids)
            if not report.clean:
                raise NotErased(report)
            # the number of keys suppressed only: the audit log keeps nothing that names her
            suppressed = (
                {
                    "suppressed_keys": report.keys_suppressed,
                    "suppressed_addresses": report.addresses_suppressed,
                }
                if suppress_ids
                else {}
            )
            audit(
                conn, now_ms, actor, "privacy.erase", pseudonym(person), deleted=report.deleted, **suppressed
            )
        finally:
            if sqlite:
                _driver(conn).execute("PRAGMA secure_delete=OFF")
    with store.connect() as conn:  # committed: its locks given back before the long read
        report.mentions = mentions(conn, report.identifiers)
    report.disk = scrub_files(store)
    return report


def lift_suppression(store: Store, ref: str, pepper: str, now_ms: int, actor: str) -> int:
    """Lift an erasure's ``--suppress`` for the person ``ref`` names (a user or anonymous id, an e-mail):
    every key it suppressed. Audited like the erasure, under its pseudonym (no id of hers). Returns the
    keys lifted (0: nothing of hers was suppressed)."""
    with store.begin() as conn:
        persons, lifted = unsuppress_keys(conn, ref, pepper)
        for person in persons:
            audit(conn, now_ms, actor, "privacy.unsuppress", person, lifted=lifted)
    return lifted


def scrub_files(store: Store) -> str:
    """SQLite: rewrite the database and empty its write-ahead log; says what was done."""
    if store.dialect != "sqlite":
        return "PostgreSQL: deleted rows stay in table pages until VACUUM reuses them (docs/privacy.md)"
    with store.engine.connect() as conn:
        db = _driver(conn)
        db.execute("VACUUM")
        busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    if busy:
        return "database rewritten (VACUUM); the write-ahead log is still in use by a reader: run again later"
    return "database rewritten (VACUUM) and its write-ahead log emptied"


def _driver(conn: Connection) -> Any:
    return conn.connection.driver_connection


def pseudonym(person: Person) -> str:
    """How the audit log names an erased person: a hash of the lead id or keys, not the person."""
    basis = f"lead:{person.lead_id}" if person.lead_id is not None else "keys:" + ",".join(person.keys)
    return "person:" + hashlib.sha256(basis.encode()).hexdigest()[:12]
