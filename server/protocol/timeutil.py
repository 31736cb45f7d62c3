"""Time helpers for the wire: every time is an integer of µs since the Unix epoch (UTC).

``now_us`` is the one wall-clock reading of the workstation (and of recorder code that has no
``Clock`` passed in); ``monotonic_us`` is for durations and playback clocks, which must not
jump when the system clock is set.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

US_PER_SECOND = 1_000_000
MINUTE_US = 60 * US_PER_SECOND
HOUR_US = 60 * MINUTE_US
DAY_US = 24 * HOUR_US


def now_us() -> int:
    """Wall time now, in integer µs since the epoch (UTC)."""
    return time.time_ns() // 1000


def monotonic_us() -> int:
    """A monotonic reading in µs (arbitrary origin): for intervals, never stored."""
    return time.monotonic_ns() // 1000


def us_to_iso(t_us: int) -> str:
    """Human-readable UTC time for logs and messages (never stored)."""
    return datetime.fromtimestamp(t_us / US_PER_SECOND, tz=UTC).isoformat(timespec="milliseconds")


def rescale(value: int, num: int, den: int) -> int:
    """``value * num / den`` rounded to nearest, in integers (no float drift over long runs)."""
    q, r = divmod(value * num, den)
    return q + (1 if 2 * r >= den else 0)
