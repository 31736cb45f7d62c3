"""Clocks are passed in, so tests and simulations can drive recording with their own time."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_us(self) -> int:
        """Wall time in µs since the epoch, UTC, that never jumps backwards."""
        ...


class SystemClock:
    """Monotonic clock plus one realtime offset read at start.

    A later NTP step or a manual change of the system clock does not tear the archive: times
    keep advancing at the monotonic rate (Moonfire NVR's design/time.md explains why).
    """

    def __init__(self) -> None:
        self._offset_us = time.time_ns() // 1000 - time.monotonic_ns() // 1000

    def now_us(self) -> int:
        return time.monotonic_ns() // 1000 + self._offset_us
