"""Turning what happened (a stage move, a crossing, an assignment, an SLA breach, a segment change) into
outbox rows for the actions the model declares. Templates are rendered now, so every retry sends the
same message; each row's key is derived from the database row that caused it, so doing the same work
twice enqueues nothing new."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import jinja2.sandbox
from sqlalchemy import Connection

from leadscore.lifecycle import notify
from leadscore.lifecycle.assignment import Assigned, assign, people
from leadscore.lifecycle.context import lead_context
from leadscore.lifecycle.mail import one_line
from leadscore.lifecycle.score_stages import lead_team_score
from leadscore.model import Action, ScoringModel, duration_seconds
from leadscore.model.lifecycle import Webhook
from leadscore.settings import Settings
from leadscore.store.lifecycle_tables import assignment_stage
from leadscore.store.outbox import enqueue, ran_since

RENDERED_CHARS = 100_000  # of one rendered template: a mail or webhook text, far beyond any real one
MAX_EXPONENT = 1_024  # of an integer power in a template (10 ** 10 ** 9 is hours of CPU)


class TemplateFailed(Exception):
    """A model's template could not be rendered for a lead; its message says why."""


class _Sandbox(jinja2.sandbox.SandboxedEnvironment):
    """The sandbox, with repetition and powers bounded: the model's author writes the templates, and
    ``'x' * 10 ** 9`` was a gigabyte in the lifecycle runner."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int) and abs(right) > MAX_EXPONENT:
            raise jinja2.sandbox.SecurityError(f"a power of more than {MAX_EXPONENT}")
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if (
                    isinstance(seq, str | list | tuple)
                    and isinstance(n, int)
                    and len(seq) * n > RENDERED_CHARS
                ):
                    raise jinja2.sandbox.SecurityError(f"a repetition of more than {RENDERED_CHARS:,} items")
        return super().call_binop(context, operator, left, right)


_ENV = _Sandbox(autoescape=False, keep_trailing_newline=True)


def render(template: str, context: dict[str, Any], what: str = "template") -> str:
    """The template rendered, at most ``RENDERED_CHARS`` of it; TemplateFailed saying ``what`` failed and
    why (the template is only parsed when published: a field it reads may be missing for a lead, a
    division may be by zero)."""
    try:
        out: list[str] = []
        size = 0
        for part in _ENV.from_string(template).generate(**context):
            out.append(part)
            size += len(part)
            if size > RENDERED_CHARS:
                raise TemplateFailed(
                    f"the {what} template failed: it rendered over {RENDERED_CHARS:,} characters"
                )
        return "".join(out)
    except TemplateFailed:
        raise
    except Exception as exc:  # whatever an expression raises: the author's, not the runner's failure
        raise TemplateFailed(f"the {what} template failed: {type(exc).__name__}: {exc}"[:1000]) from None


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


def _webhook_row(
    hook: Webhook, key: str, kind: str, name: str, context: dict[str, Any], now_ms: int
) -> dict[str, Any]:
    if hook.format == "slack":
        text = render(hook.text, context, "text") if hook.text else _default_text(kind, context)
        body: dict[str, Any] = {"text": text}
    else:
        body = {
            "id": key,
            "type": kind,
            "action": name,
            "occurred_at": iso(now_ms),
            **{
                k: context[k]
                for k in ("lead", "move", "assignment", "crossing", "segment", "reasons")
                if k in context
            },
        }
        if hook.text:
            body["text"] = render(hook.text, context, "text")
    target = hook.url or f"env:{hook.url_env}"
    return {"channel": "webhook", "target": target, "payload": {"body": body, "event": kind}}


def _default_text(kind: str, context: dict[str, Any]) -> str:
    lead = context["lead"]
    told = f"{one_line(lead['name'])} ({one_line(lead['company'] or 'no company')})"
    return f"{kind}: {told}, score {lead['score']}, stage {lead['stage']}"


def _mail_row(action: Action, context: dict[str, Any]) -> dict[str, Any]:
    mail = action.mail
    assert mail is not None
    to: str | None
    if mail.to == "lead":
        to = context["lead"]["email"]
    elif mail.to in ("seller", "manager"):
        to = context[mail.to].get("email")
    else:
        to = mail.to
    payload = {
        "to": to,
        "subject": one_line(render(mail.subject, context, "subject")),
        "body": render(mail.body, context, "body"),
        "to_lead": mail.to == "lead",
        "unsubscribe_url": context.get("unsubscribe_url", "") if mail.to == "lead" else "",
    }
    row: dict[str, Any] = {"channel": "mail", "target": to or "", "payload": payload}
    if not to:
        row.update(status="skipped", last_error=f"no e-mail address for {mail.to}")
    return row


def _failed_row(action: Action, reason: str) -> dict[str, Any]:
    if action.webhook is not None:
        target = action.webhook.url or f"env:{action.webhook.url_env}"
        channel = "webhook"
    else:
        assert action.mail is not None
        target, channel = action.mail.to, "mail"
    return {"channel": channel, "target": target, "payload": {}, "status": "failed", "last_error": reason}


class Effects:
    """Enqueues actions for one lead within the caller's transaction; builds the context once per score.

    The context tells the score the message is about: a stage's (a move, an assignment, a breach or a
    reassignment in it) is its team's (``score_stages.lead_team_score``), a crossing's is the score that
    crossed."""

    def __init__(self, conn: Connection, model: ScoringModel, lead_id: int, settings: Settings, now_ms: int):
        self.conn, self.model, self.lead_id, self.settings, self.now_ms = (
            conn,
            model,
            lead_id,
            settings,
            now_ms,
        )
        self.enqueued = 0
        self.score: str | None = None  # the score the messages tell (None: the primary)
        self._context: dict[str, Any] | None = None
        self._context_score: str | None = None
        self._people: dict[str, Any] = people(model, None, None)
        self.assignment: Assigned | None = None

    def context(self) -> dict[str, Any]:
        if self._context is None or self._context_score != self.score:
            self._context = lead_context(self.conn, self.model, self.lead_id, self.settings, self.score)
            self._context.update(self._people)
            self._context_score = self.score
        return self._context

    def _assigned(self, a: Assigned) -> None:
        """The assignment's people and facts join the context from now on."""
        self._people = {**self._people, **self.assigned_context(a)}
        self._context = None

    def _stage_score(self) -> None:
        """Messages from here on tell the score of the team whose stage the lead is in."""
        assert self.model.lifecycle is not None
        self.score = lead_team_score(self.conn, self.model.lifecycle, self.lead_id)

    def run(self, action: Action, key: str, kind: str, extra: dict[str, Any] | None = None) -> None:
        if action.quiet_for is not None:
            since = self.now_ms - int(duration_seconds(action.quiet_for) * 1000)
            if ran_since(self.conn, action.id, self.lead_id, since):
                return
        context = {**self.context(), **(extra or {})}
        try:
            if action.webhook is not None:
                row = _webhook_row(action.webhook, key, kind, action.id, context, self.now_ms)
            else:
                row = _mail_row(action, context)
        except TemplateFailed as exc:  # this action's row fails, saying why; the round goes on
            row = _failed_row(action, str(exc))
        row.update(key=key, action=action.id, lead_id=self.lead_id)
        self.enqueued += enqueue(self.conn, [row], self.now_ms)

    def moved(self, move_id: int, old: str, new: str, transition: str) -> None:
        """Effects of a stage move: assignment (entering the handoff stage), enter/leave and assigned actions."""
        lifecycle = self.model.lifecycle
        assert lifecycle is not None
        self._context = None  # the stage changed
        self._stage_score()
        move = {"id": move_id, "from": old, "to": new, "transition": transition}
        if lifecycle.assignment is not None and new in lifecycle.assignment.stage_ids:
            self.assignment = assign(self.conn, self.model, self.lead_id, move_id, new, self.now_ms)
        if self.assignment is not None:
            self._assigned(self.assignment)
            a = self.assignment
            self.enqueued += notify.assigned(
                self.conn, self.model, a.id, a.seller, a.due_ms, self.context(), self.settings, self.now_ms,
                score_name=self.score,
            )  # fmt: skip
        for action in lifecycle.actions:
            if action.trigger.leave == old:
                self.run(action, f"{action.id}:move:{move_id}", "stage.left", {"move": move})
            if action.trigger.enter == new:
                self.run(action, f"{action.id}:move:{move_id}", "stage.entered", {"move": move})
        if self.assignment is not None and lifecycle.assignment and new in lifecycle.assignment.stage_ids:
            for action in lifecycle.actions:
                # an action limited to a stage runs for the assignments in that stage only
                if action.trigger.assigned and action.trigger.stage in (None, new):
                    self.run(
                        action, f"{action.id}:assigned:{self.assignment.id}", "lead.assigned", {"move": move}
                    )

    def reassigned(self, a: Assigned, stage: str, previous: str) -> None:
        """Effects of a manager's reassignment: the new seller's notification and the ``assigned`` actions
        of the stage, as for a first assignment (keys of their own: a lead given back is news again)."""
        lifecycle = self.model.lifecycle
        assert lifecycle is not None
        self.assignment = a
        self._stage_score()
        self._assigned(a)
        occasion = f":reassigned:{self.now_ms}"
        self.enqueued += notify.assigned(
            self.conn,
            self.model,
            a.id,
            a.seller,
            a.due_ms,
            self.context(),
            self.settings,
            self.now_ms,
            occasion,
            score_name=self.score,
        )
        for action in lifecycle.actions:
            if action.trigger.assigned and action.trigger.stage in (None, stage):
                extra = {"reassigned_from": previous}
                self.run(action, f"{action.id}:assigned:{a.id}{occasion}", "lead.assigned", extra)

    def assigned_context(self, a: Assigned) -> dict[str, Any]:
        found = people(self.model, a.team, a.seller)
        due = iso(a.due_ms) if a.due_ms else None
        assignment = {"id": a.id, "team": a.team, "seller": a.seller, "reason": a.reason, "due_at": due}
        return {**found, "assignment": assignment}

    def crossing(self, row: dict[str, Any]) -> None:
        lifecycle = self.model.lifecycle
        assert lifecycle is not None
        crossing = {k: row[k] for k in ("kind", "from_value", "to_value", "score")}
        self.score = row.get("score_name")  # the crossing's own score tells it
        for action in lifecycle.actions:
            want, score = action.trigger.crossing, action.trigger.score
            # a crossing of the score the trigger names (the primary unless it names one)
            of_score = row.get("primary", True) if score is None else row.get("score_name") == score
            if (
                want is not None
                and of_score
                and want[0] == row["kind"]
                and str(want[1]) == str(row["to_value"])
            ):
                self.run(action, f"{action.id}:crossing:{row['id']}", "score.crossed", {"crossing": crossing})

    def breached(self, assignment: dict[str, Any]) -> None:
        lifecycle = self.model.lifecycle
        assert lifecycle is not None
        a = Assigned(
            assignment["id"],
            assignment["team"],
            assignment["seller"],
            assignment["reason"],
            assignment["due_ms"],
        )
        self._stage_score()
        extra = self.assigned_context(a)
        stage = assignment_stage(self.conn, int(assignment["stage_move_id"]))
        for action in lifecycle.actions:
            if action.trigger.sla_breach and action.trigger.stage in (None, stage):
                self.run(action, f"{action.id}:sla:{a.id}", "sla.breached", extra)
