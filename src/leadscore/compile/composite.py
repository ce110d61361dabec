"""Several models compiled into one SELECT that reads the events once: every active named score of a lead
(store/score_names.py) in one statement.

The stages are those of ``query.compile_model``, in the same functions; only stage 2 (the per-rule event
aggregates) is shared. The lead-scope rules of every model are aggregated in one ``GROUP BY`` over the
events any of them may read (the union of their event types, the longest of their look-backs), each
model's rules under ids of their own (``m<i>_<rule>``: two models may both have a rule ``demo``), then
each model reads its aggregates back under its own rule ids and goes through its rule values, caps,
floor, normalisation and scale (``query.score_aggregates``) exactly as it would alone. Reading more
events than a model alone would changes none of its aggregates: every aggregate filters its events by
the rule's own type, window and look-back, and a rule's exclusions look back no further than the events
it counts need (``query.with_exclusions``). Account-scope rules read the events of the account's leads
through the model's own consent setting, so each model keeps its own account aggregate.

One row per (model, target): ``score_index`` (the model's position in ``models``), then every column any
model returns (``compile_model``'s columns; NULL where the row's model has no such column), so
``read_ledger(models[row["score_index"]], row)`` reads a row as it reads ``compile_model``'s.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Integer, Select, cast, literal_column, null, select, type_coerce, union_all
from sqlalchemy.types import NullType, TypeEngine

from leadscore.compile import layout
from leadscore.compile.account_sweep import account_totals
from leadscore.compile.changes import changes_of
from leadscore.compile.dialects import computed_once, targets_in_place
from leadscore.compile.query import (
    aggregate_columns,
    check_capabilities,
    compile_model,
    lead_people_events,
    rules_events,
    scoped,
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


def _own_ids(agg: Any, model: ScoringModel, spaced: ScoringModel, name: str) -> Any:
    """The aggregates of ``spaced``'s rules in ``agg``, relabelled with ``model``'s own rule ids."""
    cols: list[Any] = [agg.c.lead_id, agg.c.as_of]
    for rule, twin in zip(model.engagement, spaced.engagement, strict=True):
        cols.extend(
            agg.c[label(twin.id)].label(label(rule.id))
            for label in _AGGREGATE_COLUMNS
            if label(twin.id) in agg.c
        )
    return select(*cols).subquery(name)


def compile_models(
    models: Sequence[ScoringModel],
    sources: Sources,
    targets: Select[Any],
    engine: str = "sqlite",
    explain: bool = True,
) -> Select[Any]:
    """Every model of ``models`` over ``sources`` for every (lead_id, as_of) row of ``targets``, in one
    SELECT that aggregates the events once: one row per (model, target), ``score_index`` first."""
    if not models:
        raise ValueError("compile_models: no model to compile")
    if len(models) == 1:
        one = compile_model(models[0], sources, targets, engine, explain).subquery("only_model")
        return select(literal_column("0", Integer).label(SCORE_INDEX), *one.c)
    for model in models:
        check_capabilities(model, engine)
    sources.check()
    t = targets_in_place(targets.cte("targets"))
    e, ids, leads = sources.events, sources.identities, sources.leads
    spaced = [namespaced(model, namespace(i)) for i, model in enumerate(models)]
    lead_rules: list[tuple[ScoringModel, tuple[EventRule, ...]]] = [(sp, scoped(sp, "lead")) for sp in spaced]
    everyone = tuple(rule for _, rules in lead_rules for rule in rules)
    shared = None
    if everyone:
        events: Any = rules_events(everyone, t, e, ids)
        for i, (sp, rules) in enumerate(lead_rules):
            events = with_exclusions(sp, rules, events, namespace(i), lead_people_events(rules, t, e, ids))
        ev = events.subquery("ev")
        cols: list[Any] = [ev.c.lead_id, ev.c.as_of]
        for sp, rules in lead_rules:
            cols.extend(aggregate_columns(sp, rules, ev, explain))
        # read by every model: computed once, not once per reader
        shared = computed_once(select(*cols).group_by(ev.c.lead_id, ev.c.as_of).cte("event_totals"))
    branches: list[Select[Any]] = []
    for i, (model, sp) in enumerate(zip(models, spaced, strict=True)):
        ns = namespace(i)
        aggs: dict[str, Any] = {"lead": None, "account": None}
        if shared is not None and scoped(sp, "lead"):
            aggs["lead"] = _own_ids(shared, model, sp, f"{ns}event_totals")
        account_rules = scoped(sp, "account")
        if account_rules:
            agg = account_totals(sp, account_rules, t, e, ids, leads, f"{ns}account_", explain)
            aggs["account"] = _own_ids(agg, model, sp, f"{ns}account_totals")
        branches.append(score_aggregates(model, t, aggs, sources, explain, ns))
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
