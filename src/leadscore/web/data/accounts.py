"""Accounts as the accounts page shows them: contacts, engaged contacts and scores per account, from the
stored current scores of the score picked; the target-account flag from the active model's target list. An engaged contact
is one the MQA rule counts: an engagement score of ``accounts.engaged_at_least`` or more
(docs/lifecycle.md, Accounts)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, case, func, literal, or_, select

from leadscore.lifecycle.accounts import QUALIFIED
from leadscore.model import ScoringModel
from leadscore.model.lifecycle import Accounts
from leadscore.store.schema import account_stages, accounts, leads, scores
from leadscore.store.score_names import named
from leadscore.web.data.paging import paging

PAGE_SIZE = 50
# accounts → each one's (account score, stage) on a named score
Scored = Callable[[Sequence[int]], dict[int, tuple[float, str]]]
# at most this many accounts reaching a page's account score: their contacts are aggregated through the
# leads' account index; more (a page deep in a tie), every account's in one pass over the scores
FEW_ACCOUNTS = 2_000


@dataclass(frozen=True)
class AccountPage:
    rows: list[dict[str, Any]]
    total: int
    page: int
    pages: int


def engaged_at_least(model: ScoringModel | None) -> float:
    """The engagement score of an engaged contact: the model's ``accounts.engaged_at_least`` (its default
    when the model has no accounts section)."""
    config = model.lifecycle.accounts if model is not None and model.lifecycle is not None else None
    return (config or Accounts()).engaged_at_least


def account_page(
    conn: Connection,
    page: int,
    targets: frozenset[str],
    *,
    engaged_from: float = Accounts().engaged_at_least,
    only_targets: bool = False,
    only_mqa: bool = False,
    q: str = "",
    score: str | None = None,
    scored: Scored | None = None,
) -> AccountPage:
    """A page of accounts. ``score``: the named score whose contacts' scores are counted (engaged, hot,
    best, average; the primary when None). ``scored``: for a score other than the primary, its account
    score and stage for given accounts (``lifecycle.accounts.named_account_scores``): the page then shows
    those, ordered by engaged contacts and best contact (the stored account score and stage, by which the
    page is ordered and the MQA filter tests, are the lifecycle's: the primary score's)."""
    tests: list[ColumnElement[bool]] = []
    if only_targets:
        tests.append(func.lower(accounts.c.domain).in_(sorted(targets)))
    if only_mqa and scored is None:
        tests.append(account_stages.c.stage.in_(QUALIFIED))  # a PQA is an MQA too
    if q:
        like = "%" + q.lower().replace("%", "").replace("_", "") + "%"
        tests.append(func.lower(func.coalesce(accounts.c.name, accounts.c.domain)).like(like))
    with_stage = accounts.outerjoin(account_stages, account_stages.c.account_id == accounts.c.id)
    # one row per account (account_stages is keyed by account): the count needs no contact
    total = int(conn.execute(select(func.count()).select_from(with_stage).where(*tests)).scalar_one())
    at = paging(total, page, PAGE_SIZE)
    page, pages = at.page, at.pages
    # The page is ordered by the account score (the lifecycle's; -1 where it has none), then by engaged
    # contacts, then by the best contact's score. Only an account whose (account score, engaged contacts)
    # reaches that pair of the page's last row in that order can be on the page (each row before it has a
    # pair at least as high), so the contacts are aggregated for those accounts alone, not all 80,000
    # contacts' scores on every request. Both are cheap for every account: the account score is a row per
    # account, and the engaged contacts come from the scores' engagement index (the few leads at or over
    # the line). Where the candidates are most accounts (a page deep among accounts with no engaged
    # contact, all tied), every account's contacts are aggregated in one pass over the scores, as before.
    account_score = func.coalesce(account_stages.c.score, -1.0) if scored is None else literal(-1.0)
    engaged_counts = (
        select(leads.c.account_id, func.count().label("engaged"))
        .select_from(scores.join(leads, leads.c.id == scores.c.lead_id))
        .where(
            named(scores.c.score_name, score),
            scores.c.engagement_score >= engaged_from,
            leads.c.account_id.is_not(None),
        )
        .group_by(leads.c.account_id)
        .subquery("engaged_counts")
    )
    engaged_count = func.coalesce(engaged_counts.c.engaged, 0)
    with_counts = with_stage.outerjoin(engaged_counts, engaged_counts.c.account_id == accounts.c.id)
    last = conn.execute(
        select(account_score, engaged_count)
        .select_from(with_counts)
        .where(*tests)
        .order_by(account_score.desc(), engaged_count.desc())
        .limit(1)
        .offset(page * PAGE_SIZE - 1)
    ).first()
    if last is not None:
        tests.append(or_(account_score > last[0], and_(account_score == last[0], engaged_count >= last[1])))
    # the candidates' ids, as a list (SQLite then reads each one's contacts from the account index)
    ids = list(
        conn.execute(
            select(accounts.c.id).select_from(with_counts).where(*tests).limit(FEW_ACCOUNTS + 1)
        ).scalars()
    )
    few = len(ids) <= FEW_ACCOUNTS
    base = with_counts  # the rows the tests read
    if few:
        tests, base = [accounts.c.id.in_(ids)], with_stage
    # each account's contacts counted once from the leads' account index (an account with no contact
    # has no row here: no contacts, none engaged, no best or average score, none hot)
    contacts = (
        select(leads.c.account_id, func.count(leads.c.id).label("contacts"))
        .where(leads.c.account_id.in_(ids) if few else leads.c.account_id.is_not(None))
        .group_by(leads.c.account_id)
        .subquery("contacts")
    )
    aggregates = (
        leads.c.account_id,
        func.sum(case((scores.c.engagement_score >= engaged_from, 1), else_=0)).label("engaged"),
        func.max(scores.c.score).label("best"),
        func.avg(scores.c.score).label("average"),
        func.sum(case((scores.c.band == "hot", 1), else_=0)).label("hot"),
    )
    if few:
        # the candidates' contacts from the leads' account index, each one's score a probe of its key
        # (the name compared as an expression: on its own index SQLite would walk every lead's score)
        per_account = (
            select(*aggregates)
            .select_from(leads.join(scores, scores.c.lead_id == leads.c.id))
            .where(named(scores.c.score_name.concat(""), score), leads.c.account_id.in_(ids))
            .group_by(leads.c.account_id)
            .subquery("per_account")
        )
    else:
        # every account's contacts' scores aggregated once, read in the scores table's own order (about
        # the leads' order, so the lead of each score is a forward probe of the leads' primary key; from
        # the account index, each contact's score was a random probe: 80,000 of them at 100k leads). The
        # name compared as an expression keeps SQLite off the score indexes (their order is random in
        # lead id). A contact with no score counts among the contacts only, as in the outer join it
        # replaces: not engaged, not hot, no part of the best or the average.
        per_account = (
            select(*aggregates)
            # (the score's lead as an expression too: with the scores' key to probe, the leads in account
            # order would drive the join again)
            .select_from(scores.join(leads, leads.c.id == scores.c.lead_id + 0))
            .where(named(scores.c.score_name.concat(""), score), leads.c.account_id.is_not(None))
            .group_by(leads.c.account_id)
            .subquery("per_account")
        )
    engaged = func.coalesce(per_account.c.engaged, 0)
    query = (
        select(
            accounts.c.id,
            accounts.c.name,
            accounts.c.domain,
            func.coalesce(contacts.c.contacts, 0).label("contacts"),
            engaged.label("engaged"),
            per_account.c.best,
            per_account.c.average,
            func.coalesce(per_account.c.hot, 0).label("hot"),
            # the lifecycle's account score and stage (MQA), where it has computed them
            account_stages.c.stage,
            account_stages.c.score.label("account_score"),
        )
        .select_from(
            base.outerjoin(contacts, contacts.c.account_id == accounts.c.id).outerjoin(
                per_account, per_account.c.account_id == accounts.c.id
            )
        )
        .where(*tests)
    )
    ordered = query.order_by(
        account_score.desc(),
        engaged.desc(),
        func.coalesce(per_account.c.best, -1.0).desc(),
        accounts.c.id,
    )
    rows = []
    for row in conn.execute(ordered.limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)).mappings():
        item = dict(row)
        item["target"] = (item["domain"] or "").lower() in targets
        rows.append(item)
    if scored is not None:
        found = scored([int(r["id"]) for r in rows])
        for item in rows:
            item["account_score"], item["stage"] = found.get(int(item["id"]), (None, None))
    return AccountPage(rows, total, page, pages)
