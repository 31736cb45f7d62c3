"""Retry delays: capped exponential backoff with jitter, shared by recorder and workstation.

Without jitter every client that lost the same recorder (a restart, a network blip) retries in
the same instant, again and again, and the recorder meets a burst of logins at each step. Two
jitters are offered (Marc Brooker, "Exponential Backoff And Jitter", AWS Architecture Blog):

- ``decorrelated`` (the default): each delay is drawn between ``initial_s`` and
  ``factor + 1`` times the previous delay (``initial_s`` before the first), capped at ``max_s``
  (with ``factor`` 2 this is the article's ``random_between(base, sleep * 3)``: the delays still
  grow about 1.5 times per failure on average; drawing up to only twice the previous delay would
  make them creep up instead). It never retries sooner than ``initial_s``, so a refused
  connection is not hammered, and clients spread out from the first retry on.
- ``full``: uniform between 0 and the capped exponential ``initial_s * factor**(n - 1)``; the
  widest spread, but a retry can come at once.

``none`` gives the plain capped exponential (for callers that must be predictable).
The random source is injectable so that tests are deterministic.
"""

from __future__ import annotations

import random
from typing import Literal, Protocol

Jitter = Literal["decorrelated", "full", "none"]


class RandomSource(Protocol):
    def uniform(self, a: float, b: float) -> float: ...


class Backoff:
    """The delays before successive retries; ``reset`` after a success.

    Not thread-safe: one instance per retrying loop (an ingest thread, a session).
    """

    def __init__(
        self,
        initial_s: float,
        max_s: float,
        *,
        factor: float = 2.0,
        jitter: Jitter = "decorrelated",
        rng: RandomSource | None = None,
    ) -> None:
        if not 0 < initial_s <= max_s or factor < 1:
            raise ValueError("backoff needs 0 < initial_s <= max_s and factor >= 1")
        if jitter not in ("decorrelated", "full", "none"):
            raise ValueError(f"unknown jitter {jitter!r}")
        self.initial_s, self.max_s, self.factor, self.jitter = initial_s, max_s, factor, jitter
        self._rng: RandomSource = rng if rng is not None else random.Random()
        self.failures = 0
        self._last_s = initial_s

    def next(self) -> float:
        """Count one more failure and return how long to wait before the next try (seconds)."""
        self.failures += 1
        ceiling = min(self.max_s, self.initial_s * self.factor ** (self.failures - 1))
        if self.jitter == "none":
            delay = ceiling
        elif self.jitter == "full":
            delay = self._rng.uniform(0.0, ceiling)
        else:
            upper = self._last_s * (self.factor + 1)
            delay = min(self.max_s, self._rng.uniform(self.initial_s, upper))
        self._last_s = delay
        return delay

    def reset(self) -> None:
        """After a success: the next failure starts again from ``initial_s``."""
        self.failures = 0
        self._last_s = self.initial_s
