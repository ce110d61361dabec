"""Mail delivery over SMTP (plain, STARTTLS or implicit TLS, optional login), honouring consent.

A mail to a lead is not sent (the outbox row is marked ``skipped`` with the reason) when the address
unsubscribed through a mail's link, the lead's unsubscribe attribute is true, the model requires a
consent attribute that is not true, or the lead sent the model's unsubscribe event.

Every wait is bounded: each one on the server (``LEADSCORE_SMTP_TIMEOUT_S``) and the whole attempt
(``LEADSCORE_SMTP_TOTAL_TIMEOUT_S``: name lookups, connect, TLS, every command and reply; ``lifecycle.smtp``).
"""

from __future__ import annotations

import email.policy
import re
import smtplib
import time
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

from sqlalchemy import Connection, select

from leadscore.lifecycle.lead_filter import withheld
from leadscore.lifecycle.webhook import Outcome
from leadscore.model import Lifecycle
from leadscore.settings import Settings, SmtpSettings
from leadscore.store.schema import events, identities, leads
from leadscore.store.suppressions import is_suppressed

TRUE = (True, 1, "true", "yes", "1", "y")
# one address, nothing else: a lead's is the e-mail trait a public write key sends, and a list
# ("a@x, b@y"), a display name or a line break would send the mail elsewhere or write a header
ONE_ADDRESS = re.compile(r"[^@\s,;:<>()\[\]\"\\]+@[^@\s,;:<>()\[\]\"\\]+")


def consent_problem(
    conn: Connection, lifecycle: Lifecycle | None, lead_id: int | None, email: str, pepper: str
) -> str | None:
    """Why a mail to this lead must not be sent, or None (``pepper``: of the suppression hashes)."""
    if is_suppressed(conn, email, pepper):
        return "the address unsubscribed"
    if lead_id is None:
        return None
    consent = lifecycle.consent if lifecycle is not None else None
    attrs = conn.execute(select(leads.c.attributes).where(leads.c.id == lead_id)).scalar() or {}
    if consent is not None:
        if _truthy(attrs.get(consent.unsubscribed_attribute)):
            return f"attribute {consent.unsubscribed_attribute} is true"
        if consent.consent_attribute and not _truthy(attrs.get(consent.consent_attribute)):
            return f"no consent ({consent.consent_attribute} is not true)"
        if consent.unsubscribe_event:
            sent = conn.execute(
                select(events.c.id)
                .join(identities, identities.c.key == events.c.person_key)
                .where(
                    identities.c.lead_id == lead_id,
                    events.c.type == "track",
                    events.c.name == consent.unsubscribe_event,
                )
                .limit(1)
            ).first()
            if sent:
                return f"the lead sent {consent.unsubscribe_event}"
    # withdrawn consent (e-mail or tracking, as set by traits, CSV or the API) stops every mail; tracking
    # consent as it stops every export and webhook (``lead_filter.withheld``)
    if attrs.get("consent_email") is False:
        return "consent withdrawn (consent_email is false)"
    return withheld(conn, lead_id)


def _truthy(value: Any) -> bool:
    return (value.strip().lower() if isinstance(value, str) else value) in TRUE


def one_line(text: str) -> str:
    """``text`` on one line: every run of characters that break a line or space words (as str.split reads
    them) one space. A name or company a public write key sent is told so in a message, where a line of
    its own would read as a line of the message (a lead, a score) that no model gave."""
    return " ".join(text.split())


def message(settings: Settings, payload: dict[str, Any], key: str) -> EmailMessage:
    # long unsubscribe URLs must not be folded into encoded words (RFC 5322 allows 998 characters)
    msg = EmailMessage(policy=email.policy.SMTP.clone(max_line_length=998))
    msg["From"] = settings.smtp.mail_from
    msg["To"] = payload["to"]
    # a subject tells names and companies a public write key sent (a header value with a line break cannot
    # be written)
    msg["Subject"] = one_line(str(payload["subject"]))
    msg["Date"] = formatdate(usegmt=True)
    domain = settings.smtp.mail_from.rpartition("@")[2] or "leadscore"
    msg["Message-ID"] = f"<{key.replace(':', '.')}@{domain}>"  # the same on every attempt
    msg["X-Leadscore-Key"] = key
    if payload.get("unsubscribe_url"):
        msg["List-Unsubscribe"] = f"<{payload['unsubscribe_url']}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content(payload["body"])
    return msg


def send(settings: Settings, payload: dict[str, Any], key: str) -> Outcome:
    """One attempt, ended by ``settings.smtp.total_timeout_s`` however slowly the server answers."""
    from leadscore.lifecycle.deadline import attempt_deadline  # loaded when the first mail is due

    total_s = settings.smtp.total_timeout_s
    if not ONE_ADDRESS.fullmatch(str(payload["to"])) or not str(payload["to"]).isprintable():
        return Outcome("fail", f"{str(payload['to'])[:320]!r} is not one e-mail address")
    msg = message(settings, payload, key)
    deadline = time.monotonic() + total_s
    try:
        with attempt_deadline(deadline):
            _deliver(settings.smtp, msg)
    except smtplib.SMTPRecipientsRefused as exc:
        # refused for now (4xx: greylisting, a full mailbox, a rate limit) is worth asking again, as a 4xx
        # reply to any other command is; refused for good (5xx) is not
        codes = [code for code, _ in exc.recipients.values()]
        kind = "retry" if codes and all(400 <= code < 500 for code in codes) else "fail"
        return Outcome(kind, f"recipient refused: {exc.recipients}")
    except smtplib.SMTPResponseException as exc:
        kind = "fail" if 500 <= exc.smtp_code < 600 else "retry"
        return Outcome(kind, f"SMTP {exc.smtp_code}: {exc.smtp_error!r}")
    except (OSError, smtplib.SMTPException) as exc:
        # smtplib reports a timed-out read or write as a lost connection; say what happened
        if time.monotonic() >= deadline:
            return Outcome("retry", f"TimeoutError: the attempt took longer than {total_s} s")
        return Outcome("retry", f"{type(exc).__name__}: {exc}")
    return Outcome("ok")


def _deliver(smtp_settings: SmtpSettings, msg: EmailMessage) -> None:
    from leadscore.lifecycle.smtp import BoundedSMTP, BoundedSMTP_SSL, local_name, tls_context

    smtp: smtplib.SMTP
    host, port, timeout = smtp_settings.host, smtp_settings.port, smtp_settings.timeout_s
    if smtp_settings.ssl:
        smtp = BoundedSMTP_SSL(host, port, local_name(), timeout=timeout, context=tls_context())
    else:
        smtp = BoundedSMTP(host, port, local_name(), timeout=timeout)
    with smtp:
        if smtp_settings.starttls and not smtp_settings.ssl:
            smtp.starttls(context=tls_context())
        if smtp_settings.user:
            smtp.login(smtp_settings.user, smtp_settings.password or "")
        smtp.send_message(msg)
