"""Account scores and the account-level MQA stage (docs/lifecycle.md, Accounts).

An account's score, as of a time, is the weighted mean (``accounts.weights``) of

- its **fit**: the model's fit rules that read only ``account.*`` fields, scored over the account by the
  compiled query (``compile.accounts``), so floored, clamped and scaled exactly like a lead's fit score;
- its **committee engagement**: the mean engagement score of its ``committee_size`` most engaged
  contacts, each scored as of the same time by the compiled query; missing contacts count 0, so breadth
  matters, and the mean depends only on the values, never on which contact came first.

An account is an MQA when its score reaches ``mqa.score_at_least`` and at least
``mqa.engaged_contacts_at_least`` contacts have an engagement score of ``engaged_at_least`` or more. An
MQA is a **PQA** (product-qualified account) when the model has ``accounts.pqa`` and each rule it names
gives points in the ledger of at least one contact scored as of the same time (the ``rules_met`` test of
a lead's gate, ``lifecycle.gates.rules_met``, over the account's contacts): marketing fit and engagement
and product usage together. Stages rank ``none`` < ``mqa`` < ``pqa``.

Each named score has its account score (``named_account_scores``): the same computation with that score's
active model (its fit rules on ``account.*``, its contacts' engagement) and the lifecycle's accounts
section. The lifecycle stores and stages accounts on the primary score (``refresh_accounts``); another
score's account score is computed when it is read.

The stored score and stage are refreshed for the account of every lead the runner evaluates, so an
account that loses a contact is refreshed too: a lead that moves away has a colleague left behind
evaluated again (``ingest.apply``), the runner's timers refresh an account it left with no contact
(``store.lifecycle_tables.emptied_accounts``), and an erasure refreshes the erased lead's account in its
own transaction (``refresh_active``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import BigInteger, Connection, literal, select

from leadscore.compile import Ledger, Sources
from leadscore.compile.accounts import account_model, account_sources
from leadscore.lifecycle.gates import rules_met
from leadscore.model import ScoringModel
from leadscore.model.lifecycle import Accounts
from leadscore.scoring.as_known import score_as_known
from leadscore.scoring.pipeline import active_model
from leadscore.scoring.run import score, score_leads
from leadscore.store import Store
from leadscore.store.lifecycle_tables import emptied_accounts, read_account_stages, save_account_stage
from leadscore.store.schema import accounts, leads
from leadscore.store.score_names import resolve

MQA, PQA, NONE = "mqa", "pqa", "none"
QUALIFIED = (MQA, PQA)  # a PQA is an MQA too


@dataclass(frozen=True)
class AccountScore:
    account_id: int
    score: float
    fit_score: float
    engagement_score: float  # the committee's
    engaged_contacts: int
    # rule id → the most points (by size) its line gives one of the account's contacts; lines giving none
    # are left out
    rule_points: Mapping[str, float] = field(default_factory=dict)

    def stage(self, cfg: Accounts) -> str:
        """``pqa``, ``mqa`` or ``none``."""
        mqa = cfg.mqa
        qualified = (
            self.score >= mqa.score_at_least and self.engaged_contacts >= mqa.engaged_contacts_at_least
        )
        if not qualified:
            return NONE
        return PQA if cfg.pqa is not None and rules_met(self.rule_points, cfg.pqa.rules_met) else MQA


def committee(cfg: Accounts, engagement: Sequence[float]) -> tuple[float, int]:
    """(committee engagement, engaged contacts) of an account whose contacts have these engagement scores."""
    top = sorted(engagement, reverse=True)[: cfg.committee_size]
    return sum(top) / cfg.committee_size, sum(1 for e in engagement if e >= cfg.engaged_at_least)


def target_domains(model: ScoringModel | None) -> frozenset[str]:
    """Domains on the list the model's lifecycle names as its target accounts (``accounts.target_list``),
    lower-cased: an account is a target when its domain, lower-cased, is one of them."""
    config = model.lifecycle.accounts if model is not None and model.lifecycle is not None else None
    if model is None or config is None or config.target_list is None:
        return frozenset()
    return frozenset(v.lower() for v in model.lists[config.target_list].values)


def accounts_of(conn: Connection, lead_ids: Sequence[int]) -> list[int]:
    query = select(leads.c.account_id).where(leads.c.id.in_(list(lead_ids)), leads.c.account_id.is_not(None))
    return sorted({int(a) for a in conn.execute(query).scalars()})


def account_scores(
    conn: Connection,
    model: ScoringModel,
    cfg: Accounts,
    account_ids: Sequence[int],
    as_of: int,
    *,
    past: bool = False,
) -> dict[int, AccountScore]:
    """The score of each of ``account_ids`` (that exists) as of ``as_of``. ``past``: ``as_of`` is before
    now, so each contact is scored with her attributes as known then (``scoring.as_known``, as her score
    history reads her past score: a consent withdrawn since did not stop her engagement counting then);
    as of now that reading is her attributes as they are, which the contacts' stored scores read."""
    ids = sorted(set(account_ids))
    if not ids:
        return {}
    sources = Store.sources()
    targets = select(accounts.c.id.label("lead_id"), literal(as_of, BigInteger).label("as_of")).where(
        accounts.c.id.in_(ids)
    )
    fit = {
        lg.lead_id: lg.fit_score
        for lg in score(conn, account_model(model), account_sources(sources), targets)
    }
    contacts = dict(
        conn.execute(select(leads.c.id, leads.c.account_id).where(leads.c.account_id.in_(ids))).all()
    )
    engagement: dict[int, list[float]] = {a: [] for a in fit}
    met: dict[int, dict[str, float]] = {a: {} for a in fit}
    for lg in _contact_ledgers(conn, model, sources, sorted(contacts), as_of, past):
        account_id = int(contacts[lg.lead_id])
        engagement[account_id].append(lg.engagement_score)
        for line in lg.lines:
            if abs(line.score_points) > abs(met[account_id].get(line.rule_id, 0.0)):
                met[account_id][line.rule_id] = line.score_points
    w = cfg.weights
    out: dict[int, AccountScore] = {}
    for account_id, fit_score in fit.items():
        mean, engaged = committee(cfg, engagement[account_id])
        total = (w.fit * fit_score + w.engagement * mean) / (w.fit + w.engagement)
        out[account_id] = AccountScore(account_id, total, fit_score, mean, engaged, met[account_id])
    return out


def _contact_ledgers(
    conn: Connection, model: ScoringModel, sources: Sources, contacts: Sequence[int], as_of: int, past: bool
) -> list[Ledger]:
    """The contacts' ledgers, with their lines, as of ``as_of`` (``account_scores``)."""
    if not past:
        return score_leads(conn, model, sources, contacts, as_of)
    return list(score_as_known(conn, model, sources, [(c, as_of) for c in contacts], explain=True).values())


def accounts_section(conn: Connection) -> Accounts | None:
    """The lifecycle's accounts section (the primary model's lifecycle), or None."""
    primary = active_model(conn)
    lifecycle = primary.model.lifecycle if primary is not None else None
    return lifecycle.accounts if lifecycle is not None else None


def named_account_scores(
    conn: Connection, score: str | None, account_ids: Sequence[int], as_of: int
) -> dict[int, AccountScore]:
    """The account score of each of ``account_ids`` on the named score (the primary when None; a name
    never published is NotFoundError) as of ``as_of``: ``account_scores`` with that score's active model
    and the lifecycle's accounts section, so every score's account score is the one computation the
    lifecycle stores for the primary. Empty without an accounts section or an active version."""
    scoring = account_scoring(conn, score)
    if scoring is None:
        return {}
    return account_scores(conn, *scoring, account_ids, as_of)


def account_scoring(conn: Connection, score: str | None) -> tuple[ScoringModel, Accounts] | None:
    """What scores accounts on the named score (``named_account_scores``): its active model and the
    lifecycle's accounts section; None without either (a name never published is NotFoundError)."""
    name = resolve(conn, score)
    cfg = accounts_section(conn)
    active = active_model(conn, name)
    return None if cfg is None or active is None else (active.model, cfg)


def refresh_accounts(conn: Connection, model: ScoringModel, account_ids: Sequence[int], now_ms: int) -> int:
    """Recompute the score and stage of ``account_ids`` as of ``now_ms``; returns how many changed stage."""
    lifecycle = model.lifecycle
    if lifecycle is None or lifecycle.accounts is None or not account_ids:
        return 0
    cfg = lifecycle.accounts
    scored = account_scores(conn, model, cfg, account_ids, now_ms)
    targets = target_domains(model)
    ids = sorted(scored)
    domains = dict(conn.execute(select(accounts.c.id, accounts.c.domain).where(accounts.c.id.in_(ids))).all())
    before = read_account_stages(conn, ids)
    moved = 0
    for account_id in ids:
        s = scored[account_id]
        row = {
            "account_id": account_id,
            "stage": s.stage(cfg),
            "score": s.score,
            "fit_score": s.fit_score,
            "engagement_score": s.engagement_score,
            "engaged_contacts": s.engaged_contacts,
            "target": (domains.get(account_id) or "").lower() in targets,
            "entered_ms": now_ms,
            "updated_ms": now_ms,
        }
        moved += save_account_stage(conn, row, before.get(account_id))
    return moved


def refresh_active(conn: Connection, account_ids: Sequence[int], now_ms: int) -> int:
    """``refresh_accounts`` with the model the runner stages accounts by (the primary score's active
    one); 0 without one."""
    primary = active_model(conn)
    return 0 if primary is None else refresh_accounts(conn, primary.model, account_ids, now_ms)


def refresh_emptied(conn: Connection, model: ScoringModel, now_ms: int) -> int:
    """Refresh the accounts whose last contact moved away (``emptied_accounts``)."""
    return refresh_accounts(conn, model, emptied_accounts(conn), now_ms)
