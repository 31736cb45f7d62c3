"""Weekly arming schedules: ``"<days> HH:MM-HH:MM"`` ranges in the recorder's local time.

Days are ``daily``, a day (``mon``), a span (``mon-fri``) or a list (``sat,sun``, ``mon,wed-fri``).
A range whose end is before its start crosses midnight: ``"fri 22:00-06:00"`` arms Friday night
until Saturday 06:00. ``24:00`` ends a range at midnight.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, tzinfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RANGE = re.compile(r"^\s*(\S+)\s+(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
MINUTES_PER_DAY = 24 * 60


class ScheduleError(ValueError):
    """A schedule range that does not parse (the message says which and why)."""


@dataclass(frozen=True, slots=True)
class WeeklyRange:
    days: frozenset[int]  # 0 = Monday
    start_min: int  # minutes after midnight
    end_min: int  # may be <= start_min: crosses midnight

    def contains(self, weekday: int, minute: int) -> bool:
        if self.start_min < self.end_min:
            return weekday in self.days and self.start_min <= minute < self.end_min
        # crosses midnight: the evening of a listed day, or the morning after it
        return (weekday in self.days and minute >= self.start_min) or (
            (weekday - 1) % 7 in self.days and minute < self.end_min
        )


def _days(text: str) -> frozenset[int]:
    if text == "daily":
        return frozenset(range(7))
    out: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise ScheduleError(f"unknown day in {text!r}: use daily, mon..sun, mon-fri, sat,sun")
        a, b = DAYS.index(first), DAYS.index(last or first)
        out.update(d % 7 for d in range(a, b + 1 if b >= a else b + 8))
    return frozenset(out)


def parse_range(text: str) -> WeeklyRange:
    m = _RANGE.match(text.lower())
    if m is None:
        raise ScheduleError(f"schedule range {text!r} is not '<days> HH:MM-HH:MM'")
    h1, m1, h2, m2 = (int(g) for g in m.groups()[1:])
    if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2):
        raise ScheduleError(f"schedule range {text!r} has a time out of range")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start == end:
        raise ScheduleError(f"schedule range {text!r} is empty")
    return WeeklyRange(_days(m.group(1)), start, end % MINUTES_PER_DAY)


def parse(ranges: list[str]) -> tuple[WeeklyRange, ...]:
    return tuple(parse_range(r) for r in ranges)


def armed_at(ranges: tuple[WeeklyRange, ...], ts_us: int, tz: tzinfo | None = None) -> bool:
    """Whether the schedule arms at ``ts_us``; no ranges: always."""
    if not ranges:
        return True
    local = datetime.fromtimestamp(ts_us / 1e6, tz) if tz else datetime.fromtimestamp(ts_us / 1e6)
    minute = local.hour * 60 + local.minute
    return any(r.contains(local.weekday(), minute) for r in ranges)
