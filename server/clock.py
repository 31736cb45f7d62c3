"""Clocks are passed in, so tests and simulations can drive recording with their own time."""

from __future__ import annotations

from typing import Protocol

from server.protocol.timeutil import monotonic_us, now_us


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
        self._offset_us = now_us() - monotonic_us()

    def now_us(self) -> int:
        return monotonic_us() + self._offset_us
