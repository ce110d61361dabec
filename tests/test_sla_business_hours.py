"""An SLA counted in business hours (docs/lifecycle.md "Assignment and the SLA"): ``business_hours`` on
the assignment, or a team's own, in an IANA time zone. Hand-computed deadlines, one brute-force property
(every minute of the walk counted), the assignment and the reassignment reading the one definition
(``lifecycle.sla``), and positioned validation errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadscore.errors import ModelValidationError
from leadscore.lifecycle.feedback import reassign
from leadscore.lifecycle.runner import run_round
from leadscore.lifecycle.sla import business_end
from leadscore.model import dump_model, load_model, loads_model
from leadscore.model.lifecycle import BusinessHours
from leadscore.scoring.pipeline import ingest, publish
from leadscore.store import Store
from leadscore.store.lifecycle_tables import list_assignments
from leadscore.store.people import find_lead
from lifecycle_model import settings as lifecycle_settings
from test_assignment_stages import ANALYTICS, CORE, messages

HOUR = 3_600_000
STOCKHOLM = BusinessHours(timezone="Europe/Stockholm")  # Monday to Friday, 09:00 to 17:00


def ms(text: str) -> int:
    """An ISO time with its offset, as milliseconds."""
    return int(datetime.fromisoformat(text).timestamp() * 1000)


@pytest.mark.parametrize(
    ("at", "hours", "due"),
    [
        # Friday 16:00: one hour on Friday, three on Monday
        ("2026-03-20T16:00+01:00", 4, "2026-03-23T12:00+01:00"),
        # the same across the change to summer time (Sunday 29 March): Monday 12:00 is UTC+2
        ("2026-03-27T16:00+01:00", 4, "2026-03-30T12:00+02:00"),
        # Saturday: the clock starts on Monday at 09:00
        ("2026-03-21T10:00+01:00", 4, "2026-03-23T13:00+01:00"),
        # before opening, at closing, and ending exactly at closing
        ("2026-03-17T07:00+01:00", 4, "2026-03-17T13:00+01:00"),
        ("2026-03-17T17:00+01:00", 4, "2026-03-18T13:00+01:00"),
        ("2026-03-17T13:00+01:00", 4, "2026-03-17T17:00+01:00"),
        # 400 hours (ten weeks of 40) from a Monday's opening: the tenth Friday's closing, in summer time
        ("2026-03-02T09:00+01:00", 400, "2026-05-08T17:00+02:00"),
    ],
)
def test_deadlines_in_stockholm_business_hours(at: str, hours: int, due: str) -> None:
    assert business_end(STOCKHOLM, ms(at), hours * HOUR) == ms(due)


def test_weekends_and_nights_of_another_team() -> None:
    # every day, 22:00 to 24:00 in New York (a night desk): Tuesday 23:30 EDT, 3 hours → Thursday 22:30
    every_day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    night = BusinessHours(timezone="America/New_York", days=every_day, start="22:00", end="24:00")
    assert business_end(night, ms("2024-05-07T23:30-04:00"), 3 * HOUR) == ms("2024-05-09T22:30-04:00")
    # a minute a week for 9,000 years of business time ends after the year 9999: no deadline
    minute = BusinessHours(timezone="UTC", days=("mon",), start="09:00", end="09:01")
    assert business_end(minute, ms("2024-05-07T00:00+00:00"), 9_000 * 365 * 24 * HOUR) is None


def _brute(hours: BusinessHours, at_ms: int, end_ms: int) -> int:
    """Business minutes in [at, end), each minute's local time read on its own (both on whole minutes)."""
    zone, days = (
        ZoneInfo(hours.timezone),
        {("mon", "tue", "wed", "thu", "fri", "sat", "sun").index(d) for d in hours.days},
    )
    opens, closes = hours.minutes(hours.start), hours.minutes(hours.end)
    count, moment = 0, datetime.fromtimestamp(at_ms / 1000, UTC)
    while moment.timestamp() * 1000 < end_ms:
        local = moment.astimezone(zone)
        if local.weekday() in days and opens <= local.hour * 60 + local.minute < closes:
            count += 1
        moment += timedelta(minutes=1)
    return count


@settings(max_examples=25, deadline=None)
@given(
    start=st.integers(0, 60 * 24 * 365),  # minutes into 2026 (both changes of the clock inside)
    minutes=st.integers(1, 5 * 40 * 60),  # up to five weeks of business time: the whole-week skip too
    zone=st.sampled_from(["Europe/Stockholm", "America/New_York", "Asia/Kolkata"]),
)
def test_the_deadline_holds_exactly_the_business_minutes(start: int, minutes: int, zone: str) -> None:
    hours = BusinessHours(timezone=zone, days=("mon", "tue", "thu", "fri"), start="08:30", end="18:00")
    at = ms("2026-01-01T00:00+00:00") + start * 60_000
    due = business_end(hours, at, minutes * 60_000)
    assert due is not None
    assert _brute(hours, at, due) == minutes
    assert _brute(hours, at, due - 60_000) == minutes - 1  # the earliest such moment


def test_assignment_and_reassignment_count_their_teams_hours(store: Store) -> None:
    # core's SLA (4 h) in Stockholm hours, the analytics team's (1 d: 24 business hours) in New York's
    text = CORE.replace(
        "    sla: 4h\n",
        "    sla: 4h\n    business_hours: {timezone: Europe/Stockholm}\n",
    ).replace(
        "{id: analytics, name: Analytics sales, sellers: [{id: ada, name: Ada Analyst, email: ada@example.test}]}",
        "{id: analytics, name: Analytics sales, sellers: [{id: ada, name: Ada Analyst, email: ada@example.test}], "
        "business_hours: {timezone: America/New_York}}",
    )
    core = loads_model(text)
    assert loads_model(dump_model(core)) == core  # written back as read
    publish(store, core, score_name="core", as_of=ms("2024-04-30T00:00+00:00"))
    publish(store, loads_model(ANALYTICS), score_name="analytics", as_of=ms("2024-04-30T00:00+00:00"))
    now = ms("2024-05-01T03:00+00:00")  # Wednesday: 05:00 in Stockholm, Tuesday 23:00 in New York
    ingest(store, messages(), source="test", as_of=now)
    run_round(store, lifecycle_settings(), now_ms=now, deliver=False)
    with store.connect() as conn:
        due = {a["seller"]: a["due_ms"] for a in list_assignments(conn)}
        carl = find_lead(conn, external_id="carl")
    assert carl is not None
    # carl (Sam, core): Wednesday 09:00-13:00 in Stockholm; dana (Ada, analytics): Wednesday, Thursday and
    # Friday 09:00-17:00 in New York
    assert due == {"sam": ms("2024-05-01T13:00+02:00"), "ada": ms("2024-05-03T17:00-04:00")}
    # carl given to Ada at 08:00 in New York: her team's hours, the stage's 4 h → 13:00 there
    reassign(
        store, core, carl, "ada", by="Tom", settings=lifecycle_settings(), now_ms=ms("2024-05-01T08:00-04:00")
    )
    with store.connect() as conn:
        carls = [a["due_ms"] for a in list_assignments(conn) if a["lead_id"] == carl]
    assert carls == [ms("2024-05-01T13:00-04:00")]


def _problems(text: str) -> list[str]:
    with pytest.raises(ModelValidationError) as info:
        load_model("model.yaml", text=text)
    return [str(p) for p in info.value.problems]


def test_bad_business_hours_are_positioned() -> None:
    def with_hours(hours: str) -> str:
        return CORE.replace("    sla: 4h\n", f"    sla: 4h\n    business_hours: {hours}\n")

    assert _problems(with_hours("{timezone: Mars/Olympus}")) == [
        "model.yaml:29:32 field lifecycle.assignment.business_hours.timezone: unknown time zone "
        "'Mars/Olympus' (an IANA name such as 'Europe/Stockholm')"
    ]
    assert any(
        "end (08:00) before they start (09:00)" in p
        for p in _problems(with_hours("{timezone: UTC, end: '08:00'}"))
    )
    assert any("name a day twice" in p for p in _problems(with_hours("{timezone: UTC, days: [mon, mon]}")))
    assert any("start" in p for p in _problems(with_hours("{timezone: UTC, start: '25:00'}")))
    assert any("timezone" in p for p in _problems(with_hours("{timezone: ../../etc/passwd}")))
    assert any("days" in p for p in _problems(with_hours("{timezone: UTC, days: [someday]}")))
