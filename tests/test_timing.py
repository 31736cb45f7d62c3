"""The time model (docs/design/recording.md), driven with explicit receive times."""

from __future__ import annotations

from server.recording.timing import SegmentClock, fragment_durations_us, next_rotation_us

T0 = 1_700_000_000_000_000


def test_first_segment_starts_at_least_delayed_frame() -> None:
    clock = SegmentClock.first_of_run(recv_us=T0 + 300_000, floor_us=0)  # a late first packet
    for i, delay in enumerate([250_000, 20_000, 90_000, 35_000]):
        clock.observe(T0 + (i + 1) * 40_000 + delay, (i + 1) * 40_000)
    assert clock.start_us == T0 + 20_000


def test_first_segment_never_overlaps_previous() -> None:
    clock = SegmentClock.first_of_run(recv_us=T0 + 5_000, floor_us=T0 + 10_000)
    clock.observe(T0 + 40_000, 40_000)
    assert clock.start_us == T0 + 10_000


def test_chained_start_fixed_and_drift_bounded() -> None:
    clock = SegmentClock.chained_after(T0, recv_us=T0 + 50_000, media_elapsed_us=0)
    clock.observe(T0 + 40_000 + 10_000, 40_000)  # est T0 + 10_000
    assert clock.start_us == T0
    assert clock.wall_duration_us(60_000_000, 500) == 60_010_000  # within the 30 ms bound
    slow = SegmentClock.chained_after(T0, recv_us=T0 - 90_000, media_elapsed_us=0)
    assert slow.wall_duration_us(60_000_000, 500) == 59_970_000  # clamped at -30 ms


def test_fragment_durations_sum_exactly_and_do_not_drift() -> None:
    bounds = [i * 3003 for i in range(0, 1801, 30)]  # 29.97 fps, 60 fragments of 1 s
    durations = fragment_durations_us(bounds, 90_000)
    assert sum(durations) == round(1800 * 3003 / 0.09)
    scaled = fragment_durations_us(bounds, 90_000, wall_duration_us=60_100_000)
    assert sum(scaled) == 60_100_000
    assert max(scaled) - min(scaled) <= 1


def test_rotation_is_aligned_staggered_and_not_too_soon() -> None:
    period = 60_000_000
    for offset in (0, 17_000_000, 59_000_000):
        for start in (T0, T0 + 1, T0 + 29_999_999, T0 + 45_000_000):
            r = next_rotation_us(start, period, offset)
            assert (r - offset) % period == 0
            assert period // 2 <= r - start < period * 3 // 2
