"""An SLA counted in business hours (docs/lifecycle.md "Assignment and the SLA"): ``business_hours`` on
the assignment, or a team's own, in an IANA time zone. Hand-computed deadlines, one brute-force property
(every minute of the walk counted), the assignment and the reassignment reading the one definition
(``lifecycle.sla``), and positioned validation errors."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from leadscore.cli.main import app
from leadscore.errors import ModelValidationError
from leadscore.lifecycle.feedback import reassign
from leadscore.lifecycle.runner import run_round
from leadscore.lifecycle.sla import business_end, sla_due
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


def test_holidays_stop_the_clock() -> None:
    christmas = BusinessHours(
        timezone="Europe/Stockholm",
        holidays=(date(2026, 12, 24), date(2026, 12, 25), date(2026, 12, 31), date(2027, 1, 1)),
    )
    # Wednesday 23 December 15:00, 8 hours: two that day, then Monday 28th 09:00-15:00
    assert business_end(christmas, ms("2026-12-23T15:00+01:00"), 8 * HOUR) == ms("2026-12-28T15:00+01:00")
    # 200 hours (25 working days) from Monday 7 December: 5 + 5 + 3 (21-23) + 3 (28-30) + 5 (4-8 January)
    # + 4 (11-14): Thursday 14 January 17:00 (the whole weeks skipped give the four holidays back)
    assert business_end(christmas, ms("2026-12-07T09:00+01:00"), 200 * HOUR) == ms("2027-01-14T17:00+01:00")


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
        working = local.weekday() in days and local.date() not in hours.holidays
        if working and opens <= local.hour * 60 + local.minute < closes:
            count += 1
        moment += timedelta(minutes=1)
    return count


@settings(max_examples=25, deadline=None)
@given(
    start=st.integers(0, 60 * 24 * 365),  # minutes into 2026 (both changes of the clock inside)
    minutes=st.integers(1, 5 * 40 * 60),  # up to five weeks of business time: the whole-week skip too
    zone=st.sampled_from(["Europe/Stockholm", "America/New_York", "Asia/Kolkata"]),
    holidays=st.sets(st.integers(0, 400), max_size=6),  # days into 2026
)
def test_the_deadline_holds_exactly_the_business_minutes(
    start: int, minutes: int, zone: str, holidays: set[int]
) -> None:
    off = tuple(date(2026, 1, 1) + timedelta(days=d) for d in sorted(holidays))
    hours = BusinessHours(
        timezone=zone, days=("mon", "tue", "thu", "fri"), start="08:30", end="18:00", holidays=off
    )
    at = ms("2026-01-01T00:00+00:00") + start * 60_000
    due = business_end(hours, at, minutes * 60_000)
    assert due is not None
    assert _brute(hours, at, due) == minutes
    assert _brute(hours, at, due - 60_000) == minutes - 1  # the earliest such moment


def test_assignment_and_reassignment_count_their_teams_hours(store: Store) -> None:
    # core's SLA (4 h) in Stockholm hours (a holiday on 2 May, after the deadline, changes nothing), the analytics team's (1 d: 24 business hours) in New York's
    text = CORE.replace(
        "    sla: 4h\n",
        "    sla: 4h\n    business_hours: {timezone: Europe/Stockholm, holidays: [2024-05-02]}\n",
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
    # a NUL in the name, a name past 100 characters, more than 1,000 holidays, a holiday in year 0
    assert any("timezone" in p for p in _problems(with_hours('{timezone: "Europe/Stock\\0holm"}')))
    assert any("timezone" in p for p in _problems(with_hours(f"{{timezone: {'Europe/' + 'x' * 100}}}")))
    many = ", ".join(str(date(2000, 1, 1) + timedelta(days=d)) for d in range(1001))
    assert any("holidays" in p for p in _problems(with_hours(f"{{timezone: UTC, holidays: [{many}]}}")))
    assert any(
        "is not a valid timestamp" in p
        for p in _problems(with_hours("{timezone: UTC, holidays: [0000-01-01]}"))
    )
    assert any(
        "a holiday twice" in p
        for p in _problems(with_hours("{timezone: UTC, holidays: [2026-12-24, 2026-12-24]}"))
    )
    assert any(
        "is not a valid timestamp" in p
        for p in _problems(with_hours("{timezone: UTC, holidays: [2026-13-01]}"))
    )


EVERY_HOUR = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@pytest.mark.parametrize(
    ("zone", "at"),
    [
        # spring forward (an hour), autumn back, Lord Howe's half hour, Santiago's midnight change,
        # Samoa's missing 30 December 2011 (a whole day): a window of the whole day holds each of them
        ("Europe/Stockholm", "2026-03-27T12:00+01:00"),
        ("America/New_York", "2026-10-30T12:00-04:00"),
        ("Australia/Lord_Howe", "2026-03-27T12:00+11:00"),
        ("America/Santiago", "2026-03-27T12:00-03:00"),
        ("Pacific/Apia", "2011-12-20T12:00-10:00"),
    ],
)
@pytest.mark.parametrize("hours", [24, 336, 337, 1000, 5000])
def test_a_desk_open_every_hour_counts_every_hour(zone: str, at: str, hours: int) -> None:
    # 00:00 to 24:00 on all seven days is every hour there is: the deadline is the SLA's length later,
    # whatever the clock changes inside it (real hours, as an SLA without business hours counts them)
    always = BusinessHours(timezone=zone, days=EVERY_HOUR, start="00:00", end="24:00")
    assert business_end(always, ms(at), hours * HOUR) == ms(at) + hours * HOUR


def test_a_longer_sla_is_never_due_earlier() -> None:
    # two weeks and a minute after Friday noon, across the change to summer time: a minute after two weeks
    always = BusinessHours(timezone="Europe/Stockholm", days=EVERY_HOUR, start="00:00", end="24:00")
    at = ms("2026-03-27T12:00+01:00")
    two_weeks = business_end(always, at, 336 * HOUR)
    assert two_weeks == ms("2026-04-10T13:00+02:00")
    assert business_end(always, at, 336 * HOUR + 60_000) == ms("2026-04-10T13:01+02:00")


@pytest.mark.parametrize(
    "zone",
    [
        "localtime",  # the server's own clock (a link to /etc/localtime), not a zone of the model's
        "right/Europe/Stockholm",  # leap-second tables: Python reads their offsets wrong (UTC+2 in December)
        "posix/Europe/Stockholm",  # a copy only some systems have
        "posixrules",
    ],
)
def test_only_iana_time_zone_names(zone: str) -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        BusinessHours(timezone=zone)


def test_model_diff_tells_business_hours_apart(tmp_path: Path) -> None:
    # a model whose only change is the desk's hours (a deadline moves from Friday 20:00 to Monday) differs
    before, after = tmp_path / "before.yaml", tmp_path / "after.yaml"
    before.write_text(CORE)
    after.write_text(
        CORE.replace("    sla: 4h\n", "    sla: 4h\n    business_hours: {timezone: Europe/Stockholm}\n")
    )
    diff = CliRunner().invoke(app, ["model", "diff", str(before), str(after)])
    assert diff.exit_code == 0, diff.output
    assert "no differences" not in diff.output
    assert "+    business_hours:" in diff.output


def test_clock_times_need_no_quotes() -> None:
    # YAML 1.1 reads 17:00 unquoted as the base-60 number 1020 ("end must be a text, not 1020"): a model
    # is YAML 1.2 here, where it is the text 17:00
    text = CORE.replace(
        "    sla: 4h\n", "    sla: 4h\n    business_hours: {timezone: UTC, start: 08:30, end: 24:00}\n"
    )
    hours = load_model("model.yaml", text=text).lifecycle.assignment.business_hours  # type: ignore[union-attr]
    assert hours == BusinessHours(timezone="UTC", start="08:30", end="24:00")
    # and points written 1:30 are not 90 points
    assert _problems("model: m\nengagement:\n  - {id: a, name: A, event: {type: page}, points: 1:30}\n") == [
        "model.yaml:3:51 rule a field points: points must be a number, not '1:30'"
    ]


@pytest.mark.parametrize("hours", ["", "    business_hours: {timezone: UTC}\n"])
def test_an_sla_ending_after_the_year_9999_is_no_deadline(hours: str) -> None:
    # 520,000 weeks (about 9,966 years) from 2024 ends in the year 11990, which no page, mail or API can
    # write as a time: no deadline, in every hour as in business hours
    lifecycle = loads_model(CORE.replace("    sla: 4h\n", f"    sla: 520000w\n{hours}")).lifecycle
    assert lifecycle is not None
    assert sla_due(lifecycle, "mql_core", "core", ms("2024-05-01T00:00+00:00")) is None
    # a year: a deadline
    lifecycle = loads_model(CORE.replace("    sla: 4h\n", f"    sla: 52w\n{hours}")).lifecycle
    assert lifecycle is not None
    assert sla_due(lifecycle, "mql_core", "core", ms("2024-05-01T00:00+00:00")) is not None


def test_business_hours_need_no_system_time_zone_database() -> None:
    # a slim container has no /usr/share/zoneinfo: the tzdata package (a dependency) is read then, and
    # Friday 27 March 2026 16:00 in Stockholm with 4 hours is still Monday 12:00 summer time
    code = (
        "from leadscore.model.lifecycle import BusinessHours; from leadscore.lifecycle.sla import business_end;"
        f"print(business_end(BusinessHours(timezone='Europe/Stockholm'), {ms('2026-03-27T16:00+01:00')}, {4 * HOUR}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, "PYTHONTZPATH": ""}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == ms("2026-03-30T12:00+02:00")


@pytest.mark.parametrize(
    ("zone", "start", "end", "at", "minutes", "due"),
    [
        # Berlin springs forward on Sunday 29 March 2026 at 02:00 (to 03:00): a window of 02:00-06:00 is
        # 03:00-06:00 that day, three real hours; four hours end on Monday at 03:00
        ("Europe/Berlin", "02:00", "06:00", "2026-03-29T00:00+01:00", 180, "2026-03-29T06:00+02:00"),
        ("Europe/Berlin", "02:00", "06:00", "2026-03-29T00:00+01:00", 240, "2026-03-30T03:00+02:00"),
        # a window opening inside the gap (02:30) opens at the first real instant, 03:00
        ("Europe/Berlin", "02:30", "06:00", "2026-03-29T00:00+01:00", 60, "2026-03-29T04:00+02:00"),
        ("Europe/Berlin", "02:30", "06:00", "2026-03-29T00:00+01:00", 180, "2026-03-29T06:00+02:00"),
        # a window closing inside the gap (00:00-02:30) closes at 02:00 (= 03:00 summer time): two hours
        # that day, then Monday from midnight
        ("Europe/Berlin", "00:00", "02:30", "2026-03-29T00:00+01:00", 120, "2026-03-29T03:00+02:00"),
        ("Europe/Berlin", "00:00", "02:30", "2026-03-29T00:00+01:00", 150, "2026-03-30T00:30+02:00"),
        # Santiago springs forward at midnight (Sunday 6 September 2026: 00:00 is 01:00): a window from
        # 00:00 or 00:30 to 04:00 is 01:00-04:00, three hours, from Saturday 23:00
        ("America/Santiago", "00:00", "04:00", "2026-09-05T23:00-04:00", 60, "2026-09-06T02:00-03:00"),
        ("America/Santiago", "00:30", "04:00", "2026-09-05T23:00-04:00", 60, "2026-09-06T02:00-03:00"),
        ("America/Santiago", "00:30", "04:00", "2026-09-05T23:00-04:00", 180, "2026-09-06T04:00-03:00"),
        # Havana's midnight change (Sunday 8 March 2026): 00:00-01:30 is 01:00-01:30; 00:00-00:45 does
        # not happen at all that day, so half an hour from Saturday 23:00 ends on Monday at 00:30
        ("America/Havana", "00:00", "01:30", "2026-03-07T23:00-05:00", 30, "2026-03-08T01:30-04:00"),
        ("America/Havana", "00:00", "01:30", "2026-03-07T23:00-05:00", 45, "2026-03-09T00:15-04:00"),
        ("America/Havana", "00:00", "00:45", "2026-03-07T23:00-05:00", 30, "2026-03-09T00:30-04:00"),
        # Berlin falls back on Sunday 25 October 2026 (03:00 summer time is 02:00 again): the window
        # 02:00-03:00 is read on the wall clock, so it holds the repeated hour twice, two real hours
        ("Europe/Berlin", "02:00", "03:00", "2026-10-25T00:00+02:00", 90, "2026-10-25T02:30+01:00"),
        ("Europe/Berlin", "02:00", "03:00", "2026-10-25T00:00+02:00", 120, "2026-10-25T03:00+01:00"),
        ("Europe/Berlin", "02:00", "03:00", "2026-10-25T00:00+02:00", 150, "2026-10-26T02:30+01:00"),
        # 00:00-02:30 that day: 00:00-02:30 summer time, then 02:00-02:30 winter time again (the clock
        # reads 02:30-03:00 summer time out of the window): three real hours, in two pieces
        ("Europe/Berlin", "00:00", "02:30", "2026-10-25T00:00+02:00", 165, "2026-10-25T02:15+01:00"),
        ("Europe/Berlin", "00:00", "02:30", "2026-10-25T00:00+02:00", 180, "2026-10-25T02:30+01:00"),
        ("Europe/Berlin", "00:00", "02:30", "2026-10-25T00:00+02:00", 181, "2026-10-26T00:01+01:00"),
    ],
)
def test_a_clock_change_inside_or_at_the_edge_of_the_window(
    zone: str, start: str, end: str, at: str, minutes: int, due: str
) -> None:
    """The window is every moment the local clock reads from ``start`` to ``end``: on the day the clock
    springs forward it is shorter by the time that does not exist (a bound in the gap is the first real
    instant after it), on the day it falls back a repeated time inside it counts each time it is read."""
    hours = BusinessHours(timezone=zone, days=EVERY_HOUR, start=start, end=end)
    assert business_end(hours, ms(at), minutes * 60_000) == ms(due)
    assert _brute(hours, ms(at), ms(due)) == minutes  # every minute's own local time agrees


@settings(max_examples=60, deadline=None)
@given(
    # quarter hours from midnight to 04:00, where these zones change their clocks: windows starting,
    # ending or lying in the change
    opens=st.integers(0, 15),
    length=st.integers(1, 20),
    day=st.sampled_from(
        [
            date(2026, 3, 8),
            date(2026, 3, 29),
            date(2026, 9, 6),
            date(2026, 10, 25),
            date(2026, 4, 5),
            date(2026, 11, 1),
        ]
    ),
    lead_in=st.integers(0, 48 * 60),  # minutes before the day's midnight (UTC) the assignment is made
    minutes=st.integers(1, 3 * 24 * 60),
    zone=st.sampled_from(["Europe/Berlin", "America/Santiago", "America/Havana", "Australia/Lord_Howe"]),
)
def test_windows_around_clock_changes_hold_exactly_their_minutes(
    opens: int, length: int, day: date, lead_in: int, minutes: int, zone: str
) -> None:
    """Property: whatever the window's place against a change of the clock, the deadline holds exactly
    the business minutes read on the local clock minute by minute (``_brute``), and is the earliest."""
    closes = min(96, opens + length)
    if closes <= opens:
        return
    clock = [f"{q // 4:02d}:{q % 4 * 15:02d}" for q in (opens, closes)]
    hours = BusinessHours(timezone=zone, days=EVERY_HOUR, start=clock[0], end=clock[1])
    at = ms(f"{day.isoformat()}T00:00+00:00") - lead_in * 60_000
    due = business_end(hours, at, minutes * 60_000)
    assert due is not None
    assert _brute(hours, at, due) == minutes
    assert _brute(hours, at, due - 60_000) == minutes - 1
