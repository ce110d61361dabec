"""Point-in-time learning data from the store: features as of each cutoff, the outcome after it.

Event features are computed by the compiled scoring query itself: a *probe* model with one ``each`` rule
per (event kind, window) (1 point, no decay, so its match count is the count) and one ``once`` rule per
event kind (whose ``last__`` column is the newest matching event). The counts and recencies learned from
are then exactly what the learned ``threshold`` and ``once`` rules will see when the model is scored.

A row sees the lead as known at its cutoff, as ``evaluate`` and the backtest score it: its own attributes
as known then (``scoring.as_known.Known``: a title set by an identify after the cutoff is not yet the
lead's; its account's attributes as they are now, as the as-known scoring reads them), and its events
without an anonymous visitor stitched to the lead only later (signing in after the cutoff: ``stitch_times``).
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from sqlalchemy import Connection, func, select

from leadscore.compile import Sources, compile_model
from leadscore.compile.layout import before_col, count_col, distinct_col, last_col, recent_col
from leadscore.errors import InputError, Problem
from leadscore.learn.dataset import Dataset, attribute_value, choose_columns
from leadscore.learn.features import (
    PLACEHOLDERS,
    Attribute,
    EventCount,
    EventRatio,
    EventRecency,
    Feature,
    TitleWords,
)
from leadscore.learn.labels import DAY_MS, Labels, data_end, label, outcome_times, rejected_by_sales
from leadscore.model import ScoringModel
from leadscore.model.names import is_field_name
from leadscore.scoring.as_known import Known
from leadscore.scoring.run import POINTS_CHUNK, points
from leadscore.store.people import anonymous_key
from leadscore.store.schema import accounts, events, identities, leads

WINDOWS = ("30d", "90d")
MAX_EVENT_KINDS = 20
# The intent families, for the most frequent kinds: distinct days within these windows, and distinct
# people of the lead's account (the buying committee) within COMMITTEE_WINDOW.
DAY_WINDOWS = ("14d", "30d")
COMMITTEE_WINDOW = "30d"
# The account's buying project as its colleagues show it, whatever they read: distinct people of the
# account with any page view (bursts excluded) within each of these windows. A person not yet active
# in an account where several are is as likely to be part of the project as the active ones.
ACCOUNT_WINDOWS = ("14d", "30d", "90d")
# ... and the distinct days on which any of its people viewed a page within these windows: research by
# an account rising above its baseline (an intent "surge") shows as more active days, not only as more
# people; one person's binge is one day, a project's several researchers are many.
ACCOUNT_DAY_WINDOWS = ("14d", "30d")
ANY_PAGE = "any page"
RATIO_WINDOW = "14d"  # velocity: the last fortnight against the one before
INTENT_KINDS = 8
# Events no person caused are not learned from: mail opens and clicks seconds after the delivery of the
# same e-mail (a security scanner), page views in bursts (a bot), as the model language excludes them.
EMAIL_EVENTS = ("Email Opened", "Email Link Clicked")
MACHINE = {"machine": {"after": "Email Delivered", "same": "email_id", "within": "10s"}}
BURST = {"burst": {"more_than": 10, "within": "60s"}}
EVENT_TYPES = ("track", "page", "screen")
# A track event is told apart by a property that is a text on this share of its events, with at most
# this many values (a form's name, a feature's): more would be ids, not kinds
SPLIT_PRESENT = 0.9
MAX_SPLIT_VALUES = 6
# The account's id as ingest keeps it among the account's attributes (a group call's groupId): it names
# an account, it says nothing about one
LATER = "known only after every cutoff (observed later: an identify or a CSV import since)"
IDENTIFIERS = {"account.group_id": "the account's id (an identifier, not a property of the account)"}


def event_kinds(
    conn: Connection, limit: int = MAX_EVENT_KINDS
) -> list[tuple[str, dict[str, str], dict[str, Any] | None]]:
    """The kinds of lead events that most leads have: (label, event, where). Pages by their first path
    segment. Ranked by leads reached, not by volume: a trial start or a webinar once per lead says more
    than a page some leads view hundreds of times."""
    lead_events = events.join(identities, identities.c.key == events.c.person_key)
    tracks = conn.execute(
        select(events.c.type, events.c.name, func.count(identities.c.lead_id.distinct()))
        .select_from(lead_events)
        .where(events.c.type.in_(("track", "screen")), events.c.name.is_not(None))
        .group_by(events.c.type, events.c.name)
    ).all()
    reached: dict[str, set[int]] = {}
    for path, lead in conn.execute(
        select(events.c.path, identities.c.lead_id)
        .select_from(lead_events)
        .where(events.c.type == "page")
        .distinct()
    ):
        head = "/" + (path or "/").strip("/").split("/")[0]
        reached.setdefault(head, set()).add(int(lead))
    sections = {head: len(leads) for head, leads in reached.items()}
    found: list[tuple[int, str, dict[str, str], dict[str, Any] | None]] = [
        (int(n), str(name), {"type": str(kind), "name": str(name)}, None) for kind, name, n in tracks
    ]
    found += _track_values(conn, lead_events)
    for head, n in sections.items():
        where: dict[str, Any] = (
            {"property": "path", "equals": "/"} if head == "/" else {"property": "path", "prefix": head}
        )
        found.append((n, f"{head} pages", {"type": "page"}, where))
    found.sort(key=lambda f: (-f[0], f[1]))
    return [(lbl, ev, where) for _, lbl, ev, where in found[:limit]]


def _track_values(
    conn: Connection, lead_events: Any
) -> list[tuple[int, str, dict[str, str], dict[str, Any] | None]]:
    """Track events told apart by a property (``Form Submitted`` by its ``form``: a demo request is not
    an e-book download): for each event name, the property that is a text on nearly every event
    (SPLIT_PRESENT), with 2 to MAX_SPLIT_VALUES values (ignoring case), whose largest value does not
    reach every lead of the event (the values split its leads differently); of several, the one whose
    largest value reaches the fewest leads. One kind per value: (leads reached, label, event, where)."""
    seen: dict[str, dict[str, dict[str, set[int]]]] = {}  # name -> key -> value -> leads
    occurrences: dict[str, int] = {}
    reached: dict[str, set[int]] = {}
    present: dict[tuple[str, str], int] = {}
    for name, props, lead in conn.execute(
        select(events.c.name, events.c.properties, identities.c.lead_id)
        .select_from(lead_events)
        .where(events.c.type == "track", events.c.name.is_not(None))
    ):
        occurrences[name] = occurrences.get(name, 0) + 1
        reached.setdefault(name, set()).add(int(lead))
        keys = seen.setdefault(name, {})
        for key, value in (props or {}).items():
            if not isinstance(value, str) or not value or not is_field_name(key):
                continue
            present[(name, key)] = present.get((name, key), 0) + 1
            values = keys.setdefault(key, {})
            if len(values) <= MAX_SPLIT_VALUES or value.lower() in values:
                values.setdefault(value.lower(), set()).add(int(lead))
    out: list[tuple[int, str, dict[str, str], dict[str, Any] | None]] = []
    for name, keys in sorted(seen.items()):
        reach = len(reached[name])
        best: tuple[int, str] | None = None
        for key, values in keys.items():
            if (
                present[(name, key)] < SPLIT_PRESENT * occurrences[name]
                or not 2 <= len(values) <= MAX_SPLIT_VALUES
            ):
                continue
            largest = max(len(leads) for leads in values.values())
            if largest < reach and (best is None or (largest, key) < best):
                best = (largest, key)
        if best is None:
            continue
        key = best[1]
        out += [(len(leads), f"{name}: {value}", {"type": "track", "name": name}, {"property": key, "equals": value})
                for value, leads in keys[key].items() if value not in PLACEHOLDERS]  # fmt: skip
    return out


def event_features(
    conn: Connection, windows: Sequence[str] = WINDOWS, limit: int = MAX_EVENT_KINDS
) -> list[Feature]:
    out: list[Feature] = []
    for i, (lbl, ev, where) in enumerate(event_kinds(conn, limit)):
        exclude = _exclusion(ev)
        out.extend(
            Feature(f"{lbl} ({w})", "numeric", EventCount(ev, w, where, exclude=exclude, label=lbl))
            for w in windows
        )
        out.append(Feature(f"{lbl}: days since last", "numeric", EventRecency(ev, where, exclude, lbl)))
        if i >= INTENT_KINDS or ev.get("name") == "Email Delivered":
            continue
        out.extend(
            Feature(
                f"{lbl}: separate days ({w})",
                "numeric",
                EventCount(ev, w, where, distinct="day", exclude=exclude, label=lbl),
            )
            for w in DAY_WINDOWS
        )
        out.append(
            Feature(
                f"{lbl}: people of the account ({COMMITTEE_WINDOW})",
                "numeric",
                EventCount(
                    ev,
                    COMMITTEE_WINDOW,
                    where,
                    distinct="person",
                    scope="account",
                    exclude=exclude,
                    label=lbl,
                ),
            )
        )
        ratio = EventRatio(ev, RATIO_WINDOW, where, exclude, lbl)
        out.append(Feature(f"{lbl}: last {RATIO_WINDOW} against the {RATIO_WINDOW} before", "numeric", ratio))
    if out:
        out.extend(account_activity_features())
    return out


def account_activity_features(
    windows: Sequence[str] = ACCOUNT_WINDOWS, day_windows: Sequence[str] = ACCOUNT_DAY_WINDOWS
) -> list[Feature]:
    """The account's activity on any page (bursts excluded), the committee family: the distinct people
    of the lead's account who viewed one within each window (how many colleagues are active), and the
    distinct days on which any of them did (how intensely the account researches: a surge)."""
    page = {"type": "page"}
    people = [
        Feature(
            f"{ANY_PAGE}: people of the account ({w})",
            "numeric",
            EventCount(page, w, None, distinct="person", scope="account", exclude=BURST, label=ANY_PAGE),
        )
        for w in windows
    ]
    days = [
        Feature(
            f"{ANY_PAGE}: separate days of the account ({w})",
            "numeric",
            EventCount(page, w, None, distinct="day", scope="account", exclude=BURST, label=ANY_PAGE),
        )
        for w in day_windows
    ]
    return [*people, *days]


def _exclusion(event: dict[str, str]) -> dict[str, Any] | None:
    if event.get("type") == "page":
        return BURST
    if event.get("name") in EMAIL_EVENTS:
        return MACHINE
    return None


def attribute_rows_at(
    conn: Connection, pairs: Sequence[tuple[int, int]]
) -> dict[tuple[int, int], dict[str, Any]]:
    """Each (lead, cutoff)'s attributes as known at the cutoff (``Known.over_time``, what the as-known
    scoring reads), with its account's as they are now as ``account.<name>``."""
    return _rows_at(conn, pairs)[0]


def _rows_at(
    conn: Connection, pairs: Sequence[tuple[int, int]]
) -> tuple[dict[tuple[int, int], dict[str, Any]], set[str]]:
    """``attribute_rows_at``, and the attribute names the leads have now (some maybe known only later)."""
    lead_ids = sorted({lead for lead, _ in pairs})
    now = _attributes(conn, lead_ids)
    names_now = {k for attrs, account in now.values() for k in _row(attrs, account)}
    known = Known(conn, lead_ids)
    times: dict[int, list[int]] = {}
    for lead, at in pairs:
        times.setdefault(lead, []).append(at)
    out: dict[tuple[int, int], dict[str, Any]] = {}
    for lead, ats in times.items():
        account = now.get(lead, ({}, {}))[1]
        rows: dict[int, dict[str, Any]] = {}  # one row per epoch: over_time shares its dicts
        for at, attrs in zip(ats, known.over_time(lead, ats), strict=True):
            row = rows.get(id(attrs))
            if row is None:
                row = rows[id(attrs)] = _row(attrs, account)
            out[(lead, at)] = row
    return out, names_now


def _attributes(
    conn: Connection, lead_ids: Sequence[int]
) -> dict[int, tuple[dict[str, Any], dict[str, Any]]]:
    rows = conn.execute(
        select(leads.c.id, leads.c.attributes, accounts.c.attributes.label("account"))
        .select_from(leads.outerjoin(accounts, accounts.c.id == leads.c.account_id))
        .where(leads.c.id.in_(list(lead_ids)))
    )
    return {int(lead_id): (attrs or {}, account or {}) for lead_id, attrs, account in rows}


def _row(attrs: dict[str, Any], account: dict[str, Any]) -> dict[str, Any]:
    values = {k: v for k, v in attrs.items() if not isinstance(v, dict | list)}
    values.update({f"account.{k}": v for k, v in account.items() if not isinstance(v, dict | list)})
    return {k: v for k, v in values.items() if is_field_name(k)}


def _probe(features: Sequence[Feature]) -> ScoringModel:
    rules: list[dict[str, Any]] = []
    for i, f in enumerate(features):
        src = f.source
        if f.section == "fit":
            continue
        assert not isinstance(src, Attribute | TitleWords)
        extra = {
            **({"where": src.where} if src.where else {}),
            **({"exclude": src.exclude} if src.exclude else {}),
        }
        if isinstance(src, EventCount) and src.distinct is not None:
            rules.append({"id": f"p{i}", "name": f.name, "kind": "threshold", "event": src.event, "points": 1,
                          "at_least": 1, "within": src.window, "count": {"distinct": src.distinct},
                          **({"scope": src.scope} if src.scope else {}), **extra})  # fmt: skip
        elif isinstance(src, EventCount):
            rules.append({"id": f"p{i}", "name": f.name, "event": src.event, "points": 1, "window": src.window,
                          "half_life": "none", **extra})  # fmt: skip
        elif isinstance(src, EventRecency):
            rules.append({"id": f"p{i}", "name": f.name, "kind": "once", "event": src.event, "points": 1,
                          "half_life": "none", **extra})  # fmt: skip
        elif isinstance(src, EventRatio):
            rules.append({"id": f"p{i}", "name": f.name, "kind": "ratio", "event": src.event, "points": 1,
                          "within": src.within, "at_least": 1, **extra})  # fmt: skip
    return ScoringModel.model_validate({"model": "probe", "engagement": rules})


def feature_matrix(
    conn: Connection,
    sources: Sources,
    features: Sequence[Feature],
    pairs: Sequence[tuple[int, int]],
    attributes: dict[tuple[int, int], dict[str, Any]] | None = None,
) -> np.ndarray[Any, Any]:
    """Feature values (as stored) for every (lead, as_of) pair, in order: the lead as known at as_of
    (``attributes``: ``attribute_rows_at(conn, pairs)``, read here when not given)."""
    attrs = attribute_rows_at(conn, pairs) if attributes is None else attributes
    X = np.empty((len(pairs), len(features)), dtype=object)
    for j, f in enumerate(features):
        if f.section == "fit":
            X[:, j] = [attribute_value(f, attrs.get(pair, {})) for pair in pairs]
    events_at = [j for j, f in enumerate(features) if f.section != "fit"]
    if not events_at:
        return X
    probe = _probe(features)
    row_of = {pair: i for i, pair in enumerate(pairs)}
    chunks = [
        (known, group[i : i + POINTS_CHUNK])
        for known, group in known_at_cutoffs(conn, sources, pairs)
        for i in range(0, len(group), POINTS_CHUNK)
    ]
    for known, chunk in chunks:
        query = compile_model(probe, known, points(chunk), engine=conn.dialect.name)
        for row in conn.execute(query).mappings():
            i = row_of[(int(row["lead_id"]), int(row["as_of"]))]
            for j in events_at:
                src = features[j].source
                if isinstance(src, EventCount) and src.distinct is not None:
                    X[i, j] = int(row[distinct_col(f"p{j}")] or 0)
                elif isinstance(src, EventCount):
                    X[i, j] = int(row[count_col(f"p{j}")] or 0)
                elif isinstance(src, EventRatio):
                    X[i, j] = src.value(
                        int(row[recent_col(f"p{j}")] or 0), int(row[before_col(f"p{j}")] or 0)
                    )
                else:
                    last = row[last_col(f"p{j}")]
                    X[i, j] = None if last is None else math.floor((int(row["as_of"]) - int(last)) / DAY_MS)
    return X


def stitch_times(conn: Connection) -> dict[str, int]:
    """When each anonymous key was stitched to its lead: the first message that carried both it and a
    user id (identify, or any call made after sign-in). Keys linked otherwise are known from the start."""
    return {
        anonymous_key(str(anon)): int(ts)
        for anon, ts in conn.execute(
            select(events.c.anonymous_id, func.min(events.c.ts))
            .where(events.c.anonymous_id.is_not(None), events.c.user_id.is_not(None))
            .group_by(events.c.anonymous_id)
        )
    }


def known_at_cutoffs(
    conn: Connection, sources: Sources, pairs: Sequence[tuple[int, int]]
) -> list[tuple[Sources, list[tuple[int, int]]]]:
    """The (lead, cutoff) pairs grouped by cutoff, each group with the sources as known at its cutoff:
    what learning reads and what ``evaluate`` scores, so both see a lead as it was then."""
    stitched = stitch_times(conn)
    groups: dict[int, list[tuple[int, int]]] = {}
    for pair in pairs:
        groups.setdefault(pair[1], []).append(pair)
    return [
        (_identities_at(sources, [key for key, ts in stitched.items() if ts > at]), group)
        for at, group in sorted(groups.items())
    ]


def _identities_at(sources: Sources, later: Sequence[str]) -> Sources:
    """The sources as known at a cutoff: without the keys stitched to a lead only after it (their
    events were then an anonymous visitor's, not the lead's)."""
    if not later:
        return sources
    ids = sources.identities
    known = select(ids).where(ids.c.key.not_in(list(later))).subquery("identities_then")
    return replace(sources, identities=known)


def first_touch(conn: Connection) -> dict[int, int]:
    """Each lead's first event time (over all its identities)."""
    return {
        int(lead): int(ts)
        for lead, ts in conn.execute(
            select(identities.c.lead_id, func.min(events.c.ts))
            .join(events, events.c.person_key == identities.c.key)
            .group_by(identities.c.lead_id)
        )
    }


def cutoff_pairs(conn: Connection, cutoffs: Sequence[int]) -> list[tuple[int, int]]:
    """(lead, cutoff) for every lead already seen (first event at or before the cutoff)."""
    touched = first_touch(conn)
    return [(lead, t) for t in cutoffs for lead, first in sorted(touched.items()) if first <= t]


# a row per lead per cutoff: hourly cutoffs over decades (--since 1900 --every 1h) would read the store
# a million times; ten years of weekly cutoffs is far beyond what learning or evaluating needs
MAX_CUTOFFS = 1000


def _day(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).date().isoformat()


def check_period(start_ms: int, end_ms: int) -> None:
    """Refuse a period that ends before it starts, with its dates."""
    if start_ms > end_ms:
        raise InputError(Problem(f"the period starts on {_day(start_ms)}, after it ends on {_day(end_ms)} "
                                 "(--since, --until; without --until it ends one horizon before the newest data)"))  # fmt: skip


def cutoffs(start_ms: int, end_ms: int, every_ms: int) -> list[int]:
    """Every ``every_ms`` from ``start_ms`` to ``end_ms``; a period that ends before it starts, or has
    more than MAX_CUTOFFS cutoffs, is refused with its dates."""
    check_period(start_ms, end_ms)
    n = (end_ms - start_ms) // every_ms + 1
    if n > MAX_CUTOFFS:
        step = (
            f"{every_ms / 86_400_000:g} days" if every_ms >= 86_400_000 else f"{every_ms / 3_600_000:g} hours"
        )
        raise InputError(Problem(f"{_day(start_ms)} to {_day(end_ms)} every {step} is {n} cutoffs; at most "
                                 f"{MAX_CUTOFFS}: a longer --every or a shorter period"))  # fmt: skip
    return list(range(start_ms, end_ms + 1, every_ms))


def store_data(
    conn: Connection,
    sources: Sources,
    *,
    outcome: str,
    horizon_ms: int,
    at: Sequence[int],
    end_ms: int | None = None,
    windows: Sequence[str] = WINDOWS,
    exclude: Sequence[str] = (),
    placeholders: tuple[str, ...] = PLACEHOLDERS,
    rejected_negative: bool = False,
) -> tuple[Dataset, Labels]:
    """Rows for every lead seen by each cutoff in ``at``, labelled by ``outcome`` within ``horizon_ms``
    (with ``rejected_negative``, a lead sales rejected within the horizon is a non-conversion at once)."""
    end = data_end(conn) if end_ms is None else end_ms
    candidates = cutoff_pairs(conn, at)
    rejections = rejected_by_sales(conn) if rejected_negative else None
    labels = label(candidates, outcome_times(conn), outcome, horizon_ms, end, rejections)
    pairs = labels.pairs
    attrs, names_now = _rows_at(conn, pairs)
    present = {k for values in attrs.values() for k in values}
    unknown = [c for c in exclude if c not in present | names_now]
    if unknown:  # a misspelt sales-entered field would otherwise be learned from
        raise InputError(Problem(f"--exclude {unknown[0]!r} names no attribute of the leads in the period"))
    names = sorted(present - set(exclude) - set(IDENTIFIERS))
    fit, dropped = choose_columns([attrs[pair] for pair in pairs], names, placeholders=placeholders)
    # an attribute the leads have now but none had at a cutoff (a CSV imported, or an identify, after
    # them): learning from today's values would credit what was learned after the outcome was open
    dropped.extend((c, LATER) for c in sorted(names_now - present - set(exclude) - set(IDENTIFIERS)))
    dropped.extend((c, why) for c, why in IDENTIFIERS.items() if c in present and c not in exclude)
    dropped.extend((c, "excluded (outcome or sales-entered)") for c in exclude)
    features = (*fit, *event_features(conn, windows))
    X = feature_matrix(conn, sources, features, pairs, attrs)
    data = Dataset(
        features,
        X,
        np.asarray(labels.y, dtype=np.int64),
        tuple(f"lead:{lead}" for lead, _ in pairs),
        lead_ids=np.asarray([lead for lead, _ in pairs], dtype=np.int64),
        as_of=np.asarray([t for _, t in pairs], dtype=np.int64),
        dropped=tuple(dropped),
        excluded={k: v for k, v in labels.excluded.items() if v},
    )
    return data, labels
