"""The playback clock several engines follow, so that cameras played together stay in step.

Media time (wall time of the recording, µs) = anchor media + rate x (now - anchor now), with
``now`` from a monotonic source that is passed in (a ``ManualTime`` in tests and frame-exact
renders). Every change bumps ``version`` and wakes the bound engines, which then present the
frame for the new media time. When every bound engine stands in a gap the clock skips to the
earliest next recording among them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from app.signals import Signal
from server.protocol.timeutil import monotonic_us

MIN_RATE, MAX_RATE = 1 / 8, 64.0


class ManualTime:
    """A time source that moves only when told to; call the clock's ``notify`` after moving."""

    def __init__(self, start_us: int = 0) -> None:
        self._now = start_us
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            return self._now

    def advance(self, us: int) -> None:
        with self._lock:
            self._now += us


@dataclass(frozen=True, slots=True)
class ClockState:
    media_us: int  # media (recording wall) time now
    rate: float  # signed: negative plays backwards
    paused: bool
    version: int  # bumps on every change and notify
    seek_version: int  # bumps on seeks only: engines re-seek (quick image, then exact frame)


class PlaybackClock:
    def __init__(self, now_us: Callable[[], int] = monotonic_us, media_us: int = 0) -> None:
        self._now = now_us
        self._lock = threading.Lock()
        self._anchor_now = now_us()
        self._anchor_media = media_us
        self._rate = 1.0
        self._paused = True
        self._version = 0
        self._seek_version = 0
        self._wakers: list[threading.Event] = []
        self._skips: dict[int, int | None] = {}  # engine id -> next recorded time while in a gap
        self.changed: Signal[ClockState] = Signal("clock.changed")

    # --- reading ---------------------------------------------------------------------------

    def _media_locked(self) -> int:
        if self._paused:
            return self._anchor_media
        return self._anchor_media + round((self._now() - self._anchor_now) * self._rate)

    def state(self) -> ClockState:
        with self._lock:
            return ClockState(self._media_locked(), self._rate, self._paused, self._version,
                              self._seek_version)  # fmt: skip

    def media_now(self) -> int:
        with self._lock:
            return self._media_locked()

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def paused(self) -> bool:
        return self._paused

    def real_us_until(self, media_us: int) -> float:
        """Real µs until the clock reaches ``media_us`` (inf when paused or moving away)."""
        with self._lock:
            if self._paused:
                return float("inf")
            delta = (media_us - self._media_locked()) / self._rate
        return delta if delta >= 0 else float("inf")

    # --- changing --------------------------------------------------------------------------

    def _reanchor(self) -> None:
        media = self._media_locked()
        self._anchor_now, self._anchor_media = self._now(), media

    def _changed(self, seek: bool = False) -> None:
        with self._lock:
            self._version += 1
            if seek:
                self._seek_version += 1
                self._skips.clear()
            wakers = list(self._wakers)
            state = ClockState(self._media_locked(), self._rate, self._paused, self._version,
                               self._seek_version)  # fmt: skip
        for w in wakers:
            w.set()
        self.changed.emit(state)

    def seek(self, media_us: int) -> None:
        with self._lock:
            self._anchor_now, self._anchor_media = self._now(), int(media_us)
        self._changed(seek=True)

    def pause(self) -> None:
        with self._lock:
            self._reanchor()
            self._paused = True
        self._changed()

    def resume(self) -> None:
        with self._lock:
            self._anchor_now = self._now()
            self._paused = False
        self._changed()

    def set_rate(self, rate: float) -> None:
        """Speed, signed: 1/8x to 64x forwards or backwards."""
        if not MIN_RATE <= abs(rate) <= MAX_RATE:
            raise ValueError(f"rate must be within {MIN_RATE}..{MAX_RATE} either way, not {rate}")
        with self._lock:
            self._reanchor()
            self._rate = float(rate)
        self._changed()

    def play(self, rate: float = 1.0) -> None:
        self.set_rate(rate)
        self.resume()

    def notify(self) -> None:
        """Wake the engines: the time source moved (``ManualTime``) or a display tick."""
        self._changed()

    # --- engines ---------------------------------------------------------------------------

    def bind(self, waker: threading.Event, engine_id: int) -> None:
        with self._lock:
            self._wakers.append(waker)
            self._skips.pop(engine_id, None)

    def unbind(self, waker: threading.Event, engine_id: int) -> None:
        with self._lock:
            self._wakers = [w for w in self._wakers if w is not waker]
            self._skips.pop(engine_id, None)

    def in_gap(self, engine_id: int, next_us: int | None) -> None:
        """An engine stands in a gap until ``next_us`` (None: nothing more recorded). When all
        bound engines stand in gaps the clock skips to the earliest next recording."""
        with self._lock:
            self._skips[engine_id] = next_us
            if len(self._skips) < len(self._wakers):
                return
            targets = [t for t in self._skips.values() if t is not None]
            now = self._media_locked()
            forward = self._rate > 0
            targets = [t for t in targets if (t > now if forward else t < now)]
            if not targets:
                return
            target = min(targets) if forward else max(targets)
        self.seek(target)

    def out_of_gap(self, engine_id: int) -> None:
        with self._lock:
            self._skips.pop(engine_id, None)
