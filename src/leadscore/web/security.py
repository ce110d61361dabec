"""Who is asking and may they: the session cookie, the per-route permission guard, CSRF, security headers.

Every dashboard route declares exactly one guard as a dependency: ``Guard("leads.read")`` (a permission
from ``auth.roles.PERMISSIONS``) or ``Guard(PUBLIC)`` (sign-in). The authorisation test reads the guards
from the app's routes, so a route without one fails it.

- No session: a page request is redirected to sign-in (303); an htmx or POST request gets 401.
- A session without the permission: 403.
- Every POST needs the session's CSRF token (form field ``csrf_token`` or header ``X-CSRF-Token``).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from leadscore.api.state import state_of
from leadscore.auth.roles import allowed
from leadscore.auth.sessions import Session, csrf_ok, current
from leadscore.scoring.run import now_ms

SESSION_COOKIE = "leadscore_session"
SIGNIN_COOKIE = "leadscore_signin"  # double-submit token of the sign-in form (before any session exists)
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
PUBLIC = "public"
SAFE_METHODS = frozenset({"GET", "HEAD"})

CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


def cookie_secure(request: Request) -> bool:
    """Whether cookies are marked Secure: ``LEADSCORE_COOKIE_SECURE``, else when served over https."""
    configured = state_of(request).settings.cookies.secure
    return request.url.scheme == "https" if configured is None else configured


class WebDenied(Exception):
    """A dashboard request refused: rendered as an HTML page (or a redirect to sign-in)."""

    def __init__(self, status: int, message: str, *, signin: bool = False) -> None:
        super().__init__(message)
        self.status, self.message, self.signin = status, message, signin


@dataclass(frozen=True)
class Viewer:
    """The signed-in user of a request, with what the pages need to render links and forms."""

    session: Session | None

    @property
    def signed_in(self) -> bool:
        return self.session is not None

    @property
    def email(self) -> str:
        return self.session.user.email if self.session else ""

    @property
    def name(self) -> str:
        return self.session.user.name if self.session else ""

    @property
    def role(self) -> str:
        return self.session.user.role if self.session else ""

    @property
    def csrf(self) -> str:
        return self.session.csrf if self.session else ""

    def can(self, permission: str) -> bool:
        return self.session is not None and allowed(self.session.user.role, permission)


def safe_next(target: str | None) -> str:
    """A local path to return to after sign-in; anything else (other hosts, ``//x``) becomes /leads."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/leads"


async def _submitted_csrf(request: Request) -> str | None:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        value = (await request.form()).get(CSRF_FIELD)
        return value if isinstance(value, str) else None
    return None


class Guard:
    """The one dependency every dashboard route declares: authentication, its permission, CSRF."""

    def __init__(self, permission: str) -> None:
        self.permission = permission

    def __repr__(self) -> str:
        return f"Guard({self.permission!r})"

    async def __call__(self, request: Request) -> Viewer:
        unsafe = request.method not in SAFE_METHODS
        if self.permission == PUBLIC:
            if unsafe and not signin_csrf_ok(request, await _submitted_csrf(request)):
                raise WebDenied(403, "The form expired; reload the page and try again.")
            return Viewer(_session(request))
        session = _session(request)
        if session is None:
            htmx = request.headers.get("hx-request") == "true"
            raise WebDenied(401, "Sign in to continue.", signin=not unsafe and not htmx)
        viewer = Viewer(session)
        if not viewer.can(self.permission):
            raise WebDenied(403, f"Your role ({viewer.role}) does not allow this ({self.permission}).")
        if unsafe and not csrf_ok(session, await _submitted_csrf(request)):
            raise WebDenied(403, "The form expired or did not come from this site; reload and try again.")
        return viewer


def _session(request: Request) -> Session | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    with state_of(request).store.connect() as conn:
        return current(conn, token, now_ms())


def new_signin_token() -> str:
    return secrets.token_urlsafe(24)


def signin_csrf_ok(request: Request, submitted: str | None) -> bool:
    expected = request.cookies.get(SIGNIN_COOKIE)
    return bool(expected and submitted) and hmac.compare_digest(str(expected), str(submitted))


def signin_url(request: Request) -> str:
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"/signin?next={quote(path, safe='')}"


# a route names its guard by taking one of these as its viewer parameter
Anyone = Annotated[Viewer, Depends(Guard(PUBLIC))]
LeadsReader = Annotated[Viewer, Depends(Guard("leads.read"))]
LeadsExporter = Annotated[Viewer, Depends(Guard("leads.export"))]
FeedbackGiver = Annotated[Viewer, Depends(Guard("feedback"))]
ModelReader = Annotated[Viewer, Depends(Guard("model.read"))]
ModelValidator = Annotated[Viewer, Depends(Guard("model.validate"))]
ModelPublisher = Annotated[Viewer, Depends(Guard("model.publish"))]
Evaluator = Annotated[Viewer, Depends(Guard("evaluate"))]
DeadLetterManager = Annotated[Viewer, Depends(Guard("deadletters.manage"))]
KeyManager = Annotated[Viewer, Depends(Guard("keys.manage"))]
UserManager = Annotated[Viewer, Depends(Guard("users.manage"))]


class SecurityHeaders:
    """Adds CSP (no inline scripts or styles), frame-ancestors, nosniff and Referrer-Policy to every
    response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # pages hold personal data: never cached; static files and the JSON API keep their own policy
        cacheable = scope["path"].startswith(("/static/", "/v1/"))

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in HEADERS if h[0] not in present)
                if not cacheable and b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, wrapped)
