"""One account as the account page shows it (account-based marketing): its contacts with their stored
scores and stages, the buying committee's activity per week by contact, the account score over time and
its MQA status with the stage moves behind it.

The account score at each week is ``lifecycle.accounts.account_scores`` of the score picked as of that
time, each contact with her attributes as known then (as her history reads her past score): the compiled
query over the account's fit and its contacts' engagement; now's point reads the contacts' stored scores,
the same numbers the lifecycle stores and moves the account's stage with (on the primary score). A page
scores at most ``SCORED_CONTACT_WEEKS`` contact-weeks, so a crowded account charts fewer past weeks. The account's score on every
named score, side by side, comes from the same function. Nothing here computes a score of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import BigInteger, Connection, Select, func, literal, select

from leadscore.lifecycle.accounts import account_scores, account_scoring, named_account_scores
from leadscore.lifecycle.reports import week_of
from leadscore.model import ScoringModel
from leadscore.model.lifecycle import Accounts
from leadscore.scoring.shown import cut
from leadscore.store.id_lists import in_values
from leadscore.store.lifecycle_tables import account_history_rows, read_account_stages
from leadscore.store.schema import accounts, events, identities, lead_stages, leads, scores
from leadscore.store.score_names import live_scores, resolve, scores_of
from leadscore.web.data.names import lead_name
from leadscore.web.data.paging import Paging, paged_rows, paging
from leadscore.web.data.stages import MOVES_PAGE

WEEK_MS = 7 * 86_400_000
MONDAY_MS = 3 * 86_400_000  # 1970-01-01 was a Thursday: weeks from Monday are (ms + 3 days) // 7 days
SCORE_WEEKS = 26  # the account score is charted at most at this many week ends, the last being now
# each past week end scores every contact as of then (``account_scores(past=True)``): a page view scores at
# most this many contact-weeks, so a crowded account charts fewer past weeks (20,000 contacts at 26 weeks
# were 56.7 CPU-s a page view; a write key can build one); now's point reads the stored scores
SCORED_CONTACT_WEEKS = 10_000
CONTACTS_PAGE = 50  # contacts listed a page (``contacts_page``); the summary numbers count them all
CHARTED_CONTACTS = 6  # the most active contacts get a series each; the rest are summed as "others"


@dataclass
class AccountView:
    account: dict[str, Any]
    contacts: list[dict[str, Any]]  # the page of contacts listed (``contacts_page``)
    members: list[dict[str, Any]]  # every contact: id, name, stage (``members_of``)
    stage: dict[str, Any] | None  # the lifecycle's stored score and stage (account_stages), if computed
    moves: list[dict[str, Any]] = field(default_factory=list)  # the page ``moves_at``, oldest first
    moves_at: Paging = field(default_factory=lambda: paging(0, 1, MOVES_PAGE))  # newest first, from 1
    activity: dict[str, Any] = field(default_factory=dict)  # a bar chart: events per week by contact
    history: list[dict[str, Any]] = field(default_factory=list)  # {"t", "score", "fit", "engagement", ...}
    scores: list[dict[str, Any]] = field(default_factory=list)  # the account score per named score, now
    weeks_left_out: int = 0  # past week ends with activity the chart leaves out (``SCORED_CONTACT_WEEKS``)
    listed: Paging = field(default_factory=lambda: paging(0, 1, CONTACTS_PAGE))  # ``contacts`` among all

    @property
    def name(self) -> str:
        return str(self.account.get("name") or self.account.get("domain") or f"Account {self.account['id']}")


def _contacts(account_id: int, score: str | None, *columns: Any) -> Select[Any]:
    """The account's contacts, highest stored score (of the named score, the primary when None) first
    (unscored last), ties by lead id, each with its stage: the one order of the page's list and of its
    pages."""
    return (
        select(*columns)
        .select_from(
            leads.outerjoin(scores, scores_of(leads.c.id, score)).outerjoin(
                lead_stages, lead_stages.c.lead_id == leads.c.id
            )
        )
        .where(leads.c.account_id == account_id)
        .order_by(func.coalesce(scores.c.score, -1.0).desc(), leads.c.id)
    )


def _named(row: Any, stage_names: dict[str, str]) -> dict[str, Any]:
    item = dict(row)
    item["name"] = lead_name(item)
    item["stage_name"] = stage_names.get(item["stage"], item["stage"]) if item["stage"] else None
    return item


def members_of(
    conn: Connection, account_id: int, stage_names: dict[str, str], score: str | None = None
) -> list[dict[str, Any]]:
    """Every contact of the account (id, name, stage), in the list's order (``_contacts``): what the
    activity chart, the product usage and the contact count read; the rows the page lists are
    ``contacts_page``'s."""
    columns = (leads.c.id, leads.c.email, leads.c.first_name, leads.c.last_name, lead_stages.c.stage)
    return [
        _named(row, stage_names) for row in conn.execute(_contacts(account_id, score, *columns)).mappings()
    ]


def contacts_page(
    conn: Connection, account_id: int, stage_names: dict[str, str], score: str | None, at: Paging
) -> list[dict[str, Any]]:
    """The page ``at`` of the account's contacts in ``_contacts``'s order, with their stored scores (a write
    key can put 20,000 people in one account)."""
    query = _contacts(
        account_id,
        score,
        leads.c.id,
        leads.c.email,
        leads.c.first_name,
        leads.c.last_name,
        leads.c.attributes,
        scores.c.score,
        scores.c.fit_score,
        scores.c.engagement_score,
        scores.c.grade,
        scores.c.level,
        scores.c.band,
        lead_stages.c.stage,
    )
    out = []
    for row in conn.execute(query.limit(at.size).offset(at.offset)).mappings():
        item = _named(row, stage_names)
        item["job_title"] = (item.pop("attributes") or {}).get("job_title")
        out.append(item)
    return out


def activity(conn: Connection, contacts: list[dict[str, Any]]) -> tuple[dict[str, Any], int | None]:
    """Events per week (Monday, UTC) by contact as a bar chart, and the time of the first event."""
    names = {c["id"]: c["name"] for c in contacts}
    if not names:
        return {"type": "bar", "x": [], "series": []}, None
    # counted per contact and week in the database: a write key's million page views for one contact were a
    # million rows read into the page (event times are 1970 or later: the division is the floor)
    week = ((events.c.ts + literal(MONDAY_MS, BigInteger)) // literal(WEEK_MS, BigInteger)).label("week")
    rows = conn.execute(
        select(identities.c.lead_id, week, func.count(), func.min(events.c.ts))
        .join(identities, identities.c.key == events.c.person_key)
        .where(in_values(identities.c.lead_id, sorted(names)))  # one parameter, however many contacts
        .group_by(identities.c.lead_id, week)
    ).all()
    per: dict[int, dict[str, int]] = {}
    labels: dict[int, str] = {}  # each week's label once (a crowded account has thousands of rows a week)
    for lead_id, index, count, _ in rows:
        label = labels.get(int(index))
        if label is None:
            label = labels[int(index)] = week_of(int(index) * WEEK_MS - MONDAY_MS)
        per.setdefault(int(lead_id), {})[label] = int(count)
    weeks = sorted({w for counts in per.values() for w in counts})
    busiest = sorted(per, key=lambda lead: (-sum(per[lead].values()), lead))
    series = [
        {"label": names[lead], "values": [per[lead].get(w, 0) for w in weeks]}
        for lead in busiest[:CHARTED_CONTACTS]
    ]
    rest = busiest[CHARTED_CONTACTS:]
    if rest:
        others = dict.fromkeys(weeks, 0)  # one pass over the rest's weeks, not every week of every one
        for lead in rest:
            for w, n in per[lead].items():
                others[w] += n
        series.append({"label": f"{len(rest)} other contacts", "values": [others[w] for w in weeks]})
    first = min((int(ts) for *_, ts in rows), default=None)
    chart = {
        "type": "bar",
        "x": weeks,
        "series": series,
        "xTitle": "week",
        "yTitle": "events",
        "stacked": True,
    }
    return chart, first


def score_times(first_ms: int, now_ms: int, contacts: int = 0) -> tuple[list[int], int]:
    """Week ends from the first activity to now (the last point is now), at most ``SCORE_WEEKS`` of them and
    at most ``SCORED_CONTACT_WEEKS`` / ``contacts`` past ones; and how many past ones that leaves out."""
    start = max(first_ms, now_ms - (SCORE_WEEKS - 1) * WEEK_MS)
    past = list(range(now_ms - WEEK_MS, start - 1, -WEEK_MS))
    kept = past[: SCORED_CONTACT_WEEKS // contacts] if contacts else past
    return sorted([now_ms, *kept]), len(past) - len(kept)


def score_history(
    conn: Connection,
    cfg: Accounts | None,
    score: str,
    account_id: int,
    first_ms: int | None,
    now_ms: int,
    contacts: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    """The account score on the named score as of each week end (``named_account_scores``, its model and
    accounts section read once): the past weeks' with the contacts' attributes as known then, as their
    score history reads them (``account_scores(past=True)``), the last one now's; and the past week ends
    left out for the account's ``contacts`` (``score_times``)."""
    scoring = account_scoring(conn, score) if cfg is not None and first_ms is not None else None
    if scoring is None or first_ms is None:
        return [], 0
    out = []
    times, left_out = score_times(first_ms, now_ms, contacts)
    for t in times:
        s = account_scores(conn, *scoring, [account_id], t, past=t < now_ms, score_name=score).get(account_id)
        if s is not None:
            out.append(
                {
                    "t": t,
                    "week": week_of(t),
                    "score": cut(s.score, 2),
                    "fit": cut(s.fit_score, 2),
                    "engagement": cut(s.engagement_score, 2),
                    "engaged_contacts": s.engaged_contacts,
                    "stage": s.stage(scoring[1]),
                }
            )
    return out, left_out


def by_score(conn: Connection, cfg: Accounts | None, account_id: int, now_ms: int) -> list[dict[str, Any]]:
    """The account's score on every live named score as of now, the primary first (``named_account_scores``);
    none for a store of one score (its page shows that one score already)."""
    names = live_scores(conn)
    if cfg is None or len(names) < 2:
        return []
    out = []
    for named in names:
        s = named_account_scores(conn, named.name, [account_id], now_ms).get(account_id)
        if s is not None:
            out.append({"name": named.name, "primary": named.is_primary, "score": s.score, "fit": s.fit_score,
                        "engagement": s.engagement_score, "engaged_contacts": s.engaged_contacts,
                        "stage": s.stage(cfg)})  # fmt: skip
    return out


def load(
    conn: Connection,
    model: ScoringModel | None,
    account_id: int,
    now_ms: int,
    score: str | None = None,
    page: int = 1,
    moves_page: int = 1,
) -> AccountView | None:
    """The account's view on the named score (the primary when None; ``model``: the primary's active
    model, whose lifecycle names the stages and the accounts section), listing page ``page`` of its
    contacts (from 1; one past the last lists the last, as the leads and accounts pages do) and page
    ``moves_page`` of its stage moves (the newest first)."""
    row = conn.execute(select(accounts).where(accounts.c.id == account_id)).mappings().first()
    if row is None:
        return None
    lifecycle = model.lifecycle if model is not None else None
    names = {s.id: s.name for s in lifecycle.stages} if lifecycle is not None else {}
    members = members_of(conn, account_id, names, score)
    listed = paging(len(members), page, CONTACTS_PAGE)
    chart, first = activity(conn, members)
    contacts = contacts_page(conn, account_id, names, score, listed) if members else []
    view = AccountView(dict(row), contacts, members, read_account_stages(conn, [account_id]).get(account_id))
    view.listed = listed
    view.moves, view.moves_at = paged_rows(
        lambda limit, offset: account_history_rows(conn, account_id, limit, offset), moves_page, MOVES_PAGE
    )
    view.activity = chart
    cfg = lifecycle.accounts if lifecycle is not None else None
    view.history, view.weeks_left_out = score_history(
        conn, cfg, resolve(conn, score), account_id, first, now_ms, len(members)
    )
    view.scores = by_score(conn, cfg, account_id, now_ms)
    return view
