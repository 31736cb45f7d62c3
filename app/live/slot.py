"""Latest-wins hand-over of decoded frames from a decoder thread to whoever shows them.

A view wants the newest picture, never a queue of old ones, and the decoder must never wait
for a view: ``put`` replaces the frame under a short lock and wakes waiters; readers take a
reference (frames are immutable once put) and compare ``seq`` to see whether anything is new.
"""

from __future__ import annotations

import threading

from app.frames import VideoFrame
from app.signals import Signal


class FrameSlot:
    def __init__(self, name: str = "") -> None:
        self._cond = threading.Condition(threading.Lock())
        self._frame: VideoFrame | None = None
        self._seq = 0
        # runs on the decoder thread right after a put: a UI schedules a repaint from it
        self.frame_ready: Signal[VideoFrame] = Signal(f"{name}.frame_ready" if name else "slot")

    def put(self, frame: VideoFrame) -> int:
        """Make ``frame`` the newest; returns its slot sequence number (1, 2, …)."""
        with self._cond:
            self._frame = frame
            self._seq += 1
            seq = self._seq
            self._cond.notify_all()
        self.frame_ready.emit(frame)
        return seq

    def latest(self) -> tuple[int, VideoFrame | None]:
        """(seq, frame); seq 0 and None before the first frame."""
        with self._cond:
            return self._seq, self._frame

    @property
    def frame(self) -> VideoFrame | None:
        return self._frame

    @property
    def seq(self) -> int:
        return self._seq

    def wait_newer(self, seq: int, timeout: float | None = None) -> tuple[int, VideoFrame | None]:
        """Block until a frame newer than ``seq`` is put (or ``timeout``); returns ``latest()``."""
        with self._cond:
            self._cond.wait_for(lambda: self._seq > seq, timeout)
            return self._seq, self._frame

    def clear(self) -> None:
        """Forget the frame (a tile that stops showing a camera), keeping ``seq`` increasing."""
        with self._cond:
            self._frame = None
            self._seq += 1
            self._cond.notify_all()
