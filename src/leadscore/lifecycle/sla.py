"""When an assignment's SLA runs out: the SLA's duration after the assignment (``Assignment.sla_of`` its
stage), counted only in business hours where the model gives them (the team's, else the assignment's),
else in every hour. One definition for a new assignment (``assignment.py``) and a reassignment
(``feedback.py``); the deadline is stored with the assignment (``due_ms``) and read by the escalation, the
desk, the digest and the notifications, each calling it past due as ``overdue`` does.

Business hours are local times in an IANA time zone: a window is from ``start`` to ``end`` of each of
``days`` on the local calendar, so a deadline moves with daylight saving time (a clock that does not exist
that day, in the spring gap, is read with the offset before it). On ``holidays`` (local dates) the clock
does not run.
"""

from __future__ import annotations

import functools
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from leadscore.ingest.limits import LATEST_MS
from leadscore.model import duration_seconds
from leadscore.model.lifecycle import WEEKDAYS, BusinessHours, Lifecycle

# the weeks of business time walked day by day, each day's window at its real length (a clock change
# inside it counted); only an SLA longer than these skips whole weeks at their nominal length
WALKED_WEEKS = 52


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
                    begin = max(skipped[0], _local(zone, holiday, opens))
                    end = min(skipped[1], _local(zone, holiday, closes))
                    left += max(0, end - begin)
        while True:
            if day.weekday() in days and day not in holidays:
                begin, end = max(cursor, _local(zone, day, opens)), _local(zone, day, closes)
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


@functools.lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _local(zone: ZoneInfo, day: date, minute: int) -> int:
    """The instant (ms) of ``minute`` minutes after local midnight of ``day`` (1440: the next midnight)."""
    return _ms(datetime(day.year, day.month, day.day, tzinfo=zone) + timedelta(minutes=minute))


def _ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)
