"""Notification settings: each user's own on their profile page, and any user's for an admin (from the
Users page) or, for a seller (role sales), the manager of a team the seller sells in. What is sent is ``lifecycle.notify``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from leadscore.api.state import state_of
from leadscore.errors import NotFoundError
from leadscore.lifecycle.desk import managed_teams
from leadscore.model import Lifecycle
from leadscore.scoring.pipeline import active_model
from leadscore.scoring.run import now_ms
from leadscore.store.audit import audit
from leadscore.store.notifications import MAX_URL, NotificationSettings, read_settings, save_settings
from leadscore.store.people import normalise_email
from leadscore.store.users import User, find_user, get_user
from leadscore.web.render import page
from leadscore.web.security import LeadsReader, Viewer, WebDenied

router = APIRouter()
HOURS = tuple(range(24))
Flag = Annotated[str, Form(max_length=8)]
SELLER_ROLE = "sales"  # whose settings a team's manager may change


def _may_edit(request: Request, viewer: Viewer, user: User) -> bool:
    """The user themself, an admin, or the manager of a team in which the user is a seller."""
    if viewer.role == "admin" or user.email == normalise_email(viewer.email):
        return True
    with state_of(request).store.connect() as conn:
        active = active_model(conn)
    lifecycle = active.model.lifecycle if active is not None else None
    return lifecycle is not None and _manages(lifecycle, viewer.email, user)


def _manages(lifecycle: Lifecycle, manager: str, user: User) -> bool:
    """Whether ``manager`` manages a team in which ``user`` sells, ``user`` being a seller (role sales).
    The teams are the model's, which a marketing user may publish: naming an admin or a marketer as a
    seller of one's own team must give no power over their settings."""
    if user.role != SELLER_ROLE:
        return False
    teams = managed_teams(lifecycle, manager)
    return any(
        normalise_email(s.email) == user.email for t in lifecycle.teams if t.id in teams for s in t.sellers
    )


def _target(request: Request, viewer: Viewer, user_id: int | None) -> User:
    with state_of(request).store.connect() as conn:
        try:
            user = get_user(conn, user_id) if user_id is not None else find_user(conn, viewer.email)
        except NotFoundError:
            raise WebDenied(404, f"There is no user {user_id}.") from None
    if user is None:
        raise WebDenied(404, "Your user is gone; sign in again.")
    if not _may_edit(request, viewer, user):
        raise WebDenied(403, "Only the user, an admin or the manager of their team may change this.")
    return user


def _form(
    request: Request,
    viewer: Viewer,
    user: User,
    action: str,
    found: NotificationSettings,
    status: int = 200,
    **extra: object,
) -> HTMLResponse:
    return page(
        request,
        viewer,
        "notifications.html",
        status=status,
        user=user,
        own=user.email == normalise_email(viewer.email),
        action=action,
        settings=found,
        hours=HOURS,
        max_url=MAX_URL,
        **extra,
    )


def _team(request: Request, viewer: Viewer) -> list[tuple[str, str, int | None, bool]]:
    """The sellers of the teams the viewer manages: (name, e-mail, user id when the viewer may change
    their settings, whether they are a user)."""
    with state_of(request).store.connect() as conn:
        active = active_model(conn)
        lifecycle = active.model.lifecycle if active is not None else None
        if lifecycle is None:
            return []
        teams = managed_teams(lifecycle, viewer.email)
        out = []
        for team in lifecycle.teams:
            if team.id in teams:
                for seller in team.sellers:
                    user = find_user(conn, seller.email)
                    editable = user.id if user and _manages(lifecycle, viewer.email, user) else None
                    out.append((f"{seller.name} ({team.name})", seller.email, editable, user is not None))
    return out


def _show(request: Request, viewer: Viewer, user_id: int | None, action: str, saved: str) -> HTMLResponse:
    user = _target(request, viewer, user_id)
    with state_of(request).store.connect() as conn:
        found = read_settings(conn, user.id)
    team = _team(request, viewer) if user_id is None else []
    return _form(request, viewer, user, action, found, saved=saved == "1", team=team)


def _save(
    request: Request,
    viewer: Viewer,
    user_id: int | None,
    action: str,
    values: dict[str, str],
    digest_hour: int,
) -> Response:
    user = _target(request, viewer, user_id)
    url = values["slack_url"].strip() or None
    try:
        found = NotificationSettings(
            mail_immediate=values["mail_immediate"] == "on",
            mail_digest=values["mail_digest"] == "on",
            slack_url=url,
            slack_immediate=values["slack_immediate"] == "on",
            slack_digest=values["slack_digest"] == "on",
            digest_hour=digest_hour,
        )
    except ValueError as exc:
        with state_of(request).store.connect() as conn:
            current = read_settings(conn, user.id)
        return _form(request, viewer, user, action, current, status=400, error=str(exc))
    stamp = now_ms()
    with state_of(request).store.begin() as conn:
        save_settings(conn, user.id, found, stamp)
        audit(conn, stamp, viewer.email, "user.notifications", user.email, **_summary(found))
    return RedirectResponse(f"{action}?saved=1", status_code=303)


def _summary(found: NotificationSettings) -> dict[str, object]:
    # the webhook URL is a secret (it is all a sender needs): the audit log says only whether one is set
    return {
        "mail_immediate": found.mail_immediate,
        "mail_digest": found.mail_digest,
        "slack_immediate": found.slack_immediate,
        "slack_digest": found.slack_digest,
        "slack_url_set": found.slack_url is not None,
        "digest_hour": found.digest_hour,
    }


Saved = Annotated[str, Query(pattern="^(|1)$")]
SlackUrl = Annotated[str, Form(max_length=MAX_URL + 1)]
Hour = Annotated[int, Form(ge=0, le=23)]


@router.get("/profile", response_class=HTMLResponse, include_in_schema=False)
def profile(request: Request, viewer: LeadsReader, saved: Saved = "") -> HTMLResponse:
    return _show(request, viewer, None, "/profile", saved)


@router.post("/profile", include_in_schema=False)
def save_profile(
    request: Request,
    viewer: LeadsReader,
    mail_immediate: Flag = "",
    mail_digest: Flag = "",
    slack_url: SlackUrl = "",
    slack_immediate: Flag = "",
    slack_digest: Flag = "",
    digest_hour: Hour = 8,
) -> Response:
    values = dict(
        mail_immediate=mail_immediate,
        mail_digest=mail_digest,
        slack_url=slack_url,
        slack_immediate=slack_immediate,
        slack_digest=slack_digest,
    )
    return _save(request, viewer, None, "/profile", values, digest_hour)


@router.get("/users/{user_id}/notifications", response_class=HTMLResponse, include_in_schema=False)
def user_notifications(
    request: Request, viewer: LeadsReader, user_id: int, saved: Saved = ""
) -> HTMLResponse:
    return _show(request, viewer, user_id, f"/users/{user_id}/notifications", saved)


@router.post("/users/{user_id}/notifications", include_in_schema=False)
def save_user_notifications(
    request: Request,
    viewer: LeadsReader,
    user_id: int,
    mail_immediate: Flag = "",
    mail_digest: Flag = "",
    slack_url: SlackUrl = "",
    slack_immediate: Flag = "",
    slack_digest: Flag = "",
    digest_hour: Hour = 8,
) -> Response:
    values = dict(
        mail_immediate=mail_immediate,
        mail_digest=mail_digest,
        slack_url=slack_url,
        slack_immediate=slack_immediate,
        slack_digest=slack_digest,
    )
    return _save(request, viewer, user_id, f"/users/{user_id}/notifications", values, digest_hour)
