"""Account scores and the account-level MQA stage.

An account's score is the weighted mean of its **fit** (the model's fit rules that read only
``account.*`` fields, normalised like the lead fit score) and its **buying-committee engagement** (the
mean engagement score of its ``committee_size`` most engaged contacts, missing contacts counting 0, so
breadth matters). An account is an MQA when its score reaches ``mqa.score_at_least`` and at least
``mqa.engaged_contacts_at_least`` contacts have an engagement score of ``engaged_at_least`` or more.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import Connection, select

from leadscore.model import FitRule, ScoringModel, walk
from leadscore.store.lifecycle_tables import read_account_stages, save_account_stage
from leadscore.store.schema import accounts, leads, ledger, scores


def account_rules(model: ScoringModel) -> list[FitRule]:
    """Fit rules about the account alone (every field they compare is ``account.*``)."""
    return [r for r in model.fit if all(c.field.startswith("account.") for c in walk(r.when))]


def accounts_of(conn: Connection, lead_ids: Sequence[int]) -> list[int]:
    query = select(leads.c.account_id).where(leads.c.id.in_(list(lead_ids)), leads.c.account_id.is_not(None))
    return sorted({int(a) for a in conn.execute(query).scalars()})


def refresh_accounts(conn: Connection, model: ScoringModel, account_ids: Sequence[int], now_ms: int) -> int:
    """Recompute the score and stage of ``account_ids``; returns how many changed stage."""
    lifecycle = model.lifecycle
    if lifecycle is None or lifecycle.accounts is None or not account_ids:
        return 0
    cfg = lifecycle.accounts
    ids = list(account_ids)
    engagement: dict[int, list[float]] = defaultdict(list)
    contacts: dict[int, int] = {}
    for account_id, lead_id, eng in conn.execute(
        select(leads.c.account_id, leads.c.id, scores.c.engagement_score)
        .join(scores, scores.c.lead_id == leads.c.id)
        .where(leads.c.account_id.in_(ids))
    ).all():
        engagement[int(account_id)].append(float(eng))
        contacts[int(lead_id)] = int(account_id)
    rules = [r.id for r in account_rules(model)]
    fit_points: dict[int, dict[str, float]] = defaultdict(dict)
    if rules and contacts:
        for lead_id, rule_id, value in conn.execute(
            select(ledger.c.lead_id, ledger.c.rule_id, ledger.c.value).where(
                ledger.c.lead_id.in_(list(contacts)), ledger.c.rule_id.in_(rules)
            )
        ).all():
            fit_points[contacts[int(lead_id)]][str(rule_id)] = float(value)
    targets: set[str] = set()
    if cfg.target_list is not None:
        targets = set(model.lists[cfg.target_list].values)
    domains = dict(conn.execute(select(accounts.c.id, accounts.c.domain).where(accounts.c.id.in_(ids))).all())
    before = read_account_stages(conn, ids)
    wf, we = cfg.weights.fit, cfg.weights.engagement
    moved = 0
    for account_id in ids:
        points = sum(fit_points[account_id].values())
        fit = min(max(points, 0.0), model.scale.fit_max) / model.scale.fit_max * 100
        top = sorted(engagement[account_id], reverse=True)[: cfg.committee_size]
        committee = sum(top) / cfg.committee_size
        engaged = sum(1 for e in engagement[account_id] if e >= cfg.engaged_at_least)
        score = (wf * fit + we * committee) / (wf + we)
        mqa = score >= cfg.mqa.score_at_least and engaged >= cfg.mqa.engaged_contacts_at_least
        row = {
            "account_id": account_id,
            "stage": "mqa" if mqa else "none",
            "score": score,
            "fit_score": fit,
            "engagement_score": committee,
            "engaged_contacts": engaged,
            "target": (domains.get(account_id) or "").lower() in targets,
            "entered_ms": now_ms,
            "updated_ms": now_ms,
        }
        moved += save_account_stage(conn, row, before.get(account_id))
    return moved
