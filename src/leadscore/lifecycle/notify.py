"""Notifications to dashboard users about their own leads, as each user chose (``store.notifications``):
a message at once when a lead is assigned to them (it entered the handoff stage: their MQL), and a daily
digest of their new and waiting leads and of those past their SLA; each by mail, by a Slack-compatible
incoming webhook (``{"text", "blocks"}``), or both.

Every message names each lead's top reasons (``lifecycle.reasons``) and links to it. Messages are outbox
rows like every other notification, so the ``Deliverer`` sends them with the same timeouts, retries,
circuit breakers and dead letters (``failed`` rows), and a slow or dead webhook holds up nothing else.
Keys make both idempotent: one immediate message per assignment and channel, one digest per user,
day (UTC) and channel, so running the digest twice the same day sends nothing the second time.

Erasure is exact: an immediate message carries its lead's id and goes with the lead. A digest tells of
several leads, so its row carries none; ``digest_leads`` holds each lead it tells of as shown, and the
row's body is always the rendering of those (with the day, time and desk link kept in the payload under
``digest``). ``forget_leads`` renders a digest again without an erased lead, or deletes it when no lead
is left, whatever its status, for mail and Slack alike.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import ColumnElement, Connection, case, delete, func, literal, select, update

from leadscore.lifecycle.context import reason_names
from leadscore.lifecycle.desk import managed_teams, seller_email, whose_rank
from leadscore.lifecycle.mail import one_line
from leadscore.lifecycle.reasons import rule_names, top_reasons
from leadscore.lifecycle.reports import handoff_query, hottest_first
from leadscore.lifecycle.score_stages import lead_team_score
from leadscore.lifecycle.sla import past_due, sla_clock
from leadscore.model import ScoringModel
from leadscore.scoring.shown import cut_text
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.lead_names import display_name
from leadscore.store.notifications import NotificationSettings, read_settings, subscribers
from leadscore.store.outbox import enqueue
from leadscore.store.people import normalise_email
from leadscore.store.schema import digest_leads, outbox, scores
from leadscore.store.score_names import primary_score, scores_of
from leadscore.store.users import find_user

DAY_MS = 86_400_000
DIGEST_SHOWN = 25  # leads listed per digest section; the rest are counted, and the desk lists them all
SLACK_SHOWN = 10  # Slack renders at most 3,000 characters a section
TITLES = {"overdue": "Past their SLA", "new": "New since yesterday", "waiting": "Waiting for you"}


@dataclass(frozen=True)
class Note:
    """One lead as a message shows it."""

    lead_id: int
    name: str
    company: str | None
    score: float | None
    band: str | None
    reasons: list[dict[str, Any]]
    link: str
    due_ms: int | None
    owner: str | None = None  # set in a manager's digest for the team's leads
    score_name: str | None = None  # the named score told, when not the primary (a team's stage)

    def __post_init__(self) -> None:
        # a write key's name and company, told on one line wherever the note is rendered (``mail.one_line``)
        object.__setattr__(self, "name", one_line(self.name) or display_name(None, None, None, self.lead_id))
        if self.company is not None:
            object.__setattr__(self, "company", one_line(self.company))


@dataclass
class DigestRun:
    users: int = 0  # subscribers whose digest hour had come
    sent: int = 0  # digests enqueued (per channel)
    already: int = 0  # users whose digest of the day was already enqueued
    empty: int = 0  # users with no lead to tell of
    skipped: list[str] = field(default_factory=list)


def lead_link(settings: Settings, lead_id: int) -> str:
    return f"{settings.lifecycle.public_url.rstrip('/')}/leads/{lead_id}"


def desk_link(settings: Settings, score_name: str | None = None) -> str:
    """The seller's desk, showing the hand-off queue of the score ``score_name`` (None: the primary's)."""
    query = f"?{urlencode({'score': score_name})}" if score_name else ""
    return f"{settings.lifecycle.public_url.rstrip('/')}/handoff{query}"


def digest_link(settings: Settings, notes: dict[str, list[Note]]) -> str:
    """The desk a digest links to: the queue of the score its leads are told on when that is one score."""
    told = {note.score_name for group in notes.values() for note in group}
    return desk_link(settings, told.pop() if len(told) == 1 else None)


def _points(value: float) -> str:
    return f"{value:+.1f}"


def _score(note: Note) -> str:
    if note.score is None:
        return "not scored"
    return f"score {cut_text(note.score)}" + (f" ({note.band})" if note.band else "")


def _headline(note: Note) -> str:
    return f"{note.name} ({note.company or 'no company'}), {_score(note)}"


def _reasons_text(note: Note) -> str:
    return "; ".join(f"{r['name']} {_points(r['points'])}" for r in note.reasons) or "no scored rule"


def _slack_escape(text: str) -> str:
    # Slack's mrkdwn reads &, < and > as markup (links, mentions); the rest is plain text
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_lead(note: Note, now_ms: int) -> str:
    name = f"<{note.link}|{_slack_escape(note.name)}>"
    reasons = (
        "\n".join(f"• {_slack_escape(r['name'])} {_points(r['points'])}" for r in note.reasons)
        or "• no scored rule"
    )
    owner = f", {_slack_escape(note.owner)}'s" if note.owner else ""
    return (
        f"*{name}* ({_slack_escape(note.company or 'no company')}), {_score(note)}, "
        f"{sla_clock(note.due_ms, now_ms)}{owner}\n{reasons}"
    )


# --- immediate: a lead assigned to the user


def immediate_messages(note: Note, now_ms: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(mail subject and body, Slack body) for a lead just assigned to the reader."""
    lines = "\n".join(f"- {r['name']}: {_points(r['points'])}" for r in note.reasons) or "- no scored rule"
    mail = {
        "subject": f"New lead for you: {_headline(note)}",
        "body": (
            f"{note.name} ({note.company or 'no company'}) was assigned to you: {_score(note)}; "
            f"{sla_clock(note.due_ms, now_ms)}.\n\nWhy (top reasons):\n{lines}\n\nOpen the lead: {note.link}\n"
        ),
    }
    slack = {
        "text": f"New lead for you: {_headline(note)}. Why: {_reasons_text(note)}. {note.link}",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": "*New lead for you*"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": _slack_lead(note, now_ms)}},
        ],
    }
    return mail, slack


def _rows(
    user_id: int, email: str, found: NotificationSettings, key: str, action: str, lead_id: int | None,
    mail: dict[str, Any] | None, slack: dict[str, Any] | None, event: str,
) -> list[dict[str, Any]]:  # fmt: skip
    rows: list[dict[str, Any]] = []
    if mail is not None:
        payload = {**mail, "to": email, "to_lead": False, "unsubscribe_url": ""}
        rows.append({"key": f"{key}:mail", "channel": "mail", "target": email, "payload": payload})
    if slack is not None and found.slack_url:
        # a URL the user set in the dashboard: public addresses only (``webhook.post``); a notice to the
        # user of their own lead, sent also for someone who withdrew tracking consent (``outbox``)
        payload = {"body": slack, "event": event, "public_only": True, "staff_notice": True}
        rows.append(
            {"key": f"{key}:slack", "channel": "webhook", "target": found.slack_url, "payload": payload}
        )
    for row in rows:
        row.update(action=action, lead_id=lead_id)
    return rows


def assigned(
    conn: Connection,
    model: ScoringModel,
    assignment_id: int,
    seller_id: str,
    due_ms: int | None,
    context: dict[str, Any],
    settings: Settings,
    now_ms: int,
    occasion: str = "",
    *,
    score_name: str | None = None,
) -> int:
    """Enqueue the immediate messages the assigned seller asked for (none unless they are a dashboard
    user who turned them on); ``context`` is the lead's (``lifecycle.context``) on the score
    ``score_name``, whose reasons the messages tell. ``occasion`` tells apart a reassignment's message
    from the first one's (a lead given back to its first seller is news again). Returns rows added."""
    assert model.lifecycle is not None
    email = seller_email(model.lifecycle, seller_id)
    user = find_user(conn, email) if email else None
    if user is None or not user.active:
        return 0
    found = read_settings(conn, user.id)
    if not (found.mail_immediate or found.slack_immediate):
        return 0
    lead = context["lead"]
    note = Note(
        lead_id=int(lead["id"]),
        name=note_name(lead),
        company=lead["company"],
        score=lead["score"],
        band=lead["band"],
        reasons=top_reasons(
            conn, reason_names(conn, model, score_name), int(lead["id"]), score_name=score_name
        ),
        link=lead_link(settings, int(lead["id"])),
        due_ms=due_ms,
    )
    mail, slack = immediate_messages(note, now_ms)
    rows = _rows(
        user.id, user.email, found, f"notify:{user.id}:assigned:{assignment_id}{occasion}", "notify.assigned",
        note.lead_id, mail if found.mail_immediate else None, slack if found.slack_immediate else None,
        "lead.assigned",
    )  # fmt: skip
    return enqueue(conn, rows, now_ms)


def note_name(lead: Mapping[str, Any]) -> str:
    """How a message names ``lead`` (its ``first_name``, ``last_name`` and ``id``): its display name
    (``store.lead_names``) less the e-mail address: a name is all a message needs (an erasure renders
    digests again anyway)."""
    return display_name(lead["first_name"], lead["last_name"], None, int(lead["id"]))


# --- the daily digest


def day_of(now_ms: int) -> str:
    return datetime.fromtimestamp(now_ms / 1000, tz=UTC).strftime("%Y-%m-%d")


def _hour_of(now_ms: int) -> int:
    return datetime.fromtimestamp(now_ms / 1000, tz=UTC).hour


def digest_section(due_ms: ColumnElement[Any], assigned_ms: ColumnElement[Any], now_ms: int) -> Any:
    """SQL: a hand-off row's digest section at ``now_ms``: ``overdue`` (past its SLA: ``sla.past_due``),
    ``new`` (assigned in the last 24 hours) or ``waiting`` (the rest)."""
    return case(
        (past_due(due_ms, now_ms), "overdue"), (assigned_ms > now_ms - DAY_MS, "new"), else_="waiting"
    )


def digest_notes(
    conn: Connection,
    model: ScoringModel,
    email: str,
    settings: Settings,
    now_ms: int,
) -> tuple[dict[str, list[Note]], dict[str, int]]:
    """The user's leads of the handoff queue (``reports.handoff_query``; a team's manager: the team's
    too, ``desk.whose_rank``), in three sections (``digest_section``): the first ``DIGEST_SHOWN`` of
    each, hottest first, and how many more each has. Counted, sorted and cut in SQL: however long the
    queue, a digest reads that many rows a section and a count, and tells the reasons of those only."""
    lifecycle = model.lifecycle
    assert lifecycle is not None
    out: dict[str, list[Note]] = {kind: [] for kind in TITLES}
    more = dict.fromkeys(TITLES, 0)
    query = handoff_query(lifecycle)
    if query is None:
        return out, more
    teams = managed_teams(lifecycle, email)
    columns = query.selected_columns
    rank = whose_rank(lifecycle, columns.seller, columns.team, email, teams)
    queue = query.order_by(None).add_columns(rank.label("whose_rank")).where(rank < 2).subquery("queue")
    section = digest_section(queue.c.due_ms, queue.c.assigned_ms, now_ms).label("section")
    sections = select(section).select_from(queue).subquery("sections")
    counted = select(sections.c.section, func.count()).group_by(sections.c.section)
    totals = {str(kind): int(n) for kind, n in conn.execute(counted).all()}
    primary = primary_score(conn)
    names: dict[str, dict[str, str]] = {primary: rule_names(model)}
    for kind in TITLES:
        if not totals.get(kind):
            continue
        page = (
            select(queue)
            .where(section == kind)
            .order_by(*hottest_first(queue.c.score, queue.c.lead_id))
            .limit(DIGEST_SHOWN)
        )
        for found in conn.execute(page).mappings():
            out[kind].append(_note(conn, model, dict(found), names, primary, settings))
        more[kind] = totals[kind] - len(out[kind])
    return out, more


def _note(
    conn: Connection,
    model: ScoringModel,
    row: dict[str, Any],
    names: dict[str, dict[str, str]],
    primary: str,
    settings: Settings,
) -> Note:
    """A digest's hand-off ``row`` as told (``names``: the rule names of each score read so far)."""
    lifecycle = model.lifecycle
    assert lifecycle is not None
    owner = None
    if row["whose_rank"] == 1:  # the team's, in its manager's digest
        found = lifecycle.seller(row["seller"]) if row.get("seller") else None
        owner = found[1].name if found is not None else "no one"
    lead_id = int(row["lead_id"])
    # the queue's rows hold the primary's score; a lead in another team's stage is told on its score
    told = lead_team_score(conn, lifecycle, lead_id)
    if told not in names:
        names[told] = reason_names(conn, model, told)
    score, band = (row["score"], row["band"]) if told == primary else _score_row(conn, lead_id, told)
    return Note(
        lead_id=lead_id,
        name=note_name({**row, "id": lead_id}),
        company=row["company"],
        score=None if score is None else float(score),
        band=band,
        reasons=top_reasons(conn, names[told], lead_id, score_name=told),
        link=lead_link(settings, lead_id),
        due_ms=row.get("due_ms"),
        owner=owner,
        score_name=None if told == primary else told,
    )


def _score_row(conn: Connection, lead_id: int, score_name: str) -> tuple[float | None, str | None]:
    """The lead's score and band on the score ``score_name`` (None, None: not scored on it)."""
    query = select(scores.c.score, scores.c.band).where(scores_of(literal(lead_id), score_name))
    found = conn.execute(query).first()
    return (None, None) if found is None else (found[0], found[1])


def digest_messages(
    notes: dict[str, list[Note]], day: str, link: str, now_ms: int, more: dict[str, int] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(mail subject and body, Slack body) of a user's digest; ``link``: the desk's (``desk_link``);
    ``more``: how many leads each section has beyond the notes (``digest_notes``), counted and linked to
    the desk, which lists them all."""
    more = more or {}
    totals = {k: len(notes[k]) + more.get(k, 0) for k in TITLES}
    counts = ", ".join(f"{totals[k]:,} {TITLES[k].lower()}" for k in TITLES if totals[k])
    body = [f"Your leads on {day}: {counts}.", ""]
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*Your leads on {day}*: {counts}"}}
    ]
    for kind, title in TITLES.items():
        group = notes[kind]
        if not totals[kind]:
            continue
        body.append(f"{title} ({totals[kind]:,}):")
        for note in group[:DIGEST_SHOWN]:
            owner = f", {note.owner}'s" if note.owner else ""
            body.append(f"- {_headline(note)}, {sla_clock(note.due_ms, now_ms)}{owner}")
            body.append(f"  Why: {_reasons_text(note)}")
            body.append(f"  {note.link}")
        if totals[kind] > min(len(group), DIGEST_SHOWN):
            body.append(f"- and {totals[kind] - min(len(group), DIGEST_SHOWN):,} more: {link}")
        body.append("")
        shown = "\n\n".join(_slack_lead(n, now_ms) for n in group[:SLACK_SHOWN])
        left = totals[kind] - min(len(group), SLACK_SHOWN)
        told = f"\n\n<{link}|…and {left:,} more on your desk>" if left > 0 else ""
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"*{title}*\n{shown}{told}"}})
    body.append(f"Your desk: {link}")
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{link}|Open your desk>"}]})
    mail = {"subject": f"Your leads on {day}: {counts}", "body": "\n".join(body) + "\n"}
    slack = {"text": f"Your leads on {day}: {counts}. {link}", "blocks": blocks}
    return mail, slack


def _enqueued(conn: Connection, key: str) -> bool:
    keys = [f"{key}:mail", f"{key}:slack"]
    return conn.execute(select(outbox.c.id).where(outbox.c.key.in_(keys))).first() is not None


def send_digests(
    store: Store, model: ScoringModel | None, settings: Settings, now_ms: int, *, email: str | None = None
) -> DigestRun:
    """Enqueue today's digest for every subscriber whose digest hour (UTC) has come and who has none
    yet today (``email``: that user only). A user with no lead to tell of gets none (and may later in
    the day, when one arrives)."""
    run = DigestRun()
    if model is None or model.lifecycle is None:
        return run
    day, hour = day_of(now_ms), _hour_of(now_ms)
    with store.connect() as conn:
        users = [u for u in subscribers(conn) if email is None or u[1] == normalise_email(email)]
    for user_id, address, _, found in users:
        if not (found.mail_digest or found.slack_digest) or hour < found.digest_hour:
            continue
        run.users += 1
        key = f"digest:{user_id}:{day}"
        with store.begin() as conn:
            if _enqueued(conn, key):
                run.already += 1
                continue
            notes, more = digest_notes(conn, model, address, settings, now_ms)
            if not any(notes.values()):
                run.empty += 1
                continue
            link = digest_link(settings, notes)
            mail, slack = digest_messages(notes, day, link, now_ms, more)
            # what render_again needs besides the notes: the leads counted beyond them are only a number
            made = {"day": day, "now_ms": now_ms, "link": link, "more": more}
            rows = _rows(
                user_id, address, found, key, "notify.digest", None,
                mail if found.mail_digest else None, slack if found.slack_digest else None, "digest",
            )  # fmt: skip
            for row in rows:
                row["payload"]["digest"] = made
            run.sent += enqueue(conn, rows, now_ms)
            _record_leads(conn, [r["key"] for r in rows], notes)
    return run


def _record_leads(conn: Connection, keys: list[str], notes: dict[str, list[Note]]) -> None:
    """Which leads the digest rows of ``keys`` tell of, each as shown (``digest_leads``)."""
    ids = conn.execute(select(outbox.c.id).where(outbox.c.key.in_(keys))).scalars().all()
    rows = [
        {"outbox_id": outbox_id, "lead_id": note.lead_id, "section": section, "position": i,
         "note": asdict(note)}
        for outbox_id in ids
        for section, group in notes.items()
        for i, note in enumerate(group)
    ]  # fmt: skip
    if rows:
        conn.execute(digest_leads.insert(), rows)


def digests_of(conn: Connection, lead_ids: Collection[int]) -> list[int]:
    """The outbox ids of the digests that tell of any of ``lead_ids``, whatever their status."""
    if not lead_ids:
        return []
    query = select(digest_leads.c.outbox_id).where(digest_leads.c.lead_id.in_(sorted(lead_ids)))
    return sorted(set(conn.execute(query).scalars()))


def render_again(conn: Connection, outbox_ids: Collection[int]) -> tuple[int, int]:
    """Render the digests ``outbox_ids`` again from the leads ``digest_leads`` still holds for them (an
    erased lead's rows deleted first), the same way ``send_digests`` did, with its day, time and link;
    a digest with no lead left is deleted. Returns (rendered again, deleted)."""
    rendered = deleted = 0
    for outbox_id in sorted(outbox_ids):
        row = conn.execute(select(outbox).where(outbox.c.id == outbox_id)).mappings().first()
        if row is None:
            continue
        query = (
            select(digest_leads.c.section, digest_leads.c.note)
            .where(digest_leads.c.outbox_id == outbox_id)
            .order_by(digest_leads.c.section, digest_leads.c.position)
        )
        notes: dict[str, list[Note]] = {kind: [] for kind in TITLES}
        for section, note in conn.execute(query).all():
            notes[section].append(Note(**note))
        if not any(notes.values()):
            conn.execute(delete(digest_leads).where(digest_leads.c.outbox_id == outbox_id))
            conn.execute(delete(outbox).where(outbox.c.id == outbox_id))
            deleted += 1
            continue
        payload = dict(row["payload"])
        made = payload["digest"]
        more = made.get("more")  # none in a digest made before they were counted apart
        mail, slack = digest_messages(notes, made["day"], made["link"], int(made["now_ms"]), more)
        if row["channel"] == "mail":
            payload.update(mail)
        else:
            payload["body"] = slack
        conn.execute(update(outbox).where(outbox.c.id == outbox_id).values(payload=payload))
        rendered += 1
    return rendered, deleted


def forget_leads(conn: Connection, lead_ids: Collection[int]) -> tuple[int, int]:
    """Take ``lead_ids`` out of every digest that tells of them: their ``digest_leads`` rows deleted and
    each digest rendered again from the rest (``render_again``). Returns (rendered again, deleted)."""
    found = digests_of(conn, lead_ids)
    if not found:
        return 0, 0
    conn.execute(delete(digest_leads).where(digest_leads.c.lead_id.in_(sorted(lead_ids))))
    return render_again(conn, found)
