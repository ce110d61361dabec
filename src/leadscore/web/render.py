"""Templates (Jinja2, autoescaped) and the helpers every page uses to render."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from leadscore import __version__
from leadscore.web.security import Viewer

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")

# (path, label, permission): the navigation bar shows the pages a role may open
NAV = (
    ("/leads", "Leads", "leads.read"),
    ("/handoff", "Handoff", "leads.read"),
    ("/funnel", "Funnel", "leads.read"),
    ("/accounts", "Accounts", "leads.read"),
    ("/model", "Model", "model.read"),
    ("/evaluation", "Evaluation", "evaluate"),
)


def fmt_time(ms: int | None, with_time: bool = True) -> str:
    if ms is None:
        return "—"
    stamp = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return stamp.strftime("%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d")


def fmt_num(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def fmt_signed(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "—"
    text = f"{value:+,.{digits}f}"
    return "±0" if text.lstrip("+-") == f"{0:.{digits}f}" else text.replace("-", "−")


templates.env.filters["time"] = fmt_time
templates.env.filters["num"] = fmt_num
templates.env.filters["signed"] = fmt_signed
templates.env.globals["version"] = __version__


def page(request: Request, viewer: Viewer, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """Render a template with the viewer, the navigation allowed to them, and the current path."""
    nav = [(path, label) for path, label, permission in NAV if viewer.can(permission)]
    return templates.TemplateResponse(
        request,
        template,
        {"viewer": viewer, "nav": nav, "path": request.url.path, "status_code": status, **context},
        status_code=status,
    )
