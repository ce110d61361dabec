"""When an assignment's SLA runs out: the SLA's duration after the assignment (``Assignment.sla_of`` its
stage), counted only in business hours where the model gives them (the team's, else the assignment's),
else in every hour. One definition for a new assignment (``assignment.py``) and a reassignment
(``feedback.py``); the deadline is stored with the assignment (``due_ms``) and read by the escalation, the
desk, the digest and the notifications.

Business hours are local times in an IANA time zone: a window is from ``start`` to ``end`` of each of
``days`` on the local calendar, so a deadline moves with daylight saving time (a clock that does not exist
that day, in the spring gap, is read with the offset before it). Holidays are not known.
"""

from __future__ import annotations

import functools
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from leadscore.model import duration_seconds
from leadscore.model.lifecycle import WEEKDAYS, BusinessHours, Lifecycle


def sla_due(lifecycle: Lifecycle, stage: str, team_id: str, at_ms: int) -> int | None:
    """When an assignment made at ``at_ms`` in ``stage`` to the team ``team_id`` is past its SLA; None:
    no SLA (or one ending after the year 9999)."""
    rules = lifecycle.assignment
    sla = None if rules is None else rules.sla_of(stage)
    if rules is None or sla is None:
        return None
    length = round(duration_seconds(sla) * 1000)
    team = next((t for t in lifecycle.teams if t.id == team_id), None)
    hours = (team.business_hours if team is not None else None) or rules.business_hours
    return at_ms + length if hours is None else business_end(hours, at_ms, length)


def business_end(hours: BusinessHours, at_ms: int, length_ms: int) -> int | None:
    """The moment ``length_ms`` of business hours have passed since ``at_ms``; None after the year 9999."""
    zone = _zone(hours.timezone)
    days = {WEEKDAYS.index(d) for d in hours.days}
    opens, closes = hours.minutes(hours.start), hours.minutes(hours.end)
    per_week = len(days) * (closes - opens) * 60_000
    left, cursor = length_ms, at_ms
    try:
        day = datetime.fromtimestamp(at_ms / 1000, zone).date()
        if left > 2 * per_week:
            # any seven days hold each day's window once, whatever hour they start at: whole weeks are
            # counted at their nominal length (a window holding a clock change, e.g. 00:00-24:00, gains
            # or loses that hour), so the walk below covers at most three weeks of days
            weeks = left // per_week - 1
            later = datetime.fromtimestamp(at_ms / 1000, zone) + timedelta(weeks=weeks)  # the wall clock
            cursor, day, left = _ms(later), later.date(), left - weeks * per_week
        while True:
            if day.weekday() in days:
                begin, end = max(cursor, _local(zone, day, opens)), _local(zone, day, closes)
                if begin < end:
                    if left <= end - begin:
                        return begin + left
                    left -= end - begin
            day += timedelta(days=1)
    except (OverflowError, ValueError, OSError):  # past the year 9999: datetime ends there
        return None


@functools.lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _local(zone: ZoneInfo, day: date, minute: int) -> int:
    """The instant (ms) of ``minute`` minutes after local midnight of ``day`` (1440: the next midnight)."""
    return _ms(datetime(day.year, day.month, day.day, tzinfo=zone) + timedelta(minutes=minute))


def _ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)
