"""The timeline's hover thumbnail: a small picture of the recording under the mouse.

Fetching a thumbnail means HTTP range requests and a key-frame decode, so it never runs on the UI
thread: ``LatestWins`` runs it on one worker thread for the newest hover position only (the mouse
moves faster than pictures decode; positions passed over are dropped), and the result comes
back through the bridge. The popup shows the newest picture that arrived, above the timeline at
the hovered x, with its time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from PySide6.QtCore import QObject, QPoint, Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from app.frames import VideoFrame
from app.timeline import TimelineModel as TimelineData
from ui.bridge import bridge
from ui.timeline import TimelineWidget
from ui.videotile import frame_to_rgb

log = logging.getLogger(__name__)
K = TypeVar("K")
R = TypeVar("R")
US = 1_000_000


class LatestWins(Generic[K, R]):
    """Runs ``work(key)`` on one worker thread for the newest requested key only.

    ``deliver(key, result)`` runs on the Qt thread (through the bridge); a failing ``work`` is
    logged and delivers None. ``cancel`` drops what is pending and what is in flight.
    """

    def __init__(
        self, work: Callable[[K], R], deliver: Callable[[K, R | None], None], name: str = "latest"
    ) -> None:
        self._work, self._deliver, self._name = work, deliver, name
        self._cond = threading.Condition()
        self._pending: tuple[int, K] | None = None
        self._gen = 0  # bumps with every request
        self._valid_from = 0  # results of requests older than this are dropped (cancel)
        self._closed = False
        self._thread: threading.Thread | None = None

    def request(self, key: K) -> None:
        with self._cond:
            if self._closed:
                return
            self._gen += 1
            self._pending = (self._gen, key)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify()

    def cancel(self) -> None:
        with self._cond:
            self._pending = None
            self._valid_from = self._gen + 1

    def close(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._closed = True
            self._pending = None
            self._cond.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    @property
    def busy(self) -> bool:
        with self._cond:
            return self._pending is not None

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                assert self._pending is not None
                gen, key = self._pending
                self._pending = None
            try:
                result: R | None = self._work(key)
            except Exception as exc:  # a recorder that went away: nothing to show
                log.debug("%s: %r failed: %s", self._name, key, exc)
                result = None
            bridge().post(lambda gen=gen, key=key, result=result: self._hand(gen, key, result))

    def _hand(self, gen: int, key: K, result: R | None) -> None:
        with self._cond:
            if self._closed or gen < self._valid_from:
                return
        self._deliver(key, result)


def frame_pixmap(frame: VideoFrame) -> QPixmap:
    rgb = frame_to_rgb(frame)
    h, w = rgb.shape[:2]
    image = QImage(rgb.data, w, h, rgb.strides[0], QImage.Format.Format_RGB888)
    return QPixmap.fromImage(image.copy())  # copy: the array goes away


def time_text(t_us: int, millis: bool = False) -> str:
    """Local date and time of ``t_us`` (with milliseconds when asked)."""
    text = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t_us // US))
    return f"{text}.{t_us // 1000 % 1000:03d}" if millis else text


class ThumbnailPopup(QWidget):
    """A frameless tool-tip window: the picture and its time."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.ToolTip | Qt.WindowType.FramelessWindowHint)
        self.setAttribute(Qt.WidgetAttribute.WA_ShowWithoutActivating, True)
        self.frame: VideoFrame | None = None
        self.picture = QLabel(self)
        self.caption = QLabel(self)
        self.caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(3, 3, 3, 3)
        layout.setSpacing(2)
        layout.addWidget(self.picture)
        layout.addWidget(self.caption)

    def show_frame(self, frame: VideoFrame, global_x: int, global_bottom: int) -> None:
        """Show ``frame`` centred on ``global_x``, its bottom edge at ``global_bottom``."""
        self.frame = frame
        self.picture.setPixmap(frame_pixmap(frame))
        self.caption.setText(time_text(frame.pts_us))
        self.adjustSize()
        self.move(QPoint(global_x - self.width() // 2, global_bottom - self.height()))
        self.show()


class HoverThumbnail(QObject):
    """Shows thumbnails of ``TimelineModel.thumbnail`` while the mouse hovers a timeline."""

    def __init__(self, timeline: TimelineWidget) -> None:
        super().__init__(timeline)
        self.timeline = timeline
        self.popup = ThumbnailPopup(timeline)
        self._model: TimelineData | None = None
        self._hover_us: int | None = None
        self._worker: LatestWins[tuple[TimelineData, int], VideoFrame] = LatestWins(
            self._fetch, self._arrived, name="timeline-thumbnail"
        )
        timeline.hover.connect(self._on_hover)
        timeline.hover_ended.connect(self.hide)
        timeline.destroyed.connect(lambda *_: self._worker.close(0))

    def set_model(self, model: TimelineData | None) -> None:
        """The camera whose pictures are shown (None: no thumbnails)."""
        self._model = model
        self.hide()

    @staticmethod
    def _fetch(key: tuple[TimelineData, int]) -> VideoFrame | None:
        model, t_us = key
        return model.thumbnail(t_us)

    def _on_hover(self, t_us: int) -> None:
        model = self._model
        if model is None:
            return
        self._hover_us = t_us
        self._worker.request((model, int(t_us)))

    def _arrived(self, key: tuple[TimelineData, int], frame: VideoFrame | None) -> None:
        model, _ = key
        if model is not self._model or self._hover_us is None:
            return
        if frame is None:
            self.popup.hide()
            return
        x = round(self.timeline.us_to_x(self._hover_us))
        top = self.timeline.mapToGlobal(QPoint(x, 0))
        self.popup.show_frame(frame, top.x(), top.y() - 4)

    def hide(self) -> None:
        self._hover_us = None
        self._worker.cancel()
        self.popup.hide()

    def close(self) -> None:
        self._worker.close()
        self.popup.hide()
