"""Several models compiled into one SELECT that reads the events once: every active named score of a lead
(store/score_names.py) in one statement.

The stages are those of ``query.compile_model``, in the same functions; stage 2 (the per-rule event
aggregates) and the lead values (tracking flag, fit rule values) are shared. The lead-scope rules of every
model are aggregated in one ``GROUP BY`` over the events any of them may read (the union of their event
types, the longest of their look-backs), each distinct aggregate once (``query.aggregate_key``: the same
event match, kind and what the kind sums or counts, whatever the rule's id, name, points applied later,
cap or group): the first rule with a key computes it under its model's namespaced id (``m<i>_<rule>``:
two models may both have a rule ``demo``), and every rule of that key, of any model, reads it back under
its own rule id. Then each model goes through its rule values, caps, floor, normalisation and scale
(``query.score_aggregates``) exactly as it would alone. Reading more events than a model alone would
changes none of its aggregates: every aggregate filters its events by the rule's own type, window and
look-back, and a rule's exclusions look back no further than the events it counts need
(``query.with_exclusions``). Account-scope rules are counted by each model's own sweep over its
account's colleagues (``account_sweep.account_totals``, which reads that model's kinds, exclusions and
consent), each distinct aggregate of the model once.
The lead values of every model are one stage, each distinct value (``query.lead_value_columns``) once.

One row per (model, target): ``score_index`` (the model's position in ``models``), then every column any
model returns (``compile_model``'s columns; NULL where the row's model has no such column), so
``read_ledger(models[row["score_index"]], row)`` reads a row as it reads ``compile_model``'s.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, Select, cast, literal_column, null, select, type_coerce, union_all
from sqlalchemy.types import NullType, TypeEngine

from leadscore.compile import layout
from leadscore.compile.account_sweep import account_aggregates
from leadscore.compile.changes import changes_of
from leadscore.compile.dialects import computed_once, targets_in_place
from leadscore.compile.query import (
    aggregate_columns,
    aggregate_key,
    check_capabilities,
    compile_model,
    lead_base,
    lead_people_events,
    lead_value_columns,
    rules_events,
    scope,
    score_aggregates,
    with_exclusions,
)
from leadscore.compile.sources import Sources
from leadscore.model import EventRule, ScoringModel

SCORE_INDEX = "score_index"
SPACED = 64  # namespaced models kept per process
_SPACED: dict[tuple[int, str], tuple[ScoringModel, ScoringModel]] = {}
_SPACED_LOCK = threading.Lock()
# every per-rule column the aggregate stage may label (``aggregate_columns``)
_AGGREGATE_COLUMNS = (
    layout.count_col,
    layout.raw_col,
    layout.last_col,
    layout.distinct_col,
    layout.recent_col,
    layout.before_col,
)


def namespace(index: int) -> str:
    """The prefix of model ``index``'s rule ids and CTE names in a composite statement."""
    return f"m{index}_"


def namespaced(model: ScoringModel, prefix: str) -> ScoringModel:
    """The model with every engagement rule's id prefixed: the same rules (conditions, points, half-lives
    and the model's defaults and lists they read), labelled apart from another model's. Kept per (model
    object, prefix): the real-time path asks for the same ones every batch."""
    key = (id(model), prefix)
    with _SPACED_LOCK:
        hit = _SPACED.get(key)
        if hit is not None and hit[0] is model:
            return hit[1]
    rules = tuple(rule.model_copy(update={"id": f"{prefix}{rule.id}"}) for rule in model.engagement)
    spaced = model.model_copy(update={"engagement": rules})
    with _SPACED_LOCK:
        _SPACED[key] = (model, spaced)  # the model is held, so its id cannot be reused meanwhile
        while len(_SPACED) > SPACED:
            _SPACED.pop(next(iter(_SPACED)))
    return spaced


def compile_models_changes(
    models: Sequence[ScoringModel], sources: Sources, targets: Select[Any]
) -> Select[Any] | None:
    """``changes.compile_changes`` of several models in one statement that reads the events once: one row
    per target, each model's columns named after its ``namespaced`` rule ids (``next_change(namespaced(
    model, namespace(i)), row)`` reads model ``i``'s); None when no model has engagement rules."""
    spaced = [namespaced(model, namespace(i)) for i, model in enumerate(models)]
    timed = [sp for sp in spaced if sp.engagement]
    return changes_of(timed, sources, targets) if timed else None


def _own_ids(agg: Any, pairs: Sequence[tuple[str, str]], name: str) -> Any:
    """The aggregates in ``agg`` of the rules ``pairs`` names (own rule id, the id of the rule whose
    columns hold its aggregates), relabelled with the own rule ids."""
    cols: list[Any] = [agg.c.lead_id, agg.c.as_of]
    for own, holder in pairs:
        cols.extend(
            agg.c[label(holder)].label(label(own)) for label in _AGGREGATE_COLUMNS if label(holder) in agg.c
        )
    return select(*cols).subquery(name)


@dataclass(frozen=True)
class SharedAggregates:
    """The distinct lead-scope aggregates of several models: ``computed[i]``, the rules of model ``i``
    (``namespaced``) whose aggregates it computes, none equal to an earlier one's (``aggregate_key``);
    ``read[i]``, for each of its lead-scope rules, (its own id, the namespaced id of the rule computing
    its aggregates, its own or an earlier model's)."""

    computed: list[tuple[EventRule, ...]]
    read: list[list[tuple[str, str]]]


def shared_aggregates(
    models: Sequence[ScoringModel], spaced: Sequence[ScoringModel], which: str
) -> SharedAggregates:
    """Which rule of scope ``which`` computes each distinct aggregate of ``models``: the first with its
    key. Account-scope aggregates are equal only under the same consent setting (whose colleagues'
    events they read: ``query.account_events``)."""
    holders: dict[tuple[Any, ...], str] = {}
    computed: list[tuple[EventRule, ...]] = []
    read: list[list[tuple[str, str]]] = []
    for model, sp in zip(models, spaced, strict=True):
        mine: list[EventRule] = []
        pairs: list[tuple[str, str]] = []
        for rule, twin in zip(model.engagement, sp.engagement, strict=True):
            if scope(rule) != which:
                continue
            key = aggregate_key(model, rule)
            if which == "account":
                key = (model.privacy.tracking_consent, key)
            holder = holders.setdefault(key, twin.id)
            if holder == twin.id:
                mine.append(twin)
            pairs.append((rule.id, holder))
        computed.append(tuple(mine))
        read.append(pairs)
    return SharedAggregates(computed, read)


def _account_stage(
    model: ScoringModel, sp: ScoringModel, t: Any, sources: Sources, explain: bool, ns: str, engine: str
) -> Any:
    """The aggregate stage a model's account-scope rules read (None without such rules): the model's own
    sweep (``account_sweep.account_aggregates``: each colleague's events once), each distinct aggregate of
    its rules once. Models do not share it: the sweep reads each model's own kinds, exclusions and
    consent."""
    found = shared_aggregates([model], [sp], "account")
    if not found.computed[0]:
        return None
    e, ids, leads = sources.events, sources.identities, sources.leads
    agg = account_aggregates(sp, found.computed[0], t, e, ids, leads, f"{ns}account_", explain, engine)
    return _own_ids(agg, found.read[0], f"{ns}account_totals")


def _lead_values(models: Sequence[ScoringModel], t: Any, sources: Sources) -> list[Any]:
    """Every model's ``lead_values`` (tracking flag, fit rule values, share numbers) from one stage that
    computes each distinct value once (``lead_value_columns``' keys): per model, its columns under its
    own labels, in the order its own stage would have them."""
    leads, accounts = sources.leads, sources.accounts
    per_model = [lead_value_columns(model, leads, accounts) for model in models]
    labels: dict[tuple[Any, ...], str] = {}
    cols: list[Any] = [t.c.lead_id, t.c.as_of]
    for values in per_model:
        for key, _, value in values:
            if key not in labels:
                labels[key] = f"v{len(labels)}"
                cols.append(value.label(labels[key]))
    # computed once: every model's engagement rules read the tracking flag (a JSON lookup), twice or more
    shared = computed_once(select(*cols).select_from(lead_base(t, leads, accounts)).cte("lead_values"))
    return [
        select(
            shared.c.lead_id,
            shared.c.as_of,
            *(shared.c[labels[key]].label(label) for key, label, _ in values),
        ).subquery(f"{namespace(i)}lead_values")
        for i, values in enumerate(per_model)
    ]


def compile_models(
    models: Sequence[ScoringModel],
    sources: Sources,
    targets: Select[Any],
    engine: str = "sqlite",
    explain: bool = True,
) -> Select[Any]:
    """Every model of ``models`` over ``sources`` for every (lead_id, as_of) row of ``targets``, in one
    SELECT that aggregates the events once, each distinct aggregate and lead value once: one row per
    (model, target), ``score_index`` first."""
    if not models:
        raise ValueError("compile_models: no model to compile")
    if len(models) == 1:
        one = compile_model(models[0], sources, targets, engine, explain).subquery("only_model")
        return select(literal_column("0", Integer).label(SCORE_INDEX), *one.c)
    for model in models:
        check_capabilities(model, engine)
    sources.check()
    t = targets_in_place(targets.cte("targets"))
    e, ids = sources.events, sources.identities
    spaced = [namespaced(model, namespace(i)) for i, model in enumerate(models)]
    found = shared_aggregates(models, spaced, "lead")
    everyone = tuple(rule for rules in found.computed for rule in rules)
    shared = None
    if everyone:
        events: Any = rules_events(everyone, t, e, ids)
        for i, (sp, rules) in enumerate(zip(spaced, found.computed, strict=True)):
            if rules:
                people = lead_people_events(rules, t, e, ids)
                events = with_exclusions(sp, rules, events, namespace(i), people)
        ev = events.subquery("ev")
        cols: list[Any] = [ev.c.lead_id, ev.c.as_of]
        for sp, rules in zip(spaced, found.computed, strict=True):
            cols.extend(aggregate_columns(sp, rules, ev, explain))
        # read by every model: computed once, not once per reader
        shared = computed_once(select(*cols).group_by(ev.c.lead_id, ev.c.as_of).cte("event_totals"))
    account_stages = [_account_stage(model, sp, t, sources, explain, namespace(i), engine) for i, (model, sp)
                      in enumerate(zip(models, spaced, strict=True))]  # fmt: skip
    lead_values = _lead_values(models, t, sources)
    branches: list[Select[Any]] = []
    for i, model in enumerate(models):
        ns = namespace(i)
        aggs: dict[str, Any] = {"lead": None, "account": account_stages[i]}
        if shared is not None and found.read[i]:
            aggs["lead"] = _own_ids(shared, found.read[i], f"{ns}event_totals")
        branches.append(score_aggregates(model, t, aggs, sources, explain, ns, lead_values[i]))
    return _stacked(branches)


def _stacked(branches: list[Select[Any]]) -> Select[Any]:
    """The branches' rows one under another, over the union of their columns (NULL where a branch has
    none, cast to the type of a branch that has it), ``score_index`` first."""
    subs = [branch.subquery(f"{namespace(i)}result") for i, branch in enumerate(branches)]
    names: dict[str, TypeEngine[Any]] = {}
    for sub in subs:
        for col in sub.c:
            if isinstance(names.get(col.key, NullType()), NullType):
                names[col.key] = col.type
    parts = [
        select(
            literal_column(str(i), Integer).label(SCORE_INDEX),
            *((sub.c[name] if name in sub.c else _null(kind)).label(name) for name, kind in names.items()),
        )
        for i, sub in enumerate(subs)
    ]
    stacked = union_all(*parts).subquery("scores")
    return select(*stacked.c)


def _null(kind: TypeEngine[Any]) -> Any:
    """A NULL of the column's type: PostgreSQL types two untyped NULLs of a UNION as text."""
    return type_coerce(null(), kind) if isinstance(kind, NullType) else cast(null(), kind)
