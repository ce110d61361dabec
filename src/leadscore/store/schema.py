"""The store's tables (SQLAlchemy Core). Alembic migrations in ``migrations/`` create them.

Times are epoch milliseconds (BIGINT) so time arithmetic is the same integer arithmetic on every engine.
The event log is append-only; identities map person keys (``u:<userId>``, ``a:<anonymousId>``) to leads,
so stitching an anonymous visitor to a lead never rewrites an event.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()
Json = JSON().with_variant(JSONB(), "postgresql")
# the range of a BigInteger column (every time is one) and of the integers every store keeps exact in JSON
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def column_length(column: Column[Any]) -> int:
    """The characters a String column holds."""
    length = getattr(column.type, "length", None)
    if not isinstance(length, int):
        raise TypeError(f"{column} is not a bounded text column")
    return length


# the range of an Integer column (every row id): PostgreSQL's INTEGER is 32 bits, SQLite's 64
ID_MIN, ID_MAX = -(2**31), 2**31 - 1


def fits_id(n: int) -> bool:
    """Whether ``n`` can be compared with a row id (Integer) on every store: an id from a URL or a cursor
    past 32 bits is no row's, and PostgreSQL refuses to bind it ("integer out of range")."""
    return ID_MIN <= n <= ID_MAX


accounts = Table(
    "accounts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("domain", String(255), unique=True),
    Column("name", String(500), index=True),  # an account without a group key or domain is found by it
    Column("attributes", Json, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
    # the id a tracking client gives the account (PostHog's $group_key, Segment's groupId): migration 0029gk
    Column("group_key", String(255)),
    Index("ix_accounts_group_key", "group_key", unique=True),
)

# a lead withdrew tracking consent: her ``consent_tracking`` attribute is JSON false (``exportable`` is
# false), written with the path as a literal so that each engine matches it to ``ix_leads_withdrawn``
WITHDRAWN_SQL = {
    "sqlite": "json_type({attributes}, '$.consent_tracking') = 'false'",
    "postgresql": "({attributes} -> 'consent_tracking') = 'false'::jsonb",
}

leads = Table(
    "leads",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("external_id", String(255), unique=True),
    Column("email", String(320), unique=True),
    Column("email_domain", String(255), index=True),
    Column("first_name", String(255)),
    Column("last_name", String(255)),
    Column("company", String(500)),
    Column("account_id", Integer, ForeignKey("accounts.id"), index=True),
    Column("attributes", Json, nullable=False),
    # when each attribute's value was observed (event time), so the latest observation wins
    Column("attribute_ts", Json, nullable=False, server_default="{}"),
    Column("created_ms", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False, index=True),  # the dashboard's remembered reports
    # the few who withdrew tracking consent, whom every list leaves out (``lifecycle.lead_filter``:
    # ``withdrawn_ids``; the predicate is ``WITHDRAWN_SQL``'s, to the letter, migration 0032wd)
    Index(
        "ix_leads_withdrawn",
        "id",
        sqlite_where=text(WITHDRAWN_SQL["sqlite"].format(attributes="attributes")),
        postgresql_where=text(WITHDRAWN_SQL["postgresql"].format(attributes="attributes")),
    ),
)

identities = Table(
    "identities",
    metadata,
    Column("key", String(300), primary_key=True),
    Column("lead_id", Integer, ForeignKey("leads.id"), nullable=False, index=True),
    Column("created_ms", BigInteger, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("message_id", String(300), nullable=False, unique=True),
    Column("type", String(16), nullable=False),
    Column("name", String(500)),
    Column("person_key", String(300), nullable=False),
    Column("user_id", String(255)),
    Column("anonymous_id", String(255)),
    Column("group_id", String(255)),  # group messages
    Column("previous_id", String(255)),  # alias messages
    Column("path", String(1000)),  # bytes of UTF-8 at ingest (ingest.limits.PATH_BYTES): it is indexed
    Column("url", Text),
    Column("properties", Json, nullable=False),
    Column("context", Json, nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("received_ms", BigInteger, nullable=False),
    Column("source", String(32), nullable=False),
    Index("ix_events_person_ts", "person_key", "ts"),
    # a type's recent events, and the rule builder's live count of the page views under a path from the
    # index alone (migration 0025c; it replaces ``ix_events_type_ts``, its first two columns)
    Index("ix_events_type_ts_path", "type", "ts", "path", "person_key"),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(100), nullable=False),
    Column("version", Integer, nullable=False),
    Column("yaml", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("published_ms", BigInteger),
    Column("active", Boolean, nullable=False, default=False),
    Column("note", Text, nullable=False, default=""),
    # the named score this version scores (store/score_names.py); one active version per score name
    Column("score_name", String(63), nullable=False, server_default="primary"),
    UniqueConstraint("name", "version"),
)

score_names = Table(
    "score_names",
    metadata,
    # the named scores a lead has (one per product line or persona: ``core``, ``analytics``), each scored by
    # its own active model version; exactly one is the primary, read wherever no score is named
    Column("name", String(63), primary_key=True),
    Column("is_primary", Boolean, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
)

scores = Table(
    "scores",
    metadata,
    # one row per lead and named score (migration 0016; a store of one model has one score, "primary")
    Column("lead_id", Integer, ForeignKey("leads.id"), primary_key=True),
    Column("score_name", String(63), primary_key=True, server_default="primary"),
    Column("model_version_id", Integer, ForeignKey("model_versions.id"), nullable=False),
    Column("as_of_ms", BigInteger, nullable=False),
    Column("score", Float(precision=53), nullable=False),
    Column("fit_score", Float(precision=53), nullable=False),
    Column("engagement_score", Float(precision=53), nullable=False),
    Column("grade", String(1), nullable=False),
    Column("level", Integer, nullable=False),
    Column("band", String(8), nullable=False),
    Column("scored_ms", BigInteger, nullable=False),
    # when the passing of time alone may next change this score (a window, decay reaching a threshold);
    # NULL: never. The clock rescores leads whose time has come (scoring/due.py, scoring/clock.py)
    Column("due_ms", BigInteger, nullable=True),
    # the leads list walks a named score in its sort order; the matrix counts cells from the index alone
    # (migration 0022)
    Index("ix_scores_name_score", "score_name", "score", "lead_id"),
    Index("ix_scores_name_fit", "score_name", "fit_score", "lead_id"),
    Index("ix_scores_name_engagement", "score_name", "engagement_score", "lead_id"),
    Index("ix_scores_name_cell", "score_name", "grade", "level"),
    Index("ix_scores_name_band", "score_name", "band", "score", "lead_id"),
    Index("ix_scores_due", "due_ms"),
)

ledger = Table(
    "ledger",
    metadata,
    # one row per lead and named score holding all of that score's ledger lines (migration 0028; the lines'
    # encoding and their one reader: store/ledger_lines.py)
    Column("lead_id", Integer, ForeignKey("leads.id"), primary_key=True),
    Column("score_name", String(63), primary_key=True, server_default="primary"),
    Column("lines", Text, nullable=False),
)

score_history = Table(
    "score_history",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("lead_id", Integer, ForeignKey("leads.id"), nullable=False),
    Column("score_name", String(63), nullable=False, server_default="primary"),
    Column("model_version_id", Integer, ForeignKey("model_versions.id"), nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Column("score", Float(precision=53), nullable=False),
    Column("fit_score", Float(precision=53), nullable=False),
    Column("engagement_score", Float(precision=53), nullable=False),
    Column("grade", String(1), nullable=False),
    Column("level", Integer, nullable=False),
    Column("band", String(8), nullable=False),
    Column("cause", String(16), nullable=False),  # event | model
    Column("cause_ref", Text, nullable=False),  # message id(s) or model name@version
    Column("recorded_ms", BigInteger, nullable=False),
    Index("ix_history_lead_at", "lead_id", "score_name", "at_ms"),
    Index("ix_history_name_at", "score_name", "at_ms", "lead_id"),
)

outcomes = Table(
    "outcomes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("lead_id", Integer, ForeignKey("leads.id"), nullable=False, index=True),
    Column("kind", String(16), nullable=False),  # sql | opportunity | won | lost | disqualified
    Column("at_ms", BigInteger, nullable=False),
    Column("amount", Float(precision=53)),
    Column("reason", Text),
    Column("source", String(32), nullable=False),
    Column("recorded_ms", BigInteger, nullable=False),
    UniqueConstraint("lead_id", "kind", "at_ms"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(16), nullable=False),  # write | read | admin
    Column("name", String(200), nullable=False),
    Column("prefix", String(16), nullable=False),  # shown in listings; the key itself is never stored
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("revoked_ms", BigInteger),
)

inbox = Table(
    "inbox",
    metadata,
    # events acknowledged to a client but not yet in the event log, applied (identities, traits) and
    # scored: a row holds up to event_log.INBOX_ROW_EVENTS of them as one JSON array of event-log rows,
    # so an acknowledgement appends one row instead of updating the log's indexes (see docs/ingest.md)
    Column("id", Integer, primary_key=True),
    Column("received_ms", BigInteger, nullable=False),  # the earliest of its events
    Column("events", Integer, nullable=False),
    Column("rows", Text, nullable=False),
    # the partition of people whose events it holds (event_log.partition; 0 on SQLite, where one writer
    # takes every row): PostgreSQL processors each take their own partitions' rows
    Column("part", SmallInteger, nullable=False, server_default="0"),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    # messages the processor could not apply (see scoring/dead_letters.py): set aside so that every later
    # event is still scored; ``message`` is the event-log row as JSON text (never JSONB: PostgreSQL's JSONB
    # refuses the NUL characters that may be why the message failed), ``message_id`` a printable copy
    Column("id", Integer, primary_key=True),
    Column("message_id", String(300), nullable=False),
    Column("message", Text, nullable=False),
    Column("error", Text, nullable=False),
    Column("failed_ms", BigInteger, nullable=False),
    Column("last_attempt_ms", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False),
)

counters = Table(
    "counters",
    metadata,
    # running totals every process adds to in its own transactions (events acknowledged, scored,
    # dead-lettered), so /metrics reads the same numbers from any worker and after a restart
    Column("name", String(63), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

score_events = Table(
    "score_events",
    metadata,
    # threshold crossings (band, grade, level changes) for the lifecycle to act on; recorded once
    Column("id", Integer, primary_key=True),
    Column("lead_id", Integer, ForeignKey("leads.id"), nullable=False, index=True),
    Column("score_name", String(63), nullable=False, server_default="primary"),
    Column("model_version_id", Integer, ForeignKey("model_versions.id"), nullable=False),
    Column("kind", String(16), nullable=False),  # band | grade | level
    Column("from_value", String(16)),
    Column("to_value", String(16), nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Column("score", Float(precision=53), nullable=False),
    Column("cause_ref", Text, nullable=False),
    Column("recorded_ms", BigInteger, nullable=False),
    UniqueConstraint("lead_id", "model_version_id", "kind", "at_ms", "to_value"),
)

model_backtests = Table(
    "model_backtests",
    metadata,
    # a candidate version replayed against a baseline (the active version then) over [start_ms, end_ms)
    Column("id", Integer, primary_key=True),
    Column("model_version_id", Integer, ForeignKey("model_versions.id"), nullable=False, index=True),
    Column("baseline_version_id", Integer, ForeignKey("model_versions.id")),
    Column("outcome", String(16), nullable=False),  # the outcome kind conversions were counted by
    Column("start_ms", BigInteger, nullable=False),
    Column("end_ms", BigInteger, nullable=False),
    Column("threshold", Float(precision=53), nullable=False),  # MQL threshold on the 0–100 score
    Column("summary", Json, nullable=False),  # the backtest report as JSON
    Column("created_ms", BigInteger, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("role", String(16), nullable=False),  # admin | marketing | sales
    Column("password_hash", String(200), nullable=False),  # argon2id
    Column("created_ms", BigInteger, nullable=False),
    Column("disabled_ms", BigInteger),
)

sessions = Table(
    "sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),  # the cookie holds the token; only its hash is kept
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False, index=True),
    Column("csrf_token", String(64), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
)

login_attempts = Table(
    "login_attempts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(320), nullable=False),
    Column("client", String(64), nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Column("ok", Boolean, nullable=False),
    Index("ix_login_attempts_email_at", "email", "at_ms"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at_ms", BigInteger, nullable=False, index=True),
    Column("actor", String(320), nullable=False),  # user e-mail, "key:<id>", or "cli"
    Column("action", String(64), nullable=False),  # model.publish, privacy.erase, user.create, ...
    Column("target", String(320), nullable=False),
    Column("details", Json, nullable=False),
)

# --- lifecycle (migration 0005): stages, their history, the outbox, assignment, feedback, segments, accounts

lead_stages = Table(
    "lead_stages",
    metadata,
    # each lead's current stage; the row is also the lifecycle runner's claim on the lead
    Column("lead_id", Integer, ForeignKey("leads.id"), primary_key=True),
    Column("stage", String(63), nullable=False, index=True),  # the funnel's counts per stage
    Column("entered_ms", BigInteger, nullable=False),
    Column("seen_scored_ms", BigInteger),  # scores.scored_ms last evaluated: differs or None → evaluate again
    Column("seen_crossing_id", Integer, nullable=False, server_default="0"),
    Column("updated_ms", BigInteger, nullable=False),
)

stage_history = Table(
    "stage_history",
    metadata,
    # every stage move with its cause; the stage as of T is the newest row with at_ms <= T
    Column("id", Integer, primary_key=True),
    Column("lead_id", Integer, ForeignKey("leads.id"), nullable=False),
    Column("from_stage", String(63)),
    Column("to_stage", String(63), nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Column("transition", String(63), nullable=False),  # transition id, or "initial"
    Column("cause", String(16), nullable=False),  # initial | score | timer | feedback | outcome
    Column("cause_ref", Text, nullable=False),
    Column("recorded_ms", BigInteger, nullable=False),
    Index("ix_stage_history_lead_at", "lead_id", "at_ms"),
    Index("ix_stage_history_to_at", "to_stage", "at_ms"),
)

outbox = Table(
    "outbox",
    metadata,
    # notifications to deliver (webhook, mail); the unique key makes enqueueing idempotent and is sent
    # as the Idempotency-Key, so a redelivery after a crash is recognisable by the receiver
    Column("id", Integer, primary_key=True),
    Column("key", String(300), nullable=False, unique=True),
    Column("channel", String(16), nullable=False),  # webhook | mail
    Column("action", String(63), nullable=False),
    Column("lead_id", Integer, ForeignKey("leads.id")),
    Column("target", Text, nullable=False),  # URL, env variable name or e-mail address
    # where it goes, for per-endpoint bounds and failure counts: the webhook target, or "smtp" for mail
    Column("endpoint", Text, nullable=False, server_default=""),
    Column("payload", Json, nullable=False),
    Column("status", String(16), nullable=False),  # pending | sent | skipped | failed
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_ms", BigInteger, nullable=False),
    Column("last_error", Text),
    Column("failures", Integer, nullable=False, server_default="0"),  # failed attempts
    Column("created_ms", BigInteger, nullable=False),
    Column("sent_ms", BigInteger),
    Index("ix_outbox_due", "status", "next_attempt_ms"),
    Index("ix_outbox_lead", "lead_id"),
)

digest_leads = Table(
    "digest_leads",
    metadata,
    # the leads a digest row of the outbox tells of (its lead_id is null: it tells of several), each
    # as the digest shows it; the row's mail or Slack body is rendered from these, so erasing a lead
    # deletes its rows here and renders the digest again from the others (lifecycle/notify.py)
    Column("outbox_id", Integer, ForeignKey("outbox.id"), primary_key=True),
    Column("lead_id", Integer, ForeignKey("leads.id"), primary_key=True),
    Column("section", String(16), nullable=False),  # overdue | new | waiting
    Column("position", Integer, nullable=False),  # order within the section
    Column("note", Json, nullable=False),  # notify.Note as JSON
    Index("ix_digest_leads_lead", "lead_id"),
)

assignments = Table(
    "assignments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("lead_id", Integer, ForeignKey("leads.id"), nullable=False, index=True),
    Column("stage_move_id", Integer, ForeignKey("stage_history.id"), nullable=False, unique=True),
    Column("team", String(63), nullable=False),
    Column("seller", String(63), nullable=False),
    Column("reason", String(32), nullable=False),  # account_owner | territory | default
    Column("at_ms", BigInteger, nullable=False),
    Column("due_ms", BigInteger),  # SLA: touched by then or escalated
    Column("touched_ms", BigInteger),
    Column("escalated_ms", BigInteger),
)

team_cursors = Table(
    "team_cursors",
    metadata,
    # round-robin position per team (row-locked while a seller is picked)
    Column("team", String(63), primary_key=True),
    Column("position", Integer, nullable=False),
)

account_owners = Table(
    "account_owners",
    metadata,
    # an owner per account and team (sticky accounts per team: migration 0026ao)
    Column("account_id", Integer, ForeignKey("accounts.id"), primary_key=True),
    Column("seller", String(63), nullable=False),
    Column("team", String(63), primary_key=True),
    Column("at_ms", BigInteger, nullable=False),
)

feedback = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("lead_id", Integer, ForeignKey("leads.id"), nullable=False, index=True),
    Column("decision", String(16), nullable=False),  # accepted | rejected
    Column("reason", String(63)),
    Column("note", Text, nullable=False, server_default=""),
    Column("by", String(200), nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Column("stage_from", String(63), nullable=False),
    Column("recorded_ms", BigInteger, nullable=False),
)

segment_members = Table(
    "segment_members",
    metadata,
    Column("segment", String(63), primary_key=True),
    Column("lead_id", Integer, ForeignKey("leads.id"), primary_key=True),
    Column("entered_ms", BigInteger, nullable=False),
)

segment_changes = Table(
    "segment_changes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("segment", String(63), nullable=False),
    Column("lead_id", Integer, ForeignKey("leads.id"), nullable=False, index=True),
    Column("change", String(8), nullable=False),  # enter | leave
    Column("at_ms", BigInteger, nullable=False),
)

account_stages = Table(
    "account_stages",
    metadata,
    Column("account_id", Integer, ForeignKey("accounts.id"), primary_key=True),
    Column("stage", String(16), nullable=False),  # mqa | none
    Column("score", Float(precision=53), nullable=False),
    Column("fit_score", Float(precision=53), nullable=False),
    Column("engagement_score", Float(precision=53), nullable=False),
    Column("engaged_contacts", Integer, nullable=False),
    Column("target", Boolean, nullable=False),
    Column("entered_ms", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
)

account_stage_history = Table(
    "account_stage_history",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False, index=True),
    Column("from_stage", String(16)),
    Column("to_stage", String(16), nullable=False),
    Column("score", Float(precision=53), nullable=False),
    Column("at_ms", BigInteger, nullable=False),
)

mail_suppressions = Table(
    "mail_suppressions",
    metadata,
    # addresses that unsubscribed (or withdrew consent and were erased); never mailed again. Only a
    # peppered hash of the address is kept, so the row outlives the person's erasure (store/suppressions.py)
    Column("email_hash", String(64), primary_key=True),
    Column("reason", String(63), nullable=False),
    Column("at_ms", BigInteger, nullable=False),
)

tracking_suppressions = Table(
    "tracking_suppressions",
    metadata,
    # the identity keys (``u:<userId>``, ``a:<anonymousId>``) of people erased with ``--suppress``: their
    # messages are dropped before anything is stored (Segment's "delete and suppress"). Peppered hashes only
    # (store/suppressions.py): nothing here names her. ``person`` groups one erasure's keys (its audit
    # pseudonym), ``email_hash`` her address's hash, so ``privacy unsuppress`` lifts them all by any one.
    # Each of her addresses has a row of its own (key ``e:<address>``), matched by its ``email_hash``
    Column("key_hash", String(64), primary_key=True),
    Column("person", String(63), nullable=False, index=True),
    Column("email_hash", String(64), index=True),
    Column("at_ms", BigInteger, nullable=False),
)

# --- model review (migration 0014): health alerts and shadow models

alerts = Table(
    "alerts",
    metadata,
    # a health check that failed (lifecycle/alerts.py): open until the check passes again, so a condition
    # that lasts is raised (and delivered) once
    Column("id", Integer, primary_key=True),
    # drift | calibration | volume | acceptance, ":NAME" after the check of a score other than the primary
    Column("check", String(100), nullable=False),
    Column("raised_ms", BigInteger, nullable=False),
    Column("cleared_ms", BigInteger),
    Column("value", Float(precision=53), nullable=False),
    Column("threshold", Float(precision=53), nullable=False),
    Column("message", Text, nullable=False),
    Index("ix_alerts_check_cleared", "check", "cleared_ms"),
)

shadow_models = Table(
    "shadow_models",
    metadata,
    # candidate versions scored beside the active one on live events, with no lifecycle actions
    Column("model_version_id", Integer, ForeignKey("model_versions.id"), primary_key=True),
    Column("started_ms", BigInteger, nullable=False),
)

shadow_scores = Table(
    "shadow_scores",
    metadata,
    Column("model_version_id", Integer, ForeignKey("model_versions.id"), primary_key=True),
    Column("lead_id", Integer, ForeignKey("leads.id"), primary_key=True),
    Column("as_of_ms", BigInteger, nullable=False),
    Column("score", Float(precision=53), nullable=False),
    Column("fit_score", Float(precision=53), nullable=False),
    Column("engagement_score", Float(precision=53), nullable=False),
    Column("grade", String(1), nullable=False),
    Column("level", Integer, nullable=False),
    Column("band", String(8), nullable=False),
    Column("scored_ms", BigInteger, nullable=False),
)

# --- notifications per user (migration 0015)

notification_settings = Table(
    "notification_settings",
    metadata,
    # what a dashboard user is told about their leads, per channel: a mail at once (a lead assigned to
    # them becomes their MQL) and a daily digest mail, and the same two as a Slack-compatible
    # incoming-webhook message to their own URL; the digest goes once a day from digest_hour (UTC)
    Column("user_id", Integer, ForeignKey("users.id"), primary_key=True),
    Column("mail_immediate", Boolean, nullable=False),
    Column("mail_digest", Boolean, nullable=False),
    Column("slack_url", Text),
    Column("slack_immediate", Boolean, nullable=False),
    Column("slack_digest", Boolean, nullable=False),
    Column("digest_hour", Integer, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
)
