"""Model: the active YAML, versions with diffs, validating a draft (positioned errors), publishing it; for
the score picked (``?score=NAME``, a form's ``score`` field: its versions, its active model, drafts
diffed, backtested and published as that score's; the primary by default). Another score can be retired
here (``lifecycle/retire.py``); a retired score's page says so, and publishing a draft there brings it back."""

from __future__ import annotations

import difflib
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from leadscore.api.state import state_of
from leadscore.errors import InputError, ModelError, ModelValidationError, NotFoundError, StoreError
from leadscore.lifecycle.retire import retire_score
from leadscore.model import ScoringModel, loads_model
from leadscore.model.diff import rule_changes
from leadscore.scoring.pipeline import publish
from leadscore.scoring.run import model_of
from leadscore.scoring.shadow import publish_shadow
from leadscore.store.model_versions import ModelVersion, active_version, get_version, list_versions
from leadscore.store.score_names import list_scores, picker_names, primary_score, resolve
from leadscore.web.data import measure
from leadscore.web.pages.builder import Draft, builder_context
from leadscore.web.params import ScoreField, ScoreParam
from leadscore.web.render import page
from leadscore.web.security import ModelPublisher, ModelReader, ModelValidator, Viewer, WebDenied

router = APIRouter()
MAX_DRAFT = 512 * 1024
DRAFT_LABEL = "draft.yaml"


def _active(conn: Any, score: str | None = None) -> ModelVersion | None:
    try:
        return active_version(conn, score)
    except StoreError:
        return None


def picked_score(conn: Any, score: str) -> str:
    """The score a page or form names (the primary for ""); an unknown one is a 404 naming the known, a
    malformed one (a form read without ``ScoreField``: the builder's rule) a 422."""
    try:
        return resolve(conn, score or None)
    except NotFoundError as exc:
        raise WebDenied(404, str(exc)) from None
    except InputError as exc:
        raise WebDenied(422, str(exc)) from None


def score_query(conn: Any, name: str) -> str:
    """``score=NAME`` for a link to another page of the same score; nothing for the primary."""
    return "" if name == primary_score(conn) else f"score={name}"


def _diff(
    old_label: str, old: ScoringModel, old_text: str, new_label: str, new: ScoringModel, new_text: str
) -> dict[str, Any]:
    """What changed: rules added, removed or changed, then the lines of the texts as their authors wrote them."""
    lines = difflib.unified_diff(
        old_text.splitlines(), new_text.splitlines(), old_label, new_label, lineterm=""
    )
    rendered = []
    for line in lines:
        kind = (
            "meta"
            if line.startswith(("---", "+++", "@@"))
            else {"+": "add", "-": "del"}.get(line[:1], "same")
        )
        rendered.append({"kind": kind, "text": line})
    return {"old": old_label, "new": new_label, "changes": rule_changes(old, new), "lines": rendered}


def _check(draft: str) -> tuple[ScoringModel | None, list[dict[str, Any]]]:
    try:
        return loads_model(draft, DRAFT_LABEL), []
    except ModelValidationError as exc:
        return None, [
            {"line": p.line, "column": p.column, "rule": p.rule, "field": p.field, "message": p.message}
            for p in exc.problems
        ]


def _numbered(text: str, problems: list[dict[str, Any]]) -> list[dict[str, Any]]:
    bad = {p["line"] for p in problems if p["line"]}
    return [{"n": n, "text": t, "bad": n in bad} for n, t in enumerate(text.splitlines(), 1)]


def _model_page(
    request: Request, viewer: Viewer, shown_id: int | None, score: str = "", **extra: Any
) -> HTMLResponse:
    with state_of(request).store.connect() as conn:
        published = extra.pop("published", None)
        try:
            shown = get_version(conn, shown_id) if shown_id is not None else None
            just_published = get_version(conn, published) if published else None
        except NotFoundError as exc:
            raise WebDenied(404, str(exc)) from None
        # a version asked for by id is shown among its own score's versions
        name = shown.score_name if shown is not None else picked_score(conn, score)
        active = _active(conn, name)
        shown = shown or active
        versions = list_versions(conn, name)
        names = picker_names(conn)
        primary = primary_score(conn)
        retired = [s.name for s in list_scores(conn) if s.retired]
    draft = extra.pop("draft", None)
    draft = draft if draft is not None else (active.yaml if active else "")
    if "builder" not in extra and viewer.can("model.validate"):
        extra["builder"] = builder_context(request, draft)
    return page(
        request,
        viewer,
        "model.html",
        active=active,
        shown=shown,
        shown_lines=_numbered(shown.yaml, []) if shown else [],
        versions=list(reversed(versions)),
        just_published=just_published,
        draft=draft,
        score_name=name,
        score=name if names else "",
        score_names=names,
        # the score the forms post: named whenever it is not the primary (a retired score's page has no picker)
        score_label=name if names or name != primary else "",
        is_primary=name == primary,
        retired_names=retired,
        **extra,
    )


@router.get("/model", response_class=HTMLResponse, include_in_schema=False)
def model_page(
    request: Request,
    viewer: ModelReader,
    version: Annotated[int | None, Query(ge=1)] = None,
    published: Annotated[int | None, Query(ge=1)] = None,
    score: ScoreParam = "",
) -> HTMLResponse:
    return _model_page(request, viewer, version, score, published=published)


@router.get("/model/diff", response_class=HTMLResponse, include_in_schema=False)
def model_diff(
    request: Request, viewer: ModelReader, old: Annotated[int, Query(ge=1)], new: Annotated[int, Query(ge=1)]
) -> HTMLResponse:
    with state_of(request).store.connect() as conn:
        try:
            a, b = get_version(conn, old), get_version(conn, new)
        except NotFoundError as exc:
            raise WebDenied(404, str(exc)) from None
    diff = _diff(a.label, model_of(a.yaml, a.label), a.yaml, b.label, model_of(b.yaml, b.label), b.yaml)
    if request.headers.get("hx-request") == "true":
        return page(request, viewer, "model_diff.html", diff=diff)
    return _model_page(request, viewer, b.id, diff=diff)


def check_result(request: Request, draft: str, score: str = "") -> dict[str, Any]:
    """A draft checked: every problem at its line and column, or a summary and the diff to the active
    model of the score ``score`` (the primary for "")."""
    model, problems = _check(draft)
    result: dict[str, Any] = {
        "ok": model is not None,
        "problems": problems,
        "lines": _numbered(draft, problems),
    }
    if model is not None:
        result["summary"] = (
            f"model '{model.model}', {len(model.fit)} fit and {len(model.engagement)} engagement rules"
        )
        with state_of(request).store.connect() as conn:
            active = _active(conn, picked_score(conn, score))
        if active is not None:
            result["diff"] = _diff(
                active.label, model_of(active.yaml, active.label), active.yaml, DRAFT_LABEL, model, draft
            )
    return result


@router.post("/model/validate", response_class=HTMLResponse, include_in_schema=False)
def model_validate(
    request: Request, viewer: ModelValidator, draft: Draft, score: ScoreField = ""
) -> HTMLResponse:
    """Every problem of a draft at once, with line and column; a valid draft is diffed against the active."""
    result = check_result(request, draft, score)
    if request.headers.get("hx-request") == "true":
        return page(request, viewer, "model_check.html", check=result)
    return _model_page(request, viewer, None, score, check=result, draft=draft)


@router.post("/model/backtest", response_class=HTMLResponse, include_in_schema=False)
def model_backtest(
    request: Request,
    viewer: ModelValidator,
    draft: Draft,
    outcome: Annotated[str, Form(pattern="^(opportunity|sql|won)$")] = "opportunity",
    score: ScoreField = "",
) -> HTMLResponse:
    """Replay the last weeks with the draft and with the score's active model, each as that score's team
    runs the lifecycle: MQLs per week, precision, recall."""
    model, problems = _check(draft)
    store = state_of(request).store
    result: dict[str, Any] = {
        "ok": model is not None,
        "problems": problems,
        "lines": _numbered(draft, problems),
    }
    if model is not None:
        with store.connect() as conn:
            name = picked_score(conn, score)
            active = _active(conn, name)
        baseline = (active.label, model_of(active.yaml, active.label)) if active else None
        try:
            result["backtest"] = measure.backtest_draft(
                store, (DRAFT_LABEL, model), baseline, outcome, score=name
            )
            result["backtest_chart"] = measure.backtest_chart(result["backtest"])
        except (ValueError, ModelError) as exc:  # ModelError: a lifecycle without an MQL stage to count
            result["backtest_problem"] = str(exc)
        result["summary"] = (
            f"model '{model.model}', {len(model.fit)} fit and {len(model.engagement)} engagement rules"
        )
    if request.headers.get("hx-request") == "true":
        return page(request, viewer, "model_check.html", check=result)
    return _model_page(request, viewer, None, score, check=result, draft=draft)


def _valid_or_page(request: Request, viewer: Viewer, draft: str, score: str) -> ScoringModel | Response:
    """The draft as a model, or the model page showing its problems (422)."""
    model, problems = _check(draft)
    if model is not None:
        return model
    check = {"ok": False, "problems": problems, "lines": _numbered(draft, problems)}
    response = _model_page(request, viewer, None, score, check=check, draft=draft)
    response.status_code = 422
    return response


@router.post("/model/publish", include_in_schema=False)
def model_publish(
    request: Request, viewer: ModelPublisher, draft: Draft, note: Annotated[str, Form(max_length=500)] = "",
    score: ScoreField = "",
) -> Response:  # fmt: skip
    """Publish a valid draft as the score's next version and rescore every lead's score of that name
    (audited by ``publish``)."""
    store = state_of(request).store
    with store.connect() as conn:
        name = picked_score(conn, score)
        picked = score_query(conn, name)
    model = _valid_or_page(request, viewer, draft, name)
    if isinstance(model, Response):
        return model
    # the author's text as written: a valid draft names no file (a text is not the server's files to read)
    try:
        version, _ = publish(store, model, text=draft, note=note, actor=viewer.email, score_name=name)
    except StoreError as exc:  # a lifecycle naming a retired score
        raise WebDenied(409, str(exc)) from None
    return RedirectResponse(f"/model?published={version.id}{'&' if picked else ''}{picked}", status_code=303)


@router.post("/model/retire", include_in_schema=False)
def model_retire(request: Request, viewer: ModelPublisher, score: ScoreField = "") -> Response:
    """Retire the score picked (never the primary, nor one the lifecycle names: a 409 saying why); audited."""
    store = state_of(request).store
    with store.connect() as conn:
        name = picked_score(conn, score)
    try:
        retire_score(store, name, actor=viewer.email)
    except StoreError as exc:
        raise WebDenied(409, str(exc)) from None
    return RedirectResponse(f"/model?score={name}", status_code=303)


@router.post("/model/shadow", include_in_schema=False)
def model_shadow(
    request: Request, viewer: ModelPublisher, draft: Draft, note: Annotated[str, Form(max_length=500)] = "",
    score: ScoreField = "",
) -> Response:  # fmt: skip
    """Publish a valid draft as a shadow of the score: scored beside its active version, compared on the
    review page."""
    store = state_of(request).store
    with store.connect() as conn:
        name = picked_score(conn, score)
        picked = score_query(conn, name)
    model = _valid_or_page(request, viewer, draft, name)
    if isinstance(model, Response):
        return model
    try:
        publish_shadow(store, model, text=draft, note=note, actor=viewer.email, score_name=name)
    except StoreError as exc:
        raise WebDenied(409, str(exc)) from None
    return RedirectResponse(f"/review{'?' if picked else ''}{picked}", status_code=303)


def show_draft(request: Request, viewer: Viewer, draft: str, score: str = "") -> HTMLResponse:
    """The model page with ``draft`` in the editor for the score ``score`` (a draft made elsewhere: the
    model review)."""
    return _model_page(request, viewer, None, score, draft=draft)


def show_checked(request: Request, viewer: Viewer, draft: str, score: str = "", **extra: Any) -> HTMLResponse:
    """The model page of the score ``score`` (the primary for "") with ``draft`` in the editor and
    ``extra`` (a check, the builder's form)."""
    return _model_page(request, viewer, None, score, draft=draft, **extra)
