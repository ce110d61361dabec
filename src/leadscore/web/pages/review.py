"""Model review: health alerts, shadow models beside the active one (promote, stop, roll back), and
proposals from sales feedback, outcomes and capacity, each with its backtest, accepted into a draft; of the
score picked (``?score=NAME``: its alerts, versions, shadows and proposals; a draft of its proposals opens
in the model page as that score's)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from leadscore.api.state import state_of
from leadscore.errors import LeadscoreError, StoreError
from leadscore.learn.edits import MIN_SUPPORT, Edit
from leadscore.model import dump_model
from leadscore.scoring.pipeline import activate_version, active_model
from leadscore.scoring.run import now_ms
from leadscore.scoring.shadow import stop_shadow
from leadscore.store.alerts import list_alerts
from leadscore.store.model_versions import get_version, list_versions
from leadscore.store.score_names import picker_names, resolve
from leadscore.store.shadows import shadow_versions
from leadscore.web.data import measure, remembered
from leadscore.web.data.remembered import SCORING_INPUTS, Pending, remembered_within
from leadscore.web.pages.model import score_query, show_draft
from leadscore.web.params import ScoreField, ScoreParam
from leadscore.web.render import page
from leadscore.web.security import Evaluator, ModelPublisher, WebDenied

router = APIRouter()
OUTCOME = "sql"  # acceptance by sales
EditValue = Annotated[list[str], Form(max_length=300)]


def _edit(value: str) -> Edit:
    """An edit as the form sends it: ``kind|rule|number``."""
    kind, _, rest = value.partition("|")
    rule, _, number = rest.partition("|")
    try:
        amount = float(number) if number else None
    except ValueError:
        raise WebDenied(422, f"bad proposal {value[:100]!r}") from None
    if kind == "remove_rule" and rule:
        return Edit(kind, rule)
    if kind == "points" and rule and amount is not None:
        return Edit(kind, rule, points=amount)
    if kind == "threshold" and amount is not None:
        return Edit(kind, threshold=amount)
    raise WebDenied(422, f"bad proposal {value[:100]!r}")


def edit_value(edit: Edit) -> str:
    number = edit.points if edit.kind == "points" else edit.threshold
    return f"{edit.kind}|{edit.rule or ''}|{'' if number is None else number}"


@router.get("/review", response_class=HTMLResponse, include_in_schema=False)
def review_page(
    request: Request,
    viewer: Evaluator,
    proposals: Annotated[int, Query(ge=0, le=1)] = 0,
    min_support: Annotated[int, Query(ge=1, le=100_000)] = MIN_SUPPORT,
    score: ScoreParam = "",
) -> HTMLResponse:
    state = state_of(request)
    store, settings = state.store, state.settings
    context: dict[str, Any] = {"edit_value": edit_value, "capacity": settings.alerts.capacity_per_week}
    with store.connect() as conn:
        # the score picked: its active version, its health alerts (``volume:NAME``), versions and shadows
        name = resolve(conn, score or None)
        active = active_model(conn, name)
        alerts = list_alerts(conn, 50, score=name)
        context.update(
            active=active, alerts=alerts, versions=list(reversed(list_versions(conn, name))),
            score=score, score_names=picker_names(conn), keep={"proposals": proposals} if proposals else {},
        )  # fmt: skip
        shadows: list[tuple[Any, int]] = []
        for version_id in sorted(shadow_versions(conn)):
            if get_version(conn, version_id).score_name != name:
                continue
            from leadscore.learn.shadow_compare import compare  # the learning stack, where it is needed

            try:
                cmp = compare(conn, store.sources(), version_id, outcome=OUTCOME,
                              horizon_ms=measure.HORIZON_DAYS * measure.DAY_MS, now_ms=now_ms())  # fmt: skip
            except LeadscoreError as exc:
                context.setdefault("problems", []).append(str(exc))
            else:
                shadows.append((cmp, version_id))
        context["shadows"] = shadows
        if proposals and active is not None and active.version is not None:
            start, end = measure.period(store)
            per_week, label, yaml = (
                settings.alerts.capacity_per_week,
                active.version.label,
                active.version.yaml,
            )

            url = store.engine.url.render_as_string(hide_password=False)

            def proposed() -> Any:
                # in a worker process: backtesting every proposal is Python that a thread of this server
                # would run against every request beside it (remembered.in_child)
                return remembered.in_child(
                    proposals_of, url, yaml, label, start, end, per_week, min_support, name
                )

            # backtests every proposal: once per state of what it reads, in the background when it takes
            # longer than the page waits (the page says so)
            try:
                found = remembered_within(
                    conn,
                    SCORING_INPUTS,
                    (
                        "review",
                        active.version.label,
                        active.version.sha256,
                        start,
                        end,
                        per_week,
                        min_support,
                        name,
                    ),
                    proposed,
                    settings.report_wait_s,
                    errors=(LeadscoreError, ValueError),
                )
            except (LeadscoreError, ValueError) as exc:
                context["problem"] = str(exc)
            else:
                if isinstance(found, Pending):
                    context["pending"] = found.started_ms
                    if (
                        found.previous is not None
                    ):  # shown, with when it was computed, until the new one is done
                        context.update(review=found.previous, computed_ms=found.previous_ms)
                else:
                    context["review"] = found
    context.update(horizon=measure.HORIZON_DAYS, weeks=measure.PERIOD_DAYS // 7)
    return page(request, viewer, "review.html", **context)


def proposals_of(
    url: str, yaml: str, label: str, start: int, end: int, per_week: float | None, min_support: int,
    score: str | None = None,
) -> Any:  # fmt: skip
    """The model review's proposals for a version of the score ``score``, each backtested as that score's
    team runs the lifecycle (``learn.review.review``), in a process of its own (``remembered.in_child``):
    the store opened from its URL, the model parsed from the version's YAML."""
    from leadscore.learn.review import review
    from leadscore.scoring.run import model_of
    from leadscore.store import Store

    store = Store.from_url(url)
    try:
        with store.connect() as conn:
            return review(
                conn,
                store.sources(),
                model_of(yaml, label),
                label,
                start_ms=start,
                end_ms=end,
                outcome=OUTCOME,
                horizon_ms=measure.HORIZON_DAYS * measure.DAY_MS,
                per_week=per_week,
                min_support=min_support,
                score=score,
            )
    finally:
        store.dispose()


@router.post("/review/draft", response_class=HTMLResponse, include_in_schema=False)
def review_draft(
    request: Request, viewer: ModelPublisher, edit: EditValue, score: ScoreField = ""
) -> HTMLResponse:
    """The score's active model with the chosen proposals applied, opened in the model page's editor as
    that score's (validate, backtest, publish it there)."""
    from leadscore.learn.review import draft

    edits = [_edit(v) for v in edit[:200]]
    with state_of(request).store.connect() as conn:
        try:
            name = resolve(conn, score or None)
        except LeadscoreError as exc:
            raise WebDenied(404, str(exc)) from None
        active = active_model(conn, name)
    if active is None:
        raise WebDenied(409, "no model is active")
    try:
        model = draft(active.model, edits, "Draft from the model review.")
    except LeadscoreError as exc:
        raise WebDenied(422, str(exc)) from None
    return show_draft(request, viewer, dump_model(model), name)


Version = Annotated[int, Form(ge=1)]


@router.post("/review/activate", include_in_schema=False)
def review_activate(
    request: Request, viewer: ModelPublisher, version: Version,
    action: Annotated[str, Form(pattern="^(promoted|rolled back)$")],
) -> Response:  # fmt: skip
    """Promote a shadow, or roll back to an earlier version (rescoring every lead with it); then the review
    of the version's score."""
    store = state_of(request).store
    with store.connect() as conn:
        try:
            picked = score_query(conn, get_version(conn, version).score_name)
        except LeadscoreError as exc:
            raise WebDenied(404, str(exc)) from None
    try:
        activate_version(store, version, action=action, actor=viewer.email)
    except StoreError as exc:  # its lifecycle names a retired score
        raise WebDenied(409, str(exc)) from None
    return RedirectResponse(f"/review{'?' if picked else ''}{picked}", status_code=303)


@router.post("/review/stop-shadow", include_in_schema=False)
def review_stop_shadow(request: Request, viewer: ModelPublisher, version: Version) -> Response:
    try:
        stopped = stop_shadow(state_of(request).store, version, actor=viewer.email)
    except LeadscoreError as exc:
        raise WebDenied(404, str(exc)) from None
    with state_of(request).store.connect() as conn:
        picked = score_query(conn, stopped.score_name)
    return RedirectResponse(f"/review{'?' if picked else ''}{picked}", status_code=303)
