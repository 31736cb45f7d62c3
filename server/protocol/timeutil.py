"""Time helpers for the wire: every time is an integer of µs since the Unix epoch (UTC)."""

from __future__ import annotations

from datetime import UTC, datetime

US_PER_SECOND = 1_000_000


def us_to_iso(t_us: int) -> str:
    """Human-readable UTC time for logs and messages (never stored)."""
    return datetime.fromtimestamp(t_us / US_PER_SECOND, tz=UTC).isoformat(timespec="milliseconds")


def rescale(value: int, num: int, den: int) -> int:
    """``value * num / den`` rounded to nearest, in integers (no float drift over long runs)."""
    q, r = divmod(value * num, den)
    return q + (1 if 2 * r >= den else 0)
