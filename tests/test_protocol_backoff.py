"""Retry delays shared by the ingest worker and the workstation session, and the wall clock."""

from __future__ import annotations

import random
import time

import pytest

from app.session import session_backoff
from server.ingest.worker import reconnect_backoff
from server.protocol.backoff import Backoff
from server.protocol.timeutil import monotonic_us, now_us


class Edge:
    """A random source that always answers one end of the range, and records the ranges."""

    def __init__(self, upper: bool) -> None:
        self.upper = upper
        self.ranges: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.ranges.append((a, b))
        return b if self.upper else a


def test_without_jitter_it_is_the_capped_exponential() -> None:
    b = Backoff(0.5, 10.0, jitter="none")
    assert [b.next() for _ in range(8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    b.reset()
    assert b.failures == 0 and b.next() == 0.5


def test_decorrelated_jitter_stays_between_the_floor_and_the_cap() -> None:
    high = Edge(upper=True)
    b = Backoff(0.5, 10.0, rng=high)
    assert [b.next() for _ in range(5)] == [1.5, 4.5, 10.0, 10.0, 10.0]
    assert high.ranges[:3] == [(0.5, 1.5), (0.5, 4.5), (0.5, 13.5)], "spread from the first on"
    low = Edge(upper=False)
    b = Backoff(0.5, 10.0, rng=low)
    assert [b.next() for _ in range(4)] == [0.5] * 4, "never sooner than initial_s"
    b = Backoff(0.5, 10.0, rng=random.Random(7))
    delays = [b.next() for _ in range(200)]
    assert all(0.5 <= d <= 10.0 for d in delays)
    assert len(set(delays)) > 50, "each retry draws anew"


def test_full_jitter_draws_below_the_exponential_ceiling() -> None:
    edge = Edge(upper=True)
    b = Backoff(0.1, 0.5, jitter="full", rng=edge)
    assert [b.next() for _ in range(4)] == [0.1, 0.2, 0.4, 0.5]
    assert edge.ranges == [(0.0, 0.1), (0.0, 0.2), (0.0, 0.4), (0.0, 0.5)]


def test_reset_starts_again_from_the_floor() -> None:
    edge = Edge(upper=True)
    b = Backoff(0.5, 10.0, rng=edge)
    for _ in range(6):
        b.next()
    b.reset()
    assert b.next() == 1.5 and edge.ranges[-1] == (0.5, 1.5)


def test_workstations_do_not_retry_in_the_same_instant() -> None:
    """After a recorder restart, 50 sessions' first retries spread over 0.5..1.5 s."""
    firsts = [Backoff(0.5, 10.0, rng=random.Random(seed)).next() for seed in range(50)]
    assert all(0.5 <= d <= 1.5 for d in firsts)
    assert max(firsts) - min(firsts) > 0.6


def test_the_callers_keep_their_bounds() -> None:
    ingest, session = reconnect_backoff(), session_backoff()
    assert (ingest.initial_s, ingest.max_s, ingest.factor) == (0.1, 0.5, 2.0)
    assert (session.initial_s, session.max_s, session.factor) == (0.5, 10.0, 2.0)
    assert all(0.1 <= ingest.next() <= 0.5 for _ in range(50))
    assert reconnect_backoff(0.05).initial_s == 0.05  # a configured cap below 0.1 s is kept


@pytest.mark.parametrize(
    "kwargs", [{"initial_s": 0.0, "max_s": 1.0}, {"initial_s": 2.0, "max_s": 1.0},
               {"initial_s": 1.0, "max_s": 2.0, "factor": 0.5},
               {"initial_s": 1.0, "max_s": 2.0, "jitter": "some"}],
)  # fmt: skip
def test_bad_bounds_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)


def test_now_us_is_integer_wall_time() -> None:
    before = time.time_ns() // 1000
    t = now_us()
    assert isinstance(t, int) and before <= t <= time.time_ns() // 1000
    a = monotonic_us()
    assert isinstance(a, int) and monotonic_us() >= a
