"""One lead as the lead page shows it: who, the company, the stored score explained (its ledger with the
events behind each line, ``scoring.explain``: the same explanation ``leadscore explain`` and the API
give), the score history, and the journey: the score at each event time.

The journey's points are the score at past times as score history reads it (``scoring.as_known``: the
compiled query over the events up to then, with the attributes known then), so the chart and the history
table agree wherever both have a point of the same model version (history keeps the version of its time,
the chart is the active version's); nothing here re-implements scoring. A lead with many events
charts fewer points, as its history holds fewer rows (``scoring.history.thinned``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Connection, and_, func, select

from leadscore.compile import Sources
from leadscore.compile.contributions import Explanation
from leadscore.lifecycle.reasons import rule_names as line_names
from leadscore.model import ScoringModel
from leadscore.scoring.as_known import score_as_known
from leadscore.scoring.explain import EventPage, current_line_events, explain_current
from leadscore.scoring.history import score_path, thinned
from leadscore.scoring.run import model_of
from leadscore.scoring.shown import apportion, cut, shown_change, shown_lines
from leadscore.store.model_versions import ModelVersion
from leadscore.store.results import history_rows, read_current
from leadscore.store.schema import accounts, events, identities, leads
from leadscore.store.score_names import live_scores
from leadscore.web.data.names import lead_name
from leadscore.web.data.paging import Paging, paged_rows, paging

LINE_PAGE = 100  # the events of one line a page of their own lists
JOURNEY_POINTS = 200  # the most recent event times charted; older activity is summarised by the first point
EVENTS_SHOWN = 25  # the newest events listed under a ledger line; the rest are one row
EVENTS_LISTED = 5  # the events a journey point lists; the rest are "and N more"
HISTORY_PAGE = 50  # score history rows listed a page (a write key can give one person any number)


def describe(event: dict[str, Any]) -> str:
    """An event in a few words: 'page /pricing', 'Webinar Attended'."""
    kind = event.get("type") or "event"
    if kind == "page":
        return f"page {event.get('path') or event.get('url') or ''}".strip()
    if kind == "track":
        return str(event.get("name") or "track")
    return str(kind)


@dataclass
class LeadView:
    lead: dict[str, Any]
    account: dict[str, Any] | None
    score: dict[str, Any] | None
    version: ModelVersion | None
    ledger: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)  # the page ``history_at``, oldest first
    history_at: Paging = field(default_factory=lambda: paging(0, 1, HISTORY_PAGE))  # newest first, from 1
    # the lead's other named scores (docs/named-scores.md), each with its score row, version and ledger
    others: list[dict[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return lead_name(self.lead)

    @property
    def score_path(self) -> str:
        """The listed history as 0 → 21 → 43 → 65 (the same rendering as ``leadscore history``), with an
        ellipsis for the older (first) and newer (last) rows on other pages."""
        older = bool(self.history) and self.history_at.last < self.history_at.total
        newer = bool(self.history) and self.history_at.page > 1
        return score_path(self.history, older, newer)


def rule_names(model: ScoringModel) -> dict[str, tuple[str, str]]:
    """Ledger line id → (name, description): the names every reason uses (``lifecycle.reasons``)."""
    descriptions = {r.id: r.description or "" for r in (*model.fit, *model.engagement)}
    return {rid: (name, descriptions.get(rid, "")) for rid, name in line_names(model).items()}


def history_of(conn: Connection, lead_id: int, page: int) -> tuple[list[dict[str, Any]], Paging]:
    """Page ``page`` (from 1, the newest first; past the last: the last) of the lead's score history,
    ``HISTORY_PAGE`` rows, oldest first within it."""
    return paged_rows(lambda limit, offset: history_rows(conn, lead_id, limit, offset), page, HISTORY_PAGE)


def load(conn: Connection, sources: Sources, lead_id: int, history_page: int = 1) -> LeadView | None:
    row = conn.execute(select(leads).where(leads.c.id == lead_id)).mappings().first()
    if row is None:
        return None
    lead = dict(row)
    account = None
    if lead["account_id"] is not None:
        found = conn.execute(select(accounts).where(accounts.c.id == lead["account_id"])).mappings().first()
        account = dict(found) if found else None
    score, _ = read_current(conn, lead_id)
    history, at = history_of(conn, lead_id, history_page)
    view = LeadView(lead, account, score, None, history=history, history_at=at)
    explained = explain_current(conn, sources, lead_id) if score is not None else None
    if explained is None:
        return view
    view.version, explanation = explained
    view.ledger = ledger_rows(model_of(view.version.yaml, view.version.label), explanation)
    view.others = _other_scores(conn, sources, lead_id, view.version.score_name)
    return view


def _other_scores(conn: Connection, sources: Sources, lead_id: int, primary: str) -> list[dict[str, Any]]:
    """Every live named score of the lead but the primary, side by side with its ledger (the same explanation
    path as the primary's)."""
    out = []
    for named in live_scores(conn):
        if named.name == primary:
            continue
        score, _ = read_current(conn, lead_id, named.name)
        explained = explain_current(conn, sources, lead_id, named.name) if score is not None else None
        if score is None or explained is None:
            continue
        version, explanation = explained
        model = model_of(version.yaml, version.label)
        out.append(
            {
                "name": named.name,
                "score": score,
                "version": version,
                "ledger": ledger_rows(model, explanation),
            }
        )
    return out


def ledger_rows(model: ScoringModel, explanation: Explanation) -> list[dict[str, Any]]:
    """The explanation's lines, largest first, each with its rule's description, the newest
    ``EVENTS_SHOWN`` events behind it with each one's share of the line in score points, and the rest
    (``rest``: how many, their points; None when every event is shown); ``shown``: the points rounded to
    the two decimals the page shows, adding up to the score and, for the events and the rest, to their
    line (``scoring.shown.apportion``)."""
    names = rule_names(model)
    engagement = {rule.id for rule in model.engagement}
    ledger = explanation.ledger
    lines = sorted(
        zip(ledger.lines, shown_lines(ledger), strict=True),
        key=lambda p: (-abs(p[0].score_points), p[0].rule_id),
    )
    out = []
    for line, line_shown in lines:
        name, description = names.get(line.rule_id, (line.name, ""))
        listed, more, rest_points = explanation.newest(line.rule_id, EVENTS_SHOWN)  # the rest are older
        shares = [share for _, share in listed]
        parts = apportion([*shares, rest_points] if more else shares, line_shown)
        events = [
            {
                "ts": event.ts,
                "what": describe(asdict(event)),
                "rule_id": event.rule_id,
                "message_id": event.message_id,
                "points": share,
                "shown": event_shown,
            }
            for (event, share), event_shown in zip(listed, parts, strict=False)
        ]
        rest = {"count": more, "points": rest_points, "shown": parts[-1]} if more else None
        out.append(
            {**asdict(line), "name": name, "description": description, "events": events,
             "events_total": len(events) + more, "rest": rest, "shown": line_shown,
             "paged": line.rule_id in engagement}  # its events have a page of their own (``line_events``)
        )  # fmt: skip
    return out


def line_events(
    conn: Connection, sources: Sources, lead_id: int, rule_id: str, offset: int
) -> dict[str, Any] | None:
    """A page of ``LINE_PAGE`` of the events behind one engagement rule's line of the lead's current
    (primary) score, from ``offset``, newest first, each with its share of the line as shown, and the
    line's other events (newer and older) as one row, so the page adds up to the line as the lead page
    shows it (``shown_lines``). None while the lead has no score; ``KeyError`` for a rule the model that
    scored it does not have."""
    found = current_line_events(conn, sources, lead_id, EventPage(rule_id, offset, LINE_PAGE))
    if found is None:
        return None
    version, page = found
    ledger = page.explanation.ledger
    at = next((i for i, line in enumerate(ledger.lines) if line.rule_id == rule_id), None)
    name, description = rule_names(model_of(version.yaml, version.label)).get(rule_id, (rule_id, ""))
    out: dict[str, Any] = {"rule_id": rule_id, "name": name, "description": description, "offset": offset,
                           "total": page.total, "events": [], "others": None, "line": None,
                           "newer": max(offset - LINE_PAGE, 0) if offset > 0 else None,
                           "older": page.next_offset, "version": version}  # fmt: skip
    if at is None:  # no event matched the rule
        return out
    line, line_shown = ledger.lines[at], shown_lines(ledger)[at]
    shares = [e.points for e in page.explanation.events]
    others = page.total - len(shares)
    rest = line.score_points - sum(shares)
    parts = apportion([*shares, rest] if others else shares, line_shown)
    out["line"] = {**asdict(line), "shown": line_shown}
    out["events"] = [
        {
            "ts": e.ts,
            "what": describe(asdict(e)),
            "message_id": e.message_id,
            "points": e.points,
            "shown": shown,
        }
        for e, shown in zip(page.explanation.events, parts, strict=False)
    ]
    out["others"] = {"count": others, "points": rest, "shown": parts[-1]} if others else None
    return out


def journey(conn: Connection, sources: Sources, view: LeadView) -> dict[str, Any]:
    """The score at the moment before the lead's first charted event, at each event time, and now; each
    point lists the events at that time and how much the score moved (as shown: ``shown_change``)."""
    if view.score is None or view.version is None:
        return {"points": [], "bands": {}, "path": view.score_path}
    model = model_of(view.version.yaml, view.version.label)
    lead_id, as_of = int(view.lead["id"]), int(view.score["as_of_ms"])
    # her events up to the score's time are counted, and only those of the newest JOURNEY_POINTS event
    # times read (a write key can send her any number of page views)
    hers = and_(
        identities.c.key == events.c.person_key, identities.c.lead_id == lead_id, events.c.ts <= as_of
    )
    count = conn.execute(select(func.count()).select_from(events).join(identities, hers)).scalar_one()
    times = (
        select(events.c.ts)
        .join(identities, hers)
        .distinct()
        .order_by(events.c.ts.desc())
        .limit(JOURNEY_POINTS)
    ).subquery()
    # of each time, its first EVENTS_LISTED events (all a point lists) and how many it has: a write key can
    # send her any number at one time
    ranked = (
        select(
            events.c.ts, events.c.type, events.c.name, events.c.path, events.c.url,
            func.row_number().over(partition_by=events.c.ts, order_by=events.c.id).label("nth"),
            func.count().over(partition_by=events.c.ts).label("of"),
        )
        .join(identities, hers)
        .where(events.c.ts >= select(func.min(times.c.ts)).scalar_subquery())
    ).subquery()  # fmt: skip
    rows = conn.execute(
        select(ranked).where(ranked.c.nth <= EVENTS_LISTED).order_by(ranked.c.ts, ranked.c.nth)
    ).mappings()
    at: dict[int, tuple[list[str], int]] = {}
    for ev in rows:
        at.setdefault(int(ev["ts"]), ([], int(ev["of"])))[0].append(describe(dict(ev)))
    recent = sorted(at.items())
    # each point scored over all her events up to it: as many as history's budget allows, each with the
    # events of the run of event times it stands for (the first EVENTS_LISTED, and how many in all)
    charted = {
        t: ([what for u in run for what in at[u][0]][:EVENTS_LISTED], sum(at[u][1] for u in run))
        for t, run in thinned([(t, [t]) for t, _ in recent], count)
    }
    start = (recent[0][0] - 1) if recent else as_of
    moments = sorted({start, *charted, as_of})
    scored = {
        t: lg for (_, t), lg in score_as_known(conn, model, sources, [(lead_id, t) for t in moments]).items()
    }
    points: list[dict[str, Any]] = []
    previous: float | None = None
    for t in moments:
        lg = scored[t]
        # the move as the page shows it (``shown_change``): listed where the shown score moved
        delta = 0.0 if previous is None else shown_change(lg.score, previous)
        what, many = charted.get(t, ([], 0))
        points.append(
            {
                "t": t,
                "score": cut(lg.score, 2),
                "fit": cut(lg.fit_score, 2),
                "engagement": cut(lg.engagement_score, 2),
                "band": lg.band,
                "delta": delta,
                "events": what + ([f"and {many - len(what)} more"] if many > len(what) else []),
                "moved": delta != 0 and bool(many),
            }
        )
        previous = lg.score
    return {
        "points": points,
        "bands": {"hot": model.scale.bands.hot, "warm": model.scale.bands.warm},
        "path": view.score_path,
        "model": view.version.label,
    }
