"""When an assignment's SLA runs out: the SLA's duration after the assignment (``Assignment.sla_of`` its
stage), counted only in business hours where the model gives them (the team's, else the assignment's),
else in every hour. One definition for a new assignment (``assignment.py``) and a reassignment
(``feedback.py``); the deadline is stored with the assignment (``due_ms``) and read by the escalation, the
desk, the digest and the notifications, each calling it past due as ``overdue`` does.

Business hours are local times in an IANA time zone: a window is from ``start`` to ``end`` of each of
``days`` on the local calendar, so a deadline moves with daylight saving time. The window is read on the
wall clock: it is every real moment at which the local clock reads a time from ``start`` to ``end`` of that
day (``_window``). On the day the clock springs forward it is shorter by the time that does not exist (a
bound inside the gap is the first real instant after it: 02:30-06:00 in Berlin on 29 March 2026 is
03:00-06:00 summer time, three hours; Havana's 00:00-00:45 on 8 March 2026 does not happen at all); on the
day it falls back a repeated clock time inside it counts each time the clock reads it (02:00-03:00 in
Berlin on 25 October 2026 is two real hours; 00:00-02:30 is three, in two pieces, the clock reading
02:30-03:00 summer time in between). On ``holidays`` (local dates) the clock does not run.
"""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_

from leadscore.ingest.limits import LATEST_MS
from leadscore.model import duration_seconds
from leadscore.model.lifecycle import WEEKDAYS, BusinessHours, Lifecycle

# the weeks of business time walked day by day, each day's window at its real length (a clock change
# inside it counted); only an SLA longer than these skips whole weeks at their nominal length
WALKED_WEEKS = 52
_HOUR_MS = 3_600_000


def sla_due(lifecycle: Lifecycle, stage: str, team_id: str, at_ms: int) -> int | None:
    """When an assignment made at ``at_ms`` in ``stage`` to the team ``team_id`` is past its SLA; None:
    no SLA (or one ending after the year 9999)."""
    rules = lifecycle.assignment
    sla = None if rules is None else rules.sla_of(stage)
    if rules is None or sla is None:
        return None
    length = round(duration_seconds(sla) * 1000)
    hours = lifecycle.team(team_id).business_hours or rules.business_hours
    if hours is not None:
        return business_end(hours, at_ms, length)
    # as ``business_end``: a deadline no page, mail or API could write as a time is none
    return at_ms + length if at_ms + length <= LATEST_MS else None


def business_end(hours: BusinessHours, at_ms: int, length_ms: int) -> int | None:
    """The moment ``length_ms`` of business hours have passed since ``at_ms``; None after the year 9999."""
    zone = _zone(hours.timezone)
    days = {WEEKDAYS.index(d) for d in hours.days}
    holidays = frozenset(hours.holidays)
    opens, closes = hours.minutes(hours.start), hours.minutes(hours.end)
    per_week = len(days) * (closes - opens) * 60_000
    left, cursor = length_ms, at_ms
    try:
        day = datetime.fromtimestamp(at_ms / 1000, zone).date()
        while left > (WALKED_WEEKS + 1) * per_week:
            # any seven days hold each day's window once, whatever hour they start at: the weeks beyond
            # a year are counted at their nominal length (a window holding a clock change, e.g.
            # 00:00-24:00, gains or loses that hour), less the holidays among them, so the walk below
            # covers at most 54 weeks of days (a few milliseconds) and an SLA of up to a year of business
            # time is exact (each holiday is given back once: the loop ends)
            weeks = left // per_week - WALKED_WEEKS
            later = datetime.fromtimestamp(cursor / 1000, zone) + timedelta(weeks=weeks)  # the wall clock
            skipped = (cursor, _ms(later))
            cursor, day, left = skipped[1], later.date(), left - weeks * per_week
            for holiday in holidays:
                if holiday.weekday() in days:
                    for opened, closed in _window(zone, holiday, opens, closes):
                        left += max(0, min(skipped[1], closed) - max(skipped[0], opened))
        while True:
            if day.weekday() in days and day not in holidays:
                for opened, end in _window(zone, day, opens, closes):
                    begin = max(cursor, opened)
                    if begin < end:
                        if left <= end - begin:
                            return begin + left
                        left -= end - begin
            day += timedelta(days=1)
    except (OverflowError, ValueError, OSError):  # past the year 9999: datetime ends there
        return None


def overdue(due_ms: int | None, now_ms: int) -> bool:
    """Whether an assignment due at ``due_ms`` is past its SLA at ``now_ms``: from the due moment on, when
    the escalation takes it (``store.lifecycle_tables.claim_breaches``: ``due_ms <= now``); the desk, the
    lead page and the digest say so from the same moment."""
    return due_ms is not None and due_ms <= now_ms


def sla_clock(due_ms: int | None, now_ms: int) -> str:
    """An assignment's SLA clock at ``now_ms`` as the desk and the digest write it: "overdue by 1.5 h"
    (``overdue``), "25.0 h left to act", or "no SLA"; the hours to one decimal, rounded."""
    if due_ms is None:
        return "no SLA"
    if overdue(due_ms, now_ms):
        return f"overdue by {(now_ms - due_ms) / _HOUR_MS:.1f} h"
    return f"{(due_ms - now_ms) / _HOUR_MS:.1f} h left to act"


def past_due(due_ms: ColumnElement[Any], now_ms: int) -> ColumnElement[bool]:
    """``overdue`` in SQL, over a column of deadlines (the digest sorts its leads by it in the store)."""
    return and_(due_ms.is_not(None), due_ms <= now_ms)


@functools.lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


# no UTC offset is a day or more: a clock time of a day is read within this much of it as if it were UTC
_SPAN_MS = 26 * 3_600_000


def _window(zone: ZoneInfo, day: date, opens: int, closes: int) -> list[tuple[int, int]]:
    """The real instants (ms, as [begin, end) pieces in order) at which the local clock of ``zone`` reads
    ``opens`` to ``closes`` minutes after the midnight of ``day`` (1440: the next midnight). One piece at
    one offset; where the offset changes near the window, the part of the window read at each offset on
    its side of the change (none, one or two pieces; one change within 26 hours of the window, as every
    zone has)."""
    wall_opens, wall_closes = _wall_ms(day, opens), _wall_ms(day, closes)
    low, high = wall_opens - _SPAN_MS, wall_closes + _SPAN_MS
    before, after = _offset(zone, low), _offset(zone, high)
    if before == after:
        return [(wall_opens - before, wall_closes - before)]
    while high - low > 1:  # the first millisecond at the offset after the change
        middle = (low + high) // 2
        low, high = (middle, high) if _offset(zone, middle) == before else (low, middle)
    pieces = [
        (wall_opens - before, min(wall_closes - before, high)),
        (max(wall_opens - after, high), wall_closes - after),
    ]
    return [(begin, end) for begin, end in pieces if begin < end]


def _wall_ms(day: date, minute: int) -> int:
    """The clock time ``minute`` minutes after the midnight of ``day`` as ms, read as if it were UTC."""
    return _ms(datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(minutes=minute))


def _offset(zone: ZoneInfo, at_ms: int) -> int:
    """The UTC offset (ms) of ``zone`` at the instant ``at_ms``."""
    offset = datetime.fromtimestamp(at_ms / 1000, zone).utcoffset()
    assert offset is not None
    return round(offset.total_seconds() * 1000)


def _ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)
