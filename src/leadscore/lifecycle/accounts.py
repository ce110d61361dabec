"""Account scores and the account-level MQA stage (docs/lifecycle.md, Accounts).

An account's score, as of a time, is the weighted mean (``accounts.weights``) of

- its **fit**: the model's fit rules that read only ``account.*`` fields, scored over the account by the
  compiled query (``compile.accounts``), so floored, clamped and scaled exactly like a lead's fit score;
- its **committee engagement**: the mean engagement score of its ``committee_size`` most engaged
  contacts; missing contacts count 0, so breadth matters, and the mean depends only on the values, never
  on which contact came first. As of now a contact's engagement score is her stored one, the number every
  lead screen shows and the lead gates test (``scoring.due``: exact at its time, within ``TOLERANCE`` of
  now, on the right side of ``engaged_at_least``; one clock tick late at most); as of a past time she is
  scored by the compiled query with her attributes as known then. So the runner's round costs no
  contact's scoring however crowded the account (a write key can put 20,000 people in one).

An account is an MQA when its score reaches ``mqa.score_at_least`` and at least
``mqa.engaged_contacts_at_least`` contacts have an engagement score of ``engaged_at_least`` or more. An
MQA is a **PQA** (product-qualified account) when the model has ``accounts.pqa`` and each rule it names
gives points in the ledger of at least one contact as of the same time (her stored ledger as of now) (the ``rules_met`` test of
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

from sqlalchemy import BigInteger, Connection, case, func, literal, select

from leadscore.compile import Sources
from leadscore.compile.accounts import account_model, account_sources
from leadscore.compile.dialects import kept
from leadscore.lifecycle.gates import rules_met
from leadscore.model import ScoringModel
from leadscore.model.lifecycle import Accounts
from leadscore.scoring.as_known import score_as_known
from leadscore.scoring.pipeline import active_model
from leadscore.scoring.run import score
from leadscore.store import Store
from leadscore.store.id_lists import in_values
from leadscore.store.ledger_lines import read_lines
from leadscore.store.lifecycle_tables import emptied_accounts, read_account_stages, save_account_stage
from leadscore.store.schema import accounts, leads, scores
from leadscore.store.score_names import resolve, scores_of

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
    # are left out, and as of now the rules no ``pqa`` test names (what ``stage`` reads)
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
    return committee_mean(cfg, engagement), sum(is_engaged(cfg, e) for e in engagement)


def committee_mean(cfg: Accounts, engagement: Sequence[float]) -> float:
    """The committee engagement: the mean of the ``committee_size`` highest of ``engagement``, a missing
    contact counting 0 (so only those highest are needed); as computed, before it is kept to a millionth
    (``kept``) for the account's row, so the account score (``weighted``) reads the exact mean."""
    top = sorted(engagement, reverse=True)[: cfg.committee_size]
    return sum(top) / cfg.committee_size


def is_engaged(cfg: Accounts, engagement: float) -> bool:
    """A contact with this engagement score is engaged (the MQA rule counts her)."""
    return engagement >= cfg.engaged_at_least


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
    score_name: str | None = None,
) -> dict[int, AccountScore]:
    """The score of each of ``account_ids`` (that exists) on the score ``score_name`` (the primary when
    None), whose active model is ``model``, as of ``as_of``.

    As of now, the committee reads the contacts' stored scores and ledger lines of that score (what every
    lead screen shows and the lead gates test; the clock keeps them within ``scoring.due.TOLERANCE`` of
    now and on the right side of ``engaged_at_least``): only the ``committee_size`` highest engagement
    scores and the engaged count per account come back from the store, and the ledger lines only where a
    ``pqa`` rule is tested, so a crowded account costs no contact's scoring. ``past``: ``as_of`` is before
    now, so each contact is scored with her attributes as known then (``scoring.as_known``, as her score
    history reads her past score: a consent withdrawn since did not stop her engagement counting then)."""
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
    if past:
        engagement, engaged, met = _scored_committees(conn, model, cfg, sources, sorted(fit), as_of)
    else:
        engagement, engaged, met = _stored_committees(conn, cfg, sorted(fit), score_name)
    out: dict[int, AccountScore] = {}
    for account_id, fit_score in fit.items():
        mean = committee_mean(cfg, engagement.get(account_id, []))
        out[account_id] = AccountScore(
            account_id,
            weighted(cfg, fit_score, mean),
            fit_score,
            kept(mean),
            engaged.get(account_id, 0),
            met.get(account_id, {}),
        )
    return out


def weighted(cfg: Accounts, fit_score: float, committee_engagement: float) -> float:
    """The account score: the weighted mean of its fit and its committee engagement, multiplied before
    divided and kept to a millionth as a lead's score is (``compile.dialects.Quantized``), so a score
    at an MQA line in decimals is at it as a float: fit 40 and a committee of 220 / 3 at weights 0.4 and
    0.6 are 60, where the float sum was 59.99999999999999, shown as 60.0 and not an MQA."""
    w = cfg.weights
    return kept((w.fit * fit_score + w.engagement * committee_engagement) / (w.fit + w.engagement))


# per account: its contacts' engagement scores (at least the committee's), its engaged contacts, and each
# rule's largest points (by size) in one of its contacts' ledgers
Committees = tuple[dict[int, list[float]], dict[int, int], dict[int, dict[str, float]]]


def _most_points(met: dict[str, float], rule_id: str, points: float) -> None:
    if abs(points) > abs(met.get(rule_id, 0.0)):
        met[rule_id] = points


def _stored_committees(
    conn: Connection, cfg: Accounts, account_ids: Sequence[int], score_name: str | None
) -> Committees:
    """``Committees`` from the contacts' stored scores of ``score_name`` (``account_scores`` as of now): per
    account its ``committee_size`` highest engagement scores and its engaged count, in one statement; a
    contact with no stored score counts 0, as a missing contact does. The ledger lines only with a
    ``pqa`` test (they are what it reads)."""
    engagement, contact_account = scores.c.engagement_score, leads.c.account_id
    ranked = (
        select(
            leads.c.account_id,
            engagement.label("engagement"),
            func.row_number()
            .over(partition_by=contact_account, order_by=(engagement.desc(), leads.c.id))
            .label("rank"),
            # ``is_engaged`` in SQL
            func.sum(case((engagement >= cfg.engaged_at_least, 1), else_=0))
            .over(partition_by=contact_account)
            .label("engaged"),
        )
        .select_from(leads.join(scores, scores_of(leads.c.id, score_name)))
        .where(in_values(leads.c.account_id, account_ids))
        .subquery("ranked")
    )
    rows = conn.execute(
        select(ranked.c.account_id, ranked.c.engagement, ranked.c.engaged).where(
            ranked.c.rank <= cfg.committee_size
        )
    ).all()
    top: dict[int, list[float]] = {}
    engaged: dict[int, int] = {}
    for account_id, value, count in rows:
        top.setdefault(int(account_id), []).append(float(value))
        engaged[int(account_id)] = int(count)
    met: dict[int, dict[str, float]] = {}
    if cfg.pqa is not None:
        tested = set(cfg.pqa.rules_met)
        contacts = dict(
            conn.execute(
                select(leads.c.id, leads.c.account_id).where(in_values(leads.c.account_id, account_ids))
            ).all()
        )
        for line in read_lines(conn, sorted(contacts), score_name, nonzero=True):
            if line["rule_id"] in tested:
                account = met.setdefault(int(contacts[int(line["lead_id"])]), {})
                _most_points(account, str(line["rule_id"]), float(line["score_points"]))
    return top, engaged, met


def _scored_committees(
    conn: Connection,
    model: ScoringModel,
    cfg: Accounts,
    sources: Sources,
    account_ids: Sequence[int],
    as_of: int,
) -> Committees:
    """``Committees`` from every contact scored as of ``as_of`` with her attributes as known then
    (``account_scores(past=True)``)."""
    contacts = dict(
        conn.execute(select(leads.c.id, leads.c.account_id).where(leads.c.account_id.in_(account_ids))).all()
    )
    pairs = [(c, as_of) for c in sorted(contacts)]
    engagement: dict[int, list[float]] = {}
    engaged: dict[int, int] = {}
    met: dict[int, dict[str, float]] = {}
    for lg in score_as_known(conn, model, sources, pairs, explain=True).values():
        account_id = int(contacts[lg.lead_id])
        engagement.setdefault(account_id, []).append(lg.engagement_score)
        engaged[account_id] = engaged.get(account_id, 0) + is_engaged(cfg, lg.engagement_score)
        for line in lg.lines:
            _most_points(met.setdefault(account_id, {}), line.rule_id, line.score_points)
    return engagement, engaged, met


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
    return account_scores(conn, *scoring, account_ids, as_of, score_name=resolve(conn, score))


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
