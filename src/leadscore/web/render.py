"""Templates (Jinja2, autoescaped) and the helpers every page uses to render."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from leadscore import __version__
from leadscore.lifecycle.sla import overdue, sla_clock
from leadscore.scoring.pipeline import active_model
from leadscore.scoring.run import now_ms
from leadscore.scoring.shown import cut_text, shown_change
from leadscore.store.alerts import open_alerts
from leadscore.store.health import rescoring_lag, scoring_lag
from leadscore.web.data.names import lead_name
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
    ("/review", "Review", "evaluate"),
    ("/deadletters", "Dead letters", "deadletters.manage"),
    ("/tracking", "Tracking code", "keys.manage"),
    ("/users", "Users", "users.manage"),
    ("/keys", "API keys", "keys.manage"),
)


def fmt_time(ms: int | None, with_time: bool = True) -> str:
    if ms is None:
        return "—"
    stamp = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return stamp.strftime("%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d")


def fmt_num(value: float | None, digits: int = 1) -> str:
    """A number as the pages show it: cut, never rounded up (``scoring.shown.cut_text``)."""
    return cut_text(value, digits, grouping=True)


def fmt_threshold(value: float | None) -> str:
    """A threshold as the model writes it, every decimal shown (62.5, not the 62 of ``num(0)``: an account
    shown at 62.3 beside "MQA at 62" and not an MQA contradicted itself; scores are cut, ``fmt_num``)."""
    if value is None:
        return "—"
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def fmt_signed(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "—"
    text = f"{value:+,.{digits}f}"
    return "±0" if text.lstrip("+-") == f"{0:.{digits}f}" else text.replace("-", "−")


templates.env.filters["time"] = fmt_time
templates.env.filters["num"] = fmt_num
templates.env.filters["signed"] = fmt_signed
templates.env.filters["change"] = shown_change  # score after|change(score before): as the two are shown
templates.env.filters["threshold"] = fmt_threshold
templates.env.filters["lead_name"] = lead_name
templates.env.globals["version"] = __version__
templates.env.globals["overdue"] = overdue  # past an SLA: the escalation's moment
templates.env.globals["sla_clock"] = sla_clock  # the hours left or past due, as the digest says them


def page(request: Request, viewer: Viewer, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """Render a template with the viewer, the navigation allowed to them, the current path and the
    pipeline's warnings (the banner)."""
    nav = [(path, label) for path, label, permission in NAV if viewer.can(permission)]
    return templates.TemplateResponse(
        request,
        template,
        {
            "viewer": viewer,
            "nav": nav,
            "path": request.url.path,
            "status_code": status,
            # called by the base template only: fragments (htmx) do not pay for the queries
            "pipeline": lambda: pipeline_warnings(request, viewer),
            **context,
        },
        status_code=status,
    )


@dataclass(frozen=True)
class PipelineWarnings:
    """What the banner says: scoring lags by ``lag_s`` (when past the threshold), stored scores have
    been due to change with time for ``stale_s`` beyond a clock tick (when past the threshold), dead
    letters wait, no model is published (events are stored but nobody is scored)."""

    lag_s: float | None
    dead_letters: int
    no_model: bool = False
    alerts: tuple[str, ...] = ()  # the model's open health alerts (learn/health.py)
    stale_s: float | None = None

    def __bool__(self) -> bool:
        return (
            self.lag_s is not None
            or self.stale_s is not None
            or self.dead_letters > 0
            or self.no_model
            or bool(self.alerts)
        )


def pipeline_warnings(request: Request, viewer: Viewer) -> PipelineWarnings:
    """Signed-in viewers are warned when scoring lags more than ``LEADSCORE_LAG_ALERT_S``, stored
    scores have been due to change with time for that long beyond a clock tick (no clock runs: every
    screen would show them as they were), messages wait as dead letters or no model is published (a
    stall nobody sees is the failure this exists for)."""
    state = getattr(request.app.state, "leadscore", None)
    if not viewer.signed_in or state is None:
        return PipelineWarnings(None, 0)
    settings = state.settings
    with state.store.connect() as conn:
        now = now_ms()
        lag, dead = scoring_lag(conn, now)
        stale = rescoring_lag(conn, now, settings.clock_tick_s)
        unscored = active_model(conn) is None
        alerts = tuple(str(a["message"]) for a in open_alerts(conn).values())
    limit = settings.lag_alert_s
    return PipelineWarnings(
        lag if lag > limit else None, dead, unscored, alerts, stale if stale > limit else None
    )
