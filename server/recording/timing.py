"""The time model of a segment: from the camera's media timestamps to wall time.

Media time (packet timestamps) is exact relative to itself but its origin is unknown and its
rate drifts from ours; the receive time is on our clock but late by network and buffering
delays, never early. So:

* the first segment of a run starts at ``min(receive time - media time elapsed)`` over its
  frames, the least-delayed frame's view of when it started (never before the end of the
  stream's previous segment: segments of a stream do not overlap);
* later segments start exactly where the previous one ended (no false gaps);
* a segment's wall duration is its media duration, nudged toward what the receive times say by
  at most ``max_drift_ppm``, so a camera clock that runs fast or slow is corrected gently.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

from server.protocol.timeutil import US_PER_SECOND, rescale


@dataclass(slots=True)
class SegmentClock:
    start_us: int
    chained: bool  # start fixed by the previous segment of the run
    floor_us: int  # earliest allowed start: end of the stream's previous segment
    min_offset_us: int  # min(receive time - media elapsed) seen in this segment

    @classmethod
    def first_of_run(cls, recv_us: int, floor_us: int) -> SegmentClock:
        return cls(max(recv_us, floor_us), False, floor_us, recv_us)

    @classmethod
    def chained_after(cls, prev_end_us: int, recv_us: int, media_elapsed_us: int) -> SegmentClock:
        return cls(prev_end_us, True, prev_end_us, recv_us - media_elapsed_us)

    def observe(self, recv_us: int, media_elapsed_us: int) -> None:
        """Account for one frame received at ``recv_us``, ``media_elapsed_us`` into the segment."""
        est = recv_us - media_elapsed_us
        if est < self.min_offset_us:
            self.min_offset_us = est
            if not self.chained:
                self.start_us = max(est, self.floor_us)

    def wall_duration_us(self, media_duration_us: int, max_drift_ppm: int) -> int:
        if not self.chained:
            return media_duration_us
        error = self.min_offset_us - self.start_us
        bound = media_duration_us * max_drift_ppm // 1_000_000
        return media_duration_us + max(-bound, min(bound, error))


def ticks_to_us(ticks: int, timescale: int) -> int:
    return rescale(ticks, US_PER_SECOND, timescale)


def fragment_durations_us(
    boundaries: list[int], timescale: int, wall_duration_us: int | None = None
) -> list[int]:
    """Integer µs durations of fragments whose boundaries (ticks, from 0) are given.

    Boundaries are converted as cumulative positions, so rounding never accumulates; when a
    wall duration is given (drift-corrected), positions are scaled to sum to it exactly.
    """
    total = boundaries[-1] if boundaries else 0
    if wall_duration_us is None or total == 0:
        wall = [ticks_to_us(b, timescale) for b in boundaries]
    else:
        wall = [rescale(b, wall_duration_us, total) for b in boundaries]
    return [b - a for a, b in pairwise(wall)]


def next_rotation_us(start_us: int, period_us: int, offset_us: int) -> int:
    """First boundary (period-aligned, shifted by the stream's offset) at least half a period on.

    Aligning rotations to the wall clock with a per-stream offset staggers the fsync and
    rename work of many streams across the period instead of bunching it.
    """
    t = start_us + period_us // 2
    return t + (offset_us - t) % period_us
