"""PostHog's ``$set_once`` in event-time order, whatever order the events arrive in.

A set-once value sets a person property only where the person has no value for it at the event's
time: as PostHog sets it when events arrive in order (its ``$set_once`` writes a key absent from the
person's properties, a key removed by ``$unset`` included). ``store.people.upsert_lead`` decides that
from the lead's values and stamps as they stand when the message arrives, which is right while the
messages about a property arrive in time order. When one arrives out of order, what a set-once did
depends on messages that were not there yet: a removal arriving after a later set-once that it skipped
(the value it skipped is gone, so it should have filled), a set-once arriving after a later one (it was
first), a ``$set`` arriving after a later set-once (the set-once found a value). So after a message that
removes a property, or observes one before its stamp, the property is folded again from every identify
the lead has (the event log, the batch's earlier ones, this one) in event-time order: set-once fills an
absent property, set overwrites, unset removes (PostHog's order within one event). Only properties a
set-once touched are written: the rest the stamps already decide (``upsert_lead``). After two leads
merge (``store.lead_merge``, which takes each property's latest stamp, a set-once's too), every property
a set-once of theirs names is folded again, as one person's.

A batch reads each person key's identifies from the log once, and a lead's keys once (``Identifies``): a
fold whose names no set-once of the person names reads nothing more. Each fold read them all again, so
one person's identifies arriving out of order, or removing a property, or aliases chaining leads, cost
each message the person's whole past (``tests/test_identify_amplification.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, select

from leadscore.ingest.traits import removed_names, split_traits
from leadscore.store.event_log import identifies_of_keys
from leadscore.store.people import LEAD_COLUMNS, PeopleCache
from leadscore.store.schema import identities

# an identify as the fold reads it: (time, message id, set, set-once, removed), names canonical
Said = tuple[int, str, dict[str, Any], dict[str, Any], tuple[str, ...]]
_ABSENT = object()


def said(ts: int, message_id: str, traits: Any, once: Any, gone: Iterable[str]) -> Said:
    """What one identify says about its person's properties: its traits, set-once traits and the names
    it removes (canonical, ``ingest.traits.removed_names``)."""
    return ts, message_id, _values(traits), _values(once), tuple(gone)


def logged(ts: int, message_id: str, context: Mapping[str, Any] | None) -> Said:
    """``said`` of an identify in the event log (its traits are in its context)."""
    context = context or {}
    return said(ts, message_id, context.get("traits"), context.get("traits_once"), removed_names(context))


def _values(traits: Any) -> dict[str, Any]:
    if not isinstance(traits, dict) or not traits:
        return {}
    _, fields, attributes = split_traits(traits)
    return {k: v for k, v in {**attributes, **fields}.items() if v not in (None, "")}


def unsettled(now: Said, before: Mapping[str, Any]) -> list[str]:
    """The names whose set-once outcome the identify ``now`` may change: the ones it removes, and the
    ones it sets (or sets once) before their stamp ``before`` it was applied."""
    ts, _, set_, once, gone = now
    late = [k for k in (*set_, *once) if before.get(k) is not None and ts < int(before[k])]
    return list(dict.fromkeys([*gone, *late]))


class Identifies:
    """A batch's identifies as they are applied, by person key: the fold reads them beside the log
    (which holds the earlier batches' only)."""

    def __init__(self) -> None:
        # as sent (ts, message id, traits, set-once traits, context): read into ``Said`` only by a fold,
        # which few batches need
        self.by_key: dict[str, list[tuple[int, str, Any, Any, Mapping[str, Any]]]] = {}
        # read by the batch's folds, once each: a person key's identifies in the log (which do not change
        # within the batch) and the batch's own as far as read (``by_key`` only grows; ``_fresh``: keys
        # with some not read yet), the names a set-once of that key's names, and a folded lead's person
        # keys (the identities table's when first folded, the batch's links, a merged lead's) with the
        # names a set-once of any of them names. Each fold read them all again, so a batch of n messages
        # folding one person with k identifies (or k keys) read n × k of them (out-of-order identifies,
        # $unset, alias chains)
        self._log: dict[str, list[Said]] = {}
        self._told: dict[str, list[Said]] = {}
        self._once: dict[str, set[str]] = {}
        self._fresh: set[str] = set()
        self._keys: dict[int, set[str]] = {}
        self._lead_once: dict[int, set[str]] = {}

    def add(self, key: str, ts: int, message_id: str, traits: Any, context: Mapping[str, Any]) -> None:
        self.by_key.setdefault(key, []).append((ts, message_id, traits, context.get("traits_once"), context))
        self._fresh.add(key)

    def merged(self, conn: Connection, keep: int, gone: int) -> None:
        """Lead ``gone`` is about to be merged into ``keep`` (``store.lead_merge``): its keys are ``keep``'s."""
        keys = self._keys.pop(gone, None)
        self._lead_once.pop(gone, None)
        if keep in self._keys:
            if keys is None:
                keys = set(
                    conn.execute(select(identities.c.key).where(identities.c.lead_id == gone)).scalars()
                )
            self._link(conn, keep, keys)

    def settle(
        self,
        conn: Connection,
        people: PeopleCache,
        lead_id: int,
        keys: Iterable[str],
        names: list[str] | None,
        now_ms: int,
    ) -> None:
        """Fold ``names`` of lead ``lead_id`` (whose person ``keys`` the batch knows; None: every name a
        set-once of it names) again over all its identifies, and write the ones a set-once decides where
        they differ from the row."""
        if lead_id not in self._keys:
            self._keys[lead_id], self._lead_once[lead_id] = set(), set()
            linked = conn.execute(select(identities.c.key).where(identities.c.lead_id == lead_id)).scalars()
            self._link(conn, lead_id, set(linked))
        self._link(conn, lead_id, set(keys) - self._keys[lead_id])
        for key in self._fresh & self._keys[lead_id]:  # the batch's identifies since the last fold
            self._read_told(lead_id, key)
        once_named = self._lead_once[lead_id]
        if not once_named.intersection(once_named if names is None else names):
            return  # no set-once of these names: the stamps decide (upsert_lead), nothing to fold
        keys = sorted(self._keys[lead_id])
        heard: dict[str, Said] = {}
        for key in keys:
            heard.update((s[1], s) for s in self._log[key])
        for key in keys:  # the batch's own after the log's: the same message as sent
            heard.update((s[1], s) for s in self._told.get(key, ()))
        ordered = sorted(heard.values(), key=lambda s: (s[0], s[1]))
        if names is None:
            names = list(dict.fromkeys(name for _, _, _, once, _ in ordered for name in once))
        row = people.row(conn, lead_id)
        stored, stamps = dict(row["attributes"] or {}), dict(row["attribute_ts"] or {})
        changes: dict[str, Any] = {}
        for name in names:
            if not any(name in once for _, _, _, once, _ in ordered):
                continue  # no set-once of it: the stamps decide (upsert_lead)
            value, stamp = _fold(name, ordered, _current(row, stored, name), stamps.get(name))
            if stamp is None:
                continue
            if name in LEAD_COLUMNS:
                now = None if value is _ABSENT else value
                if row[name] != now:
                    changes[name] = now
            elif value is _ABSENT:
                stored.pop(name, None)
            else:
                stored[name] = value
            stamps[name] = stamp
        if stored != (row["attributes"] or {}):
            changes["attributes"] = stored
        if stamps != (row["attribute_ts"] or {}):
            changes["attribute_ts"] = stamps
        if changes:
            people.update(lead_id, changes, now_ms)

    def _link(self, conn: Connection, lead_id: int, keys: set[str]) -> None:
        """``keys`` are lead ``lead_id``'s too: what they said is read (from the log once a batch)."""
        unread = sorted(key for key in keys if key not in self._log)
        for key in unread:
            self._log[key], self._once[key] = [], set()
        for row in identifies_of_keys(conn, unread):
            heard = logged(int(row.ts), row.message_id, row.context)
            self._log[row.person_key].append(heard)
            self._once[row.person_key].update(heard[3])
        self._keys[lead_id] |= keys
        for key in keys:
            self._lead_once[lead_id] |= self._once[key]
            self._read_told(lead_id, key)

    def _read_told(self, lead_id: int, key: str) -> None:
        """The batch's identifies of ``key`` not read yet, read (its lead ``lead_id``'s)."""
        self._fresh.discard(key)
        sent, known = self.by_key.get(key, ()), self._told.setdefault(key, [])
        for ts, message_id, traits, once, context in sent[len(known) :]:
            known.append(said(ts, message_id, traits, once, removed_names(context)))
            self._once[key].update(once_names := known[-1][3])
            self._lead_once[lead_id].update(once_names)


def _current(row: Mapping[str, Any], stored: Mapping[str, Any], name: str) -> Any:
    value = row[name] if name in LEAD_COLUMNS else stored.get(name)
    return _ABSENT if value in (None, "") else value


def _fold(name: str, ordered: list[Said], current: Any, stamp: Any) -> tuple[Any, int | None]:
    """``name``'s value (or ``_ABSENT``) and the time of the observation that left it so, folding the
    identifies in time order; the lead's own value and stamp, where no identify made them (an import, a
    merge of an older lead), count as a set (or a removal) at that stamp."""
    said_at = {ts for ts, _, set_, once, gone in ordered if name in set_ or name in once or name in gone}
    steps = list(ordered)
    if stamp is not None and int(stamp) not in said_at:
        seed = {name: current} if current is not _ABSENT else {}
        steps.append((int(stamp), "", seed, {}, () if seed else (name,)))
        steps.sort(key=lambda s: (s[0], s[1]))
    value, at = _ABSENT, None
    for ts, _, set_, once, gone in steps:  # within one event: set-once, then set, then unset (PostHog's)
        if name in once and value is _ABSENT:
            value, at = once[name], ts
        if name in set_:
            value, at = set_[name], ts
        if name in gone:
            value, at = _ABSENT, ts
    return value, at
