"""The rule builder on the model page: a form that writes fit and engagement rules, groups and lists into
the YAML draft (comment-preserving: ``model.source``), with pickers filled from the store, a live count
per condition and the score distribution before and after the draft.

The draft in the editor stays the source of truth: every action here takes it from the form, changes the
lines it must and gives the page back with the new draft, which is then validated, backtested and
published with the editor's own buttons. Counts go through the scoring query's own pieces
(``compile.matches``); the distribution after is the compiled draft model over every lead.
"""

from __future__ import annotations

import hashlib
import time
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import AfterValidator, TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from leadscore.api.state import state_of
from leadscore.compile.matches import event_matches, lead_matches
from leadscore.errors import ModelError, ModelValidationError
from leadscore.model import Condition, EachRule, ScoringModel
from leadscore.model.source import remove_rule, set_list, set_rule
from leadscore.model.yaml_io import plain_message
from leadscore.scoring.run import all_leads, model_of, now_ms, score_rows
from leadscore.store.schema import scores
from leadscore.store.score_names import named
from leadscore.web.data import leadlist, vocabulary
from leadscore.web.data.remembered import Pending, remembered_within
from leadscore.web.data.rule_form import (
    OP_WORDS,
    Row,
    RuleForm,
    condition,
    form_of,
    read_form,
    row_condition,
    rule,
)
from leadscore.web.pages.leads import histogram
from leadscore.web.params import ScoreField
from leadscore.web.render import page
from leadscore.web.security import ModelValidator, Viewer

router = APIRouter()
COUNT_DAYS = 90
# an engagement count reads every event of its type in the last COUNT_DAYS days (the index narrows type and
# time, not a path or property): a request waits this long for its counts together, then shows the ones
# still running as being counted and asks again (``model_builder_counts.html``)
COUNT_WAIT_S = 0.2
COUNT_AGAIN_MS = 1000
MINUTE_MS = 60_000
MAX_DRAFT = 512 * 1024


def unix_newlines(text: str) -> str:
    """A browser sends a textarea's lines ended by CR LF: the draft is stored as its author's lines, LF."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


Draft = Annotated[str, Form(max_length=MAX_DRAFT), AfterValidator(unix_newlines)]
_CONDITION: TypeAdapter[Any] = TypeAdapter(Condition)


def _model_or_none(draft: str) -> ScoringModel | None:
    """The draft as a model (parsed once per process while it is unchanged: every keystroke's count and
    every page asks), or None while it has problems."""
    try:
        return model_of(draft, "draft.yaml")
    except ModelValidationError:
        return None


def builder_context(request: Request, draft: str, form: RuleForm | None = None) -> dict[str, Any]:
    """What the model page needs to show the builder: the form, the pickers, the draft's rules."""
    model = _model_or_none(draft)
    with state_of(request).store.connect() as conn:
        vocab = vocabulary.vocabulary(conn, now_ms())
    return {
        "builder": form or RuleForm(),
        "vocab": vocab,
        "op_words": OP_WORDS,
        "draft_rules": [("fit", r.id, r.name) for r in model.fit]
        + [("engagement", r.id, r.name) for r in model.engagement]
        if model
        else [],
        "draft_groups": [g.id for g in model.groups] if model else [],
        "draft_lists": sorted(model.lists) if model else [],
    }


def _show(
    request: Request,
    viewer: Viewer,
    draft: str,
    form: RuleForm | None = None,
    *,
    score: str = "",
    **extra: Any,
) -> HTMLResponse:
    """The model page of the score ``score`` (the draft form's field: the primary for "") with the builder."""
    from leadscore.web.pages.model import show_checked

    builder = builder_context(request, draft, form)
    return show_checked(request, viewer, draft, score, builder=builder, **extra)


def _edited(
    request: Request,
    viewer: Viewer,
    draft: str,
    new_text: str,
    notice: str,
    form: RuleForm | None = None,
    *,
    score: str = "",
) -> HTMLResponse:
    from leadscore.web.pages.model import check_result

    check = check_result(request, new_text, score)
    if not check["ok"]:
        notice = f"{notice} The draft now has problems: see them below, at their lines."
    return _show(request, viewer, new_text, form, score=score, check=check, builder_notice=notice)


@router.post("/model/builder/rule", response_class=HTMLResponse, include_in_schema=False)
async def builder_rule(request: Request, viewer: ModelValidator) -> HTMLResponse:
    """Write the form's rule into the draft: in place of the rule it edits, else after its section's last."""
    data = await request.form()
    draft = unix_newlines(str(data.get("draft") or "")[:MAX_DRAFT])
    score = str(data.get("score") or "")  # checked where the page resolves it (``model._score``)
    form = read_form(data)
    try:
        text = set_rule(draft, form.section, rule(form), form.replaces or None)
    except ModelError as exc:
        return _show(request, viewer, draft, form, score=score, builder_problem=str(exc))
    verb = "changed in" if form.replaces else "added to"
    notice = f"Rule {form.id.strip()!r} {verb} the draft (not published yet)."
    return _edited(request, viewer, draft, text, notice, score=score)


@router.post("/model/builder/edit", response_class=HTMLResponse, include_in_schema=False)
def builder_edit(
    request: Request,
    viewer: ModelValidator,
    draft: Draft,
    edit: Annotated[str, Form(max_length=200)] = "",
    score: ScoreField = "",
) -> HTMLResponse:
    """The form showing one of the draft's rules (``edit`` is section:rule_id)."""
    section, _, rule_id = edit.partition(":")
    model = _model_or_none(draft)
    if model is None or section not in ("fit", "engagement"):
        return _show(
            request,
            viewer,
            draft,
            score=score,
            builder_problem="validate the draft first: the builder edits a valid draft",
        )
    return _show(request, viewer, draft, form_of(model, section, rule_id), score=score)


@router.post("/model/builder/remove", response_class=HTMLResponse, include_in_schema=False)
def builder_remove(
    request: Request,
    viewer: ModelValidator,
    draft: Draft,
    edit: Annotated[str, Form(max_length=200)] = "",
    score: ScoreField = "",
) -> HTMLResponse:
    section, _, rule_id = edit.partition(":")
    try:
        text = remove_rule(draft, section, rule_id)
    except ModelError as exc:
        return _show(request, viewer, draft, score=score, builder_problem=str(exc))
    notice = f"Rule {rule_id!r} removed from the draft (not published yet)."
    return _edited(request, viewer, draft, text, notice, score=score)


@router.post("/model/builder/group", response_class=HTMLResponse, include_in_schema=False)
def builder_group(
    request: Request,
    viewer: ModelValidator,
    draft: Draft,
    group_id: Annotated[str, Form(max_length=63)] = "",
    group_name: Annotated[str, Form(max_length=200)] = "",
    group_cap: Annotated[str, Form(max_length=30)] = "",
    score: ScoreField = "",
) -> HTMLResponse:
    """Add a group (engagement rules sharing one cap) to the draft."""
    cap: Any = group_cap.strip()
    try:
        number = float(cap)
    except ValueError:  # kept as text: the draft's validation then says at its line what a cap must be
        number = None
    if number is not None:
        cap = int(number) if number.is_integer() else number
    group = {"id": group_id.strip(), "name": group_name.strip(), "cap": cap}
    try:
        text = set_rule(draft, "groups", group)
    except ModelError as exc:
        return _show(request, viewer, draft, score=score, builder_problem=str(exc))
    notice = f"Group {group_id.strip()!r} added to the draft (not published yet)."
    return _edited(request, viewer, draft, text, notice, score=score)


@router.post("/model/builder/list", response_class=HTMLResponse, include_in_schema=False)
def builder_list(
    request: Request,
    viewer: ModelValidator,
    draft: Draft,
    list_name: Annotated[str, Form(max_length=63)] = "",
    list_values: Annotated[str, Form(max_length=100_000)] = "",
    list_description: Annotated[str, Form(max_length=500)] = "",
    score: ScoreField = "",
) -> HTMLResponse:
    """Add a named list (or replace its values) in the draft: values separated by commas or lines."""
    values = [v.strip() for v in list_values.replace("\n", ",").split(",") if v.strip()]
    try:
        text = set_list(draft, list_name.strip(), values, list_description.strip())
    except ModelError as exc:
        return _show(request, viewer, draft, score=score, builder_problem=str(exc))
    notice = f"List {list_name.strip()!r} written in the draft (not published yet)."
    return _edited(request, viewer, draft, text, notice, score=score)


def _validated(cond: dict[str, Any], subject: str) -> tuple[Any, str | None]:
    """A condition as the model reads it, or the reason it is not one (in plain words)."""
    try:
        return _CONDITION.validate_python(cond), None
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        return None, plain_message(err, str(err["loc"][-1]) if err["loc"] else subject)


def counts(request: Request, form: RuleForm, draft: str) -> dict[str, Any]:
    """The live counts: per filled row and for the whole condition; fit rules count leads, engagement
    rules count events of the last ``COUNT_DAYS`` days and the leads they belong to.

    An engagement count runs in the background (``remembered_within``) and the request waits for all of
    them at most ``COUNT_WAIT_S`` together; one not done by then is ``{"pending": True}``. A count is kept
    per condition, draft and minute: the window ends at the minute's end, so asking again within the minute
    (the page does until the counts are there) gets the same count, and events that arrive meanwhile are
    counted from the next minute on."""
    store = state_of(request).store
    model = _model_or_none(draft) or ScoringModel(model="draft")
    minute = now_ms() // MINUTE_MS
    end = (minute + 1) * MINUTE_MS - 1  # the window's last millisecond: the end of this minute
    deadline = time.monotonic() + COUNT_WAIT_S
    drafted = hashlib.sha256(draft.encode()).hexdigest()  # the draft's lists are part of a condition

    def engagement(probe: EachRule) -> dict[str, Any]:
        def compute() -> tuple[int, int]:
            with store.connect() as conn:  # its own connection: it may outlive the request's
                row = conn.execute(event_matches(model, probe, store.sources(), end, COUNT_DAYS)).one()
            return int(row.events), int(row.leads)

        key = ("builder count", probe.model_dump_json(), drafted, minute, COUNT_DAYS)
        with store.connect() as conn:
            # no table fingerprint: the minute in the key bounds how stale a count can be (an event table
            # that grows every second would otherwise start the count again on every ask)
            wait_s = max(0.0, deadline - time.monotonic())
            found = remembered_within(conn, (), key, compute, wait_s, shelf="builder counts")
        if isinstance(found, Pending):
            return {"pending": True}
        return {"events": found[0], "leads": found[1]}

    def one(cond: dict[str, Any] | None) -> dict[str, Any]:
        where = None
        if cond is not None:
            where, problem = _validated(cond, form.subject)
            if problem is not None:
                return {"problem": problem}
        if form.section == "fit":
            if where is None:
                return {"problem": "add a condition"}
            with store.connect() as conn:
                n = conn.execute(lead_matches(model, where, store.sources())).scalar_one()
            return {"leads": int(n)}
        event: dict[str, Any] = {"type": form.event_type}
        if form.event_name.strip():
            event["name"] = form.event_name.strip()
        try:
            probe = EachRule.model_validate(
                {"id": "draft", "name": "draft", "event": event, "where": cond, "points": 1}
            )
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            return {"problem": plain_message(err, str(err["loc"][-1]))}
        return engagement(probe)

    rows = [one(row_condition(r, form.subject)) if r.filled else None for r in form.rows]
    total = one(condition(form))
    pending = any(c is not None and c.get("pending") for c in [*rows, total])
    return {
        "rows": rows,
        "total": total,
        "days": COUNT_DAYS,
        "section": form.section,
        "again_ms": COUNT_AGAIN_MS if pending else None,
    }


@router.post("/model/builder/count", response_class=HTMLResponse, include_in_schema=False)
async def builder_count(request: Request, viewer: ModelValidator) -> HTMLResponse:
    """The counts fragment (htmx, on every change of the form)."""
    data = await request.form()
    form = read_form(data)
    draft = unix_newlines(str(data.get("draft") or "")[:MAX_DRAFT])
    found = await run_in_threadpool(counts, request, form, draft)  # it waits: not on the event loop
    return page(request, viewer, "model_builder_counts.html", counts=found)


@router.get("/model/builder/values", response_class=HTMLResponse, include_in_schema=False)
def builder_values(
    request: Request,
    viewer: ModelValidator,
    field: Annotated[str, Query(alias="cond_field", max_length=200)] = "",
    section: Annotated[str, Query(pattern="^(fit|engagement)$")] = "fit",
    event_type: Annotated[str, Query(max_length=16)] = "page",
) -> HTMLResponse:
    """The most frequent values of a field as ``<option>``s for its row's value picker."""
    values: list[str] = []
    probe = Row(field.strip(), "exists", "")
    ok = (
        probe.filled
        and _validated(row_condition(probe, "attribute" if section == "fit" else "property"), "")[1] is None
    )
    if ok:
        with state_of(request).store.connect() as conn:
            if section == "fit":
                values = vocabulary.attribute_values(conn, field.strip())
            else:
                values = vocabulary.property_values(conn, field.strip(), event_type, now_ms())
    return page(request, viewer, "model_builder_values.html", values=values)


@router.post("/model/builder/distribution", response_class=HTMLResponse, include_in_schema=False)
def builder_distribution(
    request: Request, viewer: ModelValidator, draft: Draft, score: ScoreField = ""
) -> HTMLResponse:
    """Scored leads per 10 points: as stored (the active model of the draft's score, the form's ``score``)
    and as the draft would score them now."""
    from leadscore.web.pages.model import check_result, picked_score

    model = _model_or_none(draft)
    if model is None:
        return page(request, viewer, "model_check.html", check=check_result(request, draft, score))
    store = state_of(request).store
    with store.connect() as conn:
        # every stored score, as the draft's are every lead's (not a list of people: no one is left out)
        name = picked_score(conn, score)
        before = leadlist.score_bins(conn, scores.c.score, named(scores.c.score_name, name))
        rows = score_rows(conn, model, store.sources(), all_leads(now_ms())).subquery("draft_scores")
        after = leadlist.score_bins(conn, rows.c.score)
    chart = histogram(before, model.scale.bands)
    chart["series"] = [
        {"label": "Before: stored scores (active model)", "values": before},
        {"label": "After: the draft", "values": after},
    ]
    return page(request, viewer, "model_builder_distribution.html", chart=chart, before=before, after=after)
