"""Apply normalised messages to the store: identities, traits, accounts, and the event log."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Connection

from leadscore.ingest.ip import IpMode, protect_context
from leadscore.ingest.segment import Message
from leadscore.ingest.set_once import Identifies, said, unsettled
from leadscore.ingest.traits import (
    addresses,
    group_account,
    removed_names,
    restamped_since,
    split_traits,
)
from leadscore.store.event_log import append_events, identifies_of_keys, known_message_ids
from leadscore.store.lead_merge import merge_leads
from leadscore.store.lifecycle_tables import evaluate_again
from leadscore.store.people import (
    PeopleCache,
    account_domain,
    anonymous_key,
    colleagues_left,
    create_bare_leads,
    email_domain,
    lead_for_key,
    leads_for_keys,
    link_identities,
    link_identity,
    normalise_email,
    set_lead_account,
    upsert_account,
    upsert_lead,
    user_key,
)
from leadscore.store.suppressions import address_key, any_keys_suppressed, suppress_more, suppressed_names

EVER = -(2**62)  # a time before any event
_EVENTS = frozenset({"track", "page", "screen"})  # messages that say nothing about a person but its ids


@dataclass
class Applied:
    """What a batch changed: new message ids, and per lead the newest time its score may have moved."""

    inserted: set[str] = field(default_factory=set)
    duplicates: int = 0
    suppressed: int = 0  # messages dropped, unstored, for naming a suppressed person (``unsuppressed``)
    touched: dict[int, int] = field(default_factory=dict)  # lead id -> effective time (ms)
    causes: dict[int, list[str]] = field(default_factory=dict)  # lead id -> message ids
    created_leads: set[int] = field(default_factory=set)
    # lead id -> the earliest time whose score history the batch may change (EVER: all of it)
    since: dict[int, int] = field(default_factory=dict)
    # the colleagues a lead left (``_leave_account``): colleague -> (newest time, message ids). Only a
    # model whose rules read the account's events (``scope: account``) rescores them, whole history
    # included (``pipeline._with_colleagues``); to every other model they are no change at all
    left: dict[int, tuple[int, list[str]]] = field(default_factory=dict)
    # every colleague left is rescored with the batch, however many (an erasure: her events leave their
    # scores in its transaction); else those of a crowd are the clock's (``pipeline.COLLEAGUES_NOW``)
    left_exact: bool = False

    def touch(self, lead_id: int, at_ms: int, message_id: str) -> None:
        # once a message (a batch's): comparisons, not max/min of defaults built each call
        latest = self.touched.get(lead_id)
        if latest is None or at_ms > latest:
            self.touched[lead_id] = at_ms
        first = self.since.get(lead_id)
        if first is None or at_ms < first:
            self.since[lead_id] = at_ms
        causes = self.causes.get(lead_id)
        if causes is None:
            self.causes[lead_id] = [message_id]
        else:
            causes.append(message_id)

    def merged(self, gone: int, keep: int) -> None:
        """Lead ``gone`` was merged into ``keep``: what the batch did to it, it did to ``keep``."""
        at = self.touched.pop(gone, None)
        if at is not None:
            self.touched[keep] = max(at, self.touched.get(keep, at))
            self.since[keep] = min(self.since.pop(gone, at), self.since.get(keep, at))
            self.causes.setdefault(keep, []).extend(self.causes.pop(gone, []))
        left = self.left.pop(gone, None)
        if left is not None:
            self.leave(keep, left[0], *left[1])
        self.created_leads.discard(gone)

    def leave(self, colleague: int, at_ms: int, *message_ids: str) -> None:
        """A lead left ``colleague``'s account at ``at_ms`` (messages ``message_ids``)."""
        before = self.left.get(colleague)
        if before is None:
            self.left[colleague] = (at_ms, list(message_ids))
        else:
            self.left[colleague] = (max(at_ms, before[0]), [*before[1], *message_ids])

    def reopen(self, lead_id: int, at_ms: int) -> None:
        """The lead's history may change from ``at_ms`` on (``traits.restamped_since``)."""
        first = self.since.get(lead_id)
        if first is None or at_ms < first:
            self.since[lead_id] = at_ms

    def rewind(self, lead_id: int) -> None:
        """The lead gained events of any age (a person key was linked to it): all its history may change."""
        self.since[lead_id] = EVER


def apply_messages(
    conn: Connection, messages: Sequence[Message], source: str, *, defer_links: bool | None = None
) -> Applied:
    """Apply messages in event-time order within one transaction.

    A message whose id is already stored (or repeated within the batch) changes nothing: not the event
    log, and not the traits or identities it carries. ``defer_links``: see ``apply_identities``.
    """
    out = Applied()
    messages, out.suppressed = unsuppressed(conn, messages, _message_ids)
    seen = known_message_ids(conn, [m.message_id for m in messages])
    fresh: list[Message] = []
    for m in messages:
        if m.message_id in seen:
            out.duplicates += 1
        else:
            seen.add(m.message_id)
            fresh.append(m)
    apply_identities(conn, fresh, out, defer_links=defer_links)
    rows = [event_row(m, source) for m in sorted(fresh, key=_event_time)]
    # ``fresh`` holds each id once, none of them in the log: on SQLite (one writer) not searched again
    out.inserted = append_events(conn, rows, unknown=True)
    out.duplicates += len(rows) - len(out.inserted)
    return out


Item = TypeVar("Item")
# user id, anonymous id, previous id (an alias), and the e-mail addresses it gives (``traits.addresses``)
Ids = tuple[str | None, str | None, str | None, tuple[str, ...]]


def unsuppressed(
    conn: Connection,
    items: Sequence[Item],
    ids: Callable[[Item], Ids],
    pepper: str | None = None,
    *,
    suppressing: bool | None = None,
) -> tuple[list[Item], int]:
    """``items`` (messages, or event-log rows) without those naming a person erased with ``--suppress``,
    and how many were dropped: the one check of every path that stores tracking data (``apply_messages``,
    the processor's ``log_rows``). See ``suppressed_in``."""
    hits = suppressed_in(conn, items, ids, pepper, suppressing=suppressing)
    if hits is None:
        return list(items), 0
    kept = [item for item, hit in zip(items, hits, strict=True) if not hit]
    return kept, len(items) - len(kept)


def suppressed_in(
    conn: Connection,
    items: Sequence[Item],
    ids: Callable[[Item], Ids],
    pepper: str | None = None,
    *,
    suppressing: bool | None = None,
) -> list[set[str]] | None:
    """Per item, its names that are suppressed (``u:<userId>``, ``a:<anonymousId>``, ``e:<address>``);
    None when no item names anyone suppressed. ``ids(item)`` gives its user id, anonymous id, alias's
    previous id and the addresses it gives. An item naming one is the suppressed person's: storing it
    would store her id (a colleague's event carrying her anonymous id too) or make her again under a new
    id (an identify, an event's traits or a PostHog ``$set`` giving her address). With the table empty
    this is one index probe per batch; otherwise one query for the batch's names. ``suppressing``: whether
    anyone is suppressed, when the caller knows it already (the PostgreSQL processor's claim answers it:
    no probe then). ``pepper`` defaults to ``Settings().suppression_pepper``, as the erasure (``leadscore
    privacy erase``) read it from the environment."""
    if suppressing is None:
        suppressing = bool(items) and any_keys_suppressed(conn)
    if not items or not suppressing:
        return None
    if pepper is None:
        from leadscore.settings import Settings  # only when someone is suppressed

        pepper = Settings().suppression_pepper
    names_of = [_names(ids(item)) for item in items]
    blocked = suppressed_names(conn, {n for names in names_of for n in names}, pepper)
    if not blocked:
        return None
    # an item giving her address is hers: its ids are hers too, suppressed from now on with the erasure's
    # others, so their messages without the address (before or after it in the batch, or later) go too.
    # Only an address spreads: an id dropped for naming one of hers beside his own (a shared browser)
    # leaves his own id alone
    learned = {
        name: person
        for names in names_of
        if (person := next((blocked[n] for n in names if n.startswith("e:") and n in blocked), None))
        for name in names
        if not name.startswith("e:") and name not in blocked
    }
    if learned:
        suppress_more(conn, learned, int(time.time() * 1000), pepper)
    # an item's hits are what was suppressed before the batch, else the ids the batch showed to be hers
    return [(blocked.keys() & set(names)) or (learned.keys() & set(names)) for names in names_of]


def _names(ids: Ids) -> tuple[str, ...]:
    user_id, anonymous_id, previous_id, given = ids
    names = []
    if user_id:
        names.append(user_key(user_id))
    if anonymous_id:
        names.append(anonymous_key(anonymous_id))
    if previous_id:  # an alias: the previous id is either kind of key
        names += [user_key(previous_id), anonymous_key(previous_id)]
    names += [address_key(address) for address in given]
    return tuple(names)


def _message_ids(m: Message) -> Ids:
    return m.user_id, m.anonymous_id, m.previous_id, addresses(m.traits, m.context)


def row_ids(row: Mapping[str, Any]) -> Ids:
    """``Ids`` of an event-log row (the inbox's, the processor's)."""
    context = row.get("context") or {}
    given = addresses(context.get("traits"), context) if isinstance(context, dict) else ()
    return row.get("user_id"), row.get("anonymous_id"), row.get("previous_id"), given


def _event_time(m: Message) -> int:
    return m.ts


def _event_order(m: Message) -> tuple[int, str]:
    return m.ts, m.message_id


class LinkRaced(Exception):
    """Another transaction linked a person key this batch linked in memory: apply it again, linking as it
    goes (``defer_links=False``)."""


class KeyLookup:
    """Person key → lead for one batch of messages: read in one query up front, then kept current as the
    batch links keys, so a message about a known person costs no query at all.

    With ``defer`` the batch's links are written together by ``flush``, one statement for the batch
    instead of one per key: nothing in a batch reads them but this lookup (``upsert_lead`` finds a lead by
    its ``u:`` key through the batch's ``PeopleCache``, which asks the lookup), and the lookup knows every
    key of the batch's messages."""

    def __init__(self, conn: Connection, messages: Sequence[Message], *, defer: bool = False) -> None:
        self.conn, self.defer = conn, defer
        keys = [key for m in messages for key in _keys(m)]
        # an alias links its previous id's keys: known up front too, not searched one by one
        keys += [k for m in messages if m.previous_id for k in (user_key(m.previous_id), anonymous_key(m.previous_id))]  # fmt: skip
        self.known: dict[str, int | None] = dict.fromkeys(keys)
        self.known.update(leads_for_keys(conn, keys))
        self.pending: list[dict[str, Any]] = []

    def get(self, key: str) -> int | None:
        if key not in self.known:
            self.known[key] = lead_for_key(self.conn, key)
        return self.known[key]

    def link(self, key: str, lead_id: int, now_ms: int) -> bool:
        """Link a key to a lead unless it has one (first link wins); True when this call linked it."""
        if self.get(key) is not None:
            return False
        if self.defer:
            self.known[key] = lead_id
            self.pending.append({"key": key, "lead_id": lead_id, "created_ms": now_ms})
            return True
        linked = link_identity(self.conn, key, lead_id, now_ms)
        self.known[key] = lead_id if linked else lead_for_key(self.conn, key)
        return linked

    def flush(self) -> None:
        """Write the deferred links; raises ``LinkRaced`` if another transaction linked one of the keys
        first (never on SQLite, whose writer is alone)."""
        if self.pending and link_identities(self.conn, self.pending) != len(self.pending):
            raise LinkRaced(f"{len(self.pending)} person keys, some linked meanwhile by another writer")
        self.pending = []


def _create_bare_leads(
    conn: Connection, ordered: Sequence[Message], lookup: KeyLookup, out: Applied, strangers: set[str]
) -> None:
    """Create, in one go, the leads that applying ``ordered`` one by one would create bare: users not yet
    known whose first message here is an event without an e-mail in its traits (not identify or alias,
    which create leads with traits, or link keys, and stay on the per-message path). The users an alias in
    the batch names stay there too: the alias may link the previous id's key first, or give the user id the
    previous id's lead (``_identify``). ``strangers`` make no lead (``_strangers``)."""
    first_seen: dict[str, int] = {}
    decided: set[str] = {u for m in ordered if m.type == "alias" for u in (m.previous_id, m.user_id) if u}
    for m in ordered:
        if not m.user_id or m.user_id in decided:
            continue
        decided.add(m.user_id)
        if (
            m.type in ("identify", "alias")
            or m.user_id in strangers
            or (m.traits and split_traits(m.traits)[0])
        ):
            continue
        if lookup.get(user_key(m.user_id)) is None:
            first_seen[m.user_id] = m.received_ms
    if not first_seen:
        return
    found, created = create_bare_leads(conn, first_seen)
    for user_id, lead_id in found.items():
        lookup.known[user_key(user_id)] = lead_id
    out.created_leads |= created


def _keys(m: Message) -> list[str]:
    keys = []
    if m.user_id:
        keys.append(user_key(m.user_id))
    if m.anonymous_id:
        keys.append(anonymous_key(m.anonymous_id))
    return keys


def apply_identities(
    conn: Connection, messages: Sequence[Message], out: Applied, *, defer_links: bool | None = None
) -> Applied:
    """Apply what messages say about people (identities, traits, accounts) in event-time order, and
    record in ``out`` which leads each message touches.

    ``defer_links`` (default: on SQLite, where the transaction is the only writer) writes the batch's new
    person-key links in one statement at the end; where another writer may link the same key meanwhile
    (PostgreSQL) the caller that asks for it must catch ``LinkRaced`` and apply the batch again without.
    """
    defer = conn.dialect.name == "sqlite" if defer_links is None else defer_links
    lookup = KeyLookup(conn, messages, defer=defer)
    ordered = sorted(messages, key=_event_order)
    strangers = _strangers(ordered)
    _create_bare_leads(conn, ordered, lookup, out, strangers)
    people = _people_cache(conn, ordered, lookup)
    unlinked = Unlinked(conn, ordered, lookup)
    for m in ordered:
        if m.type == "identify":  # read by the set-once fold (``ingest.set_once``) of a later message
            unlinked.told.add(m.person_key, m.ts, m.message_id, m.traits, m.context)
        lead_id = _identify(conn, m, out, lookup, people, strangers, unlinked)
        if lead_id is not None:
            if m.group_id and m.type in _EVENTS:
                _join_group(conn, m, lead_id, people)
            out.touch(lead_id, m.ts, m.message_id)
    people.flush(conn)
    lookup.flush()
    return out


def _people_cache(conn: Connection, ordered: Sequence[Message], lookup: KeyLookup) -> PeopleCache:
    """The rows of the leads and accounts the batch's identify, alias and group messages (and messages
    with an e-mail in their traits) may read, in a few statements for the batch instead of two to four
    searches per message (others are read when asked for)."""
    external_ids: set[str] = set()
    emails: set[str] = set()
    domains: set[str] = set()  # of the groups' accounts
    lead_ids: set[int] = set()
    groups: set[str] = set()
    for m in ordered:
        if m.group_id:  # a group message's account, an event's group (``_join_group``)
            groups.add(m.group_id)
            lead_ids.update(lid for key in _keys(m) if (lid := lookup.known.get(key)) is not None)
        if m.type not in ("identify", "alias", "group") and not m.traits:
            continue
        lead_ids.update(lid for key in _keys(m) if (lid := lookup.known.get(key)) is not None)
        if m.user_id:
            external_ids.add(m.user_id)
            if "@" in m.user_id:
                emails.add(normalise_email(m.user_id))
        emails.update(addresses(m.traits, m.context))
        if m.type == "group" and (domain := account_domain(group_account(m.traits, m.group_id)[0])):
            domains.add(domain)
    return PeopleCache(
        conn,
        lookup.get,
        lead_ids=lead_ids,
        external_ids=external_ids,
        emails=emails,
        domains={d for d in map(email_domain, emails) if d},
        linking=domains,
        groups=groups,
    )


def message_from_row(row: Mapping[str, Any]) -> Message:
    """The normalised message an event-log row was written from."""
    context = dict(row["context"] or {})
    traits = context.pop("traits", None) or {}
    return Message(
        message_id=row["message_id"],
        type=row["type"],
        ts=row["ts"],
        received_ms=row["received_ms"],
        user_id=row["user_id"],
        anonymous_id=row["anonymous_id"],
        name=row["name"],
        path=row["path"],
        url=row["url"],
        properties=row["properties"] or {},
        traits=traits,
        context=context,
        group_id=row["group_id"],
        previous_id=row["previous_id"],
    )


def known_only(m: Message) -> bool:
    """A group message that links only a person already known (``context.known_only``, leadscore's own
    key: PostHog's ``$groupidentify``): its user id makes no lead, and from no one known it sets only the
    account's traits. posthog-python's ``group_identify`` without a ``distinct_id`` sends a new random id
    each call, posthog-node ``$<type>_<key>``: neither is a person of the account."""
    return m.type == "group" and bool(m.context and m.context.get("known_only") is True)


def _strangers(ordered: Sequence[Message]) -> set[str]:
    """The user ids of a batch's ``known_only`` group messages that no other message of the batch is from:
    they make no lead. A user whose identify or event is in the batch is a person, whichever message comes
    first in event time (posthog-js sends identify and group in the same ms)."""
    grouped = {m.user_id for m in ordered if m.user_id and known_only(m)}
    return grouped - {m.user_id for m in ordered if not known_only(m)} if grouped else set()


# an identify's (time, message id, traits, set-once traits, names removed)
Observed = tuple[int, str, dict[str, Any], dict[str, Any] | None, tuple[str, ...]]


class Unlinked:
    """What anonymous people said about themselves (their identifies' traits: PostHog's ``$set`` and
    ``$set_once`` before ``identify``, Segment's ``identify`` with an anonymous id alone) while their
    anonymous id was linked to no lead: applied to the lead it is linked to when it is, in event-time
    order, as PostHog merges the anonymous person into the identified one.

    Read from the event log up front for the anonymous ids the batch is about to link (an id paired with
    a user id, an alias's previous id, not yet linked: a key is linked once in its life, so each
    anonymous person's identifies are read once, by person key), and kept as the batch's own anonymous
    identifies come (``wait``)."""

    def __init__(self, conn: Connection, ordered: Sequence[Message], lookup: KeyLookup) -> None:
        keys: set[str] = set()
        for m in ordered:
            # a stranger's group message links nothing (``_strangers``): its id is not read
            if m.anonymous_id and m.user_id and not known_only(m):
                keys.add(anonymous_key(m.anonymous_id))
            if m.type == "alias" and m.previous_id:
                keys.add(anonymous_key(m.previous_id))
        self.waiting: dict[str, list[Observed]] = {}
        # every identify of the batch, linked or not (the set-once fold reads them beside the log)
        self.told = Identifies()
        for row in identifies_of_keys(conn, sorted(k for k in keys if lookup.known.get(k) is None)):
            self._keep(row.person_key, int(row.ts), row.message_id, row.context or {})

    def _keep(self, key: str, ts: int, message_id: str, context: dict[str, Any]) -> None:
        traits, once = context.get("traits"), context.get("traits_once")
        traits = traits if isinstance(traits, dict) else {}
        once = once if isinstance(once, dict) and once else None
        gone = removed_names(context)
        if traits or once or gone:
            self.waiting.setdefault(key, []).append((ts, message_id, traits, once, gone))

    def wait(self, m: Message) -> None:
        """An identify of an anonymous id linked to no lead: its traits wait for the link."""
        assert m.anonymous_id
        self._keep(anonymous_key(m.anonymous_id), m.ts, m.message_id, {**m.context, "traits": m.traits})

    def take(self, anonymous_id: str) -> list[Observed]:
        """The traits waiting for ``anonymous_id`` (now being linked), oldest first; forgotten here."""
        return sorted(self.waiting.pop(anonymous_key(anonymous_id), []), key=lambda o: (o[0], o[1]))


def _observe(
    conn: Connection,
    seen: Observed,
    out: Applied,
    people: PeopleCache,
    now_ms: int,
    lead_id: int,
    lookup: KeyLookup,
    told: Identifies,
) -> None:
    """Apply an identify's traits observed at its time (``upsert_lead``'s rules: the newest observation
    wins, set-once fills a gap; ``ingest.set_once`` where it arrived out of order) to lead ``lead_id``;
    the lead's history reopens from where its attributes as known change."""
    ts, _, traits, once, gone = seen
    email, fields, attributes = split_traits(traits) if traits else (None, {}, {})
    stamps = dict(people.row(conn, lead_id)["attribute_ts"] or {})
    upsert_lead(
        conn,
        now_ms=now_ms,
        email=email,
        fields=fields,
        attributes=attributes,
        at_ms=ts,
        link_user_key=False,
        once=split_traits(once) if once else None,
        cache=people,
        lead_id=lead_id,
        unset=gone,
    )
    _settle(conn, seen, lead_id, stamps, people, lookup, told, now_ms)
    row = people.row(conn, lead_id)
    reopened = restamped_since(stamps, row["attribute_ts"] or {}, row["attributes"] or {})
    if reopened is not None:
        out.reopen(lead_id, reopened)


def _settle(
    conn: Connection,
    seen: Observed,
    lead_id: int,
    stamps: dict[str, Any],
    people: PeopleCache,
    lookup: KeyLookup,
    told: Identifies,
    now_ms: int,
    key: str | None = None,
) -> None:
    """After an identify ``seen`` applied to lead ``lead_id`` whose stamps were ``stamps``: the properties
    whose set-once outcome it may change folded again in event-time order (``ingest.set_once``); ``key``:
    the identify's own person key, where not yet linked."""
    ts, message_id, traits, once, gone = seen
    # nearly every identify removes nothing and is no older than what the lead has: nothing to read
    if not gone and not any(stamp is not None and int(stamp) > ts for stamp in stamps.values()):
        return
    names = unsettled(said(ts, message_id, traits, once, gone), stamps)
    if names:
        keys = [k for k, lid in lookup.known.items() if lid == lead_id]
        told.settle(conn, people, lead_id, [*keys, key] if key else keys, names, now_ms)


def _link_anonymous(
    conn: Connection,
    m: Message,
    lead_id: int,
    out: Applied,
    lookup: KeyLookup,
    people: PeopleCache,
    unlinked: Unlinked,
    anonymous_id: str,
) -> bool:
    """Link ``a:<anonymous_id>`` to the lead (first link wins) and, when this linked it, give the lead
    what the anonymous person said about itself (``Unlinked``); True when linked."""
    if not lookup.link(anonymous_key(anonymous_id), lead_id, m.received_ms):
        return False
    for seen in unlinked.take(anonymous_id):
        _observe(conn, seen, out, people, m.received_ms, lead_id, lookup, unlinked.told)
    return True


def once_traits(m: Message) -> tuple[str | None, dict[str, Any], dict[str, Any]] | None:
    """An identify's set-once traits (``context.traits_once``, what PostHog's ``$set_once`` maps to):
    (e-mail, lead fields, attributes), each set only where the lead has no value yet."""
    once = m.context.get("traits_once") if m.context else None
    return split_traits(once) if isinstance(once, dict) and once else None


def _identify(
    conn: Connection,
    m: Message,
    out: Applied,
    lookup: KeyLookup,
    people: PeopleCache,
    strangers: set[str],
    unlinked: Unlinked,
) -> int | None:
    if not m.traits and m.type in _EVENTS:  # most messages: an event of a known person, or anonymous
        if not m.user_id:
            return lookup.get(anonymous_key(m.anonymous_id)) if m.anonymous_id else None
        known = lookup.get(user_key(m.user_id))
        if known is not None:  # the rest of the general path, for a person already known
            if m.anonymous_id and _link_anonymous(
                conn, m, known, out, lookup, people, unlinked, m.anonymous_id
            ):
                out.touch(known, m.ts, m.message_id)
                out.rewind(known)
            return known
    lead_id: int | None = None
    # a group message's name is its account's, never its sender's (``split_traits``)
    email, fields, attributes = (
        split_traits(m.traits, names=m.type != "group") if m.traits else (None, {}, {})
    )
    if m.type == "alias":
        assert m.user_id and m.previous_id
        # the lead of the previous id as a user id: that person and this user are one. An anonymous id
        # already linked to another user's lead (a shared device) stays that lead's: first link wins,
        # two users are not merged through a device they shared
        previous = lookup.get(user_key(m.previous_id))
        found = people.find_row(conn, email=None, external_id=m.user_id)
        if found is None and previous is not None:  # the previous id's lead is this user's: no new lead
            lead_id, created = previous, False
        else:
            lead_id, created = upsert_lead(
                conn, now_ms=m.received_ms, external_id=m.user_id, link_user_key=False, cache=people
            )
        lookup.link(user_key(m.user_id), lead_id, m.received_ms)
        if previous is not None and previous != lead_id:
            # both ids have a lead: the alias says they are one person, the previous id's (the user id
            # joins the person known before; the same lead whichever batch each message came in)
            unlinked.told.merged(conn, previous, lead_id)
            lead_id = _merge(conn, previous, lead_id, m, out, lookup, people)
            # one person now: a set-once of either folded over both people's identifies (the merge took
            # the latest stamp, a set-once's included)
            keys = [k for k, lid in lookup.known.items() if lid == lead_id]
            unlinked.told.settle(conn, people, lead_id, keys, None, m.received_ms)
        if lookup.link(user_key(m.previous_id), lead_id, m.received_ms):
            out.rewind(lead_id)
        if _link_anonymous(conn, m, lead_id, out, lookup, people, unlinked, m.previous_id):
            out.rewind(lead_id)
    elif m.user_id:
        if m.type == "identify" or email:
            # the stamps before, to know from when the history as known may change (a row of the cache)
            found = people.find_row(
                conn, email=normalise_email(email) if email else None, external_id=m.user_id
            )
            stamps = dict(found["attribute_ts"] or {}) if found is not None else None
            made = False
            if m.anonymous_id and m.type == "identify" and lookup.get(anonymous_key(m.anonymous_id)) is None:
                # the identify links its anonymous id: what that person said before comes first (a set-once
                # value of it was set before this identify's), on the lead the identify finds or makes (an
                # e-mail among them names no other lead: the identify's own search decides)
                waiting = unlinked.take(m.anonymous_id)
                if waiting:
                    target, made = upsert_lead(conn, now_ms=m.received_ms, email=email, external_id=m.user_id,
                                               link_user_key=False, cache=people)  # fmt: skip
                    for seen in waiting:
                        _observe(conn, seen, out, people, m.received_ms, target, lookup, unlinked.told)
            lead_id, created = upsert_lead(
                conn,
                now_ms=m.received_ms,
                email=email,
                external_id=m.user_id,
                fields=fields,
                attributes=attributes if m.type == "identify" else {},
                at_ms=m.ts,
                link_user_key=False,
                once=once_traits(m) if m.type == "identify" else None,
                cache=people,
                unset=removed_names(m.context) if m.type == "identify" else (),
            )
            created |= made
            if m.type == "identify":
                seen = (m.ts, m.message_id, m.traits, m.context.get("traits_once"), removed_names(m.context))
                told = unlinked.told
                _settle(conn, seen, lead_id, stamps or {}, people, lookup, told, m.received_ms, m.person_key)
            row = people.row(conn, lead_id)
            reopened = restamped_since(stamps, row["attribute_ts"] or {}, row["attributes"] or {})
            if reopened is not None:
                out.reopen(lead_id, reopened)
            lookup.link(user_key(m.user_id), lead_id, m.received_ms)
        else:
            lead_id = lookup.get(user_key(m.user_id))
            created = False
            if lead_id is None and m.user_id not in strangers:
                lead_id, created = upsert_lead(
                    conn,
                    now_ms=m.received_ms,
                    external_id=m.user_id,
                    email=m.user_id if "@" in m.user_id else None,
                    link_user_key=False,
                    cache=people,
                )
                lookup.link(user_key(m.user_id), lead_id, m.received_ms)
        if lead_id is not None:  # else a stranger's group message (``_strangers``): no lead, no key linked
            if created:
                out.created_leads.add(lead_id)
            if m.anonymous_id and _link_anonymous(
                conn, m, lead_id, out, lookup, people, unlinked, m.anonymous_id
            ):
                # earlier anonymous history (and what the anonymous person said) now belongs to this lead
                out.touch(lead_id, m.ts, m.message_id)
                out.rewind(lead_id)
    elif m.anonymous_id:
        lead_id = lookup.get(anonymous_key(m.anonymous_id))
        if m.type == "identify" and (m.traits or once_traits(m) or removed_names(m.context)):
            # an anonymous person's traits: its lead's now, else when its id is linked to one
            if lead_id is None:
                unlinked.wait(m)
            else:
                seen = (m.ts, m.message_id, m.traits, m.context.get("traits_once"), removed_names(m.context))
                _observe(conn, seen, out, people, m.received_ms, lead_id, lookup, unlinked.told)
    if m.type == "group" and (lead_id is not None or known_only(m)):
        domain, name, attrs = group_account(m.traits, m.group_id)
        account_id, _ = upsert_account(
            conn, now_ms=m.received_ms, domain=domain, name=name, attributes=attrs, cache=people,
            group_key=m.group_id, unnamed=m.group_id,
        )  # fmt: skip
        if lead_id is None:  # the account's traits, from no one known: no one joins it
            return None
        if people.row(conn, lead_id)["account_id"] not in (None, account_id):
            people.flush(conn)  # the batch's held moves first: the database names the account's leads
            _leave_account(conn, lead_id, account_id, m, out)
        set_lead_account(conn, lead_id, account_id, m.received_ms, people)
    return lead_id


def _join_group(conn: Connection, m: Message, lead_id: int, people: PeopleCache) -> None:
    """An event naming its group (PostHog's ``$groups``) puts a lead that has no account yet into the
    account with that group key, if there is one (found by ``ix_accounts_group_key``): a contact of the
    company whose ``$groupidentify`` may have come from a colleague. It moves no lead that has an account:
    that is a group message's to say (an event of a person in two companies would move her, and
    rescore both committees, at every event)."""
    assert m.group_id
    if people.row(conn, lead_id)["account_id"] is not None:
        return
    account_id = people.account_for_group(conn, m.group_id)
    if account_id is not None:
        set_lead_account(conn, lead_id, account_id, m.received_ms, people)


def _leave_account(
    conn: Connection, lead_id: int, account_after: int | None, m: Message, out: Applied
) -> None:
    """Lead ``lead_id`` moves to ``account_after`` (``colleagues_left``: a group call or a merge): the
    colleagues it leaves lose its events, of any age, from their account's (``Applied.left``: a model
    reading the account's events rescores them with the message, whole history included), and their
    account loses it from its committee: one of them is evaluated again by the lifecycle runner, which
    scores the account of every lead it evaluates (an account left with no contact is the runner's
    ``emptied_accounts``)."""
    left = colleagues_left(conn, lead_id, account_after)
    for colleague in left:
        out.leave(colleague, m.ts, m.message_id)
    evaluate_again(conn, left[:1])


def _merge(
    conn: Connection, keep: int, gone: int, m: Message, out: Applied, lookup: KeyLookup, people: PeopleCache
) -> int:
    """Merge lead ``gone`` into ``keep`` (``store.lead_merge``) in the middle of a batch: the batch's held
    writes go first, its caches forget ``gone``, and what it touched of ``gone`` is ``keep``'s, whose
    whole history is scored again. Returns ``keep``."""
    people.flush(conn)
    lookup.flush()
    _leave_account(conn, gone, people.row(conn, keep)["account_id"], m, out)
    merge_leads(conn, keep, gone, m.received_ms, m.message_id)
    lookup.known = {key: keep if lead == gone else lead for key, lead in lookup.known.items()}
    people.forget(conn, gone, keep)
    out.merged(gone, keep)
    out.rewind(keep)  # the alias itself touches ``keep`` as any message touches its lead
    return keep


def event_row(m: Message, source: str, ip_mode: IpMode = "truncate", ip_secret: str = "") -> dict[str, Any]:
    """The event-log row for a message; the context's IP address is protected first (see ingest.ip)."""
    context = protect_context(m.context, ip_mode, ip_secret)
    return {
        "message_id": m.message_id,
        "type": m.type,
        "name": m.name,
        "person_key": m.person_key if (m.user_id or m.anonymous_id) else f"u:{m.previous_id}",
        "user_id": m.user_id,
        "anonymous_id": m.anonymous_id,
        "group_id": m.group_id,
        "previous_id": m.previous_id,
        "path": m.path,
        "url": m.url,
        "properties": m.properties,
        "context": {**context, "traits": m.traits} if m.traits else context,
        "ts": m.ts,
        "received_ms": m.received_ms,
        "source": source,
    }
