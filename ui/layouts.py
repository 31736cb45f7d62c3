"""Layout tours: cycle through saved layouts every N seconds.

The named layouts themselves (kept locally and on the recorders) are the engine's
``app.layouts``; they are re-exported here for the window.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal

from app.layouts import (
    Layouts,
    LocalLayouts,
    NamedLayout,
    RemoteLayouts,
    check_name,
    pick_layouts,
)

__all__ = [
    "Layouts",
    "LocalLayouts",
    "NamedLayout",
    "RemoteLayouts",
    "Tour",
    "check_name",
    "pick_layouts",
]


class Tour(QObject):
    """Shows the given layouts in turn, one every ``interval_s`` seconds."""

    step = Signal(str)  # the layout name to show now

    def __init__(self, names: list[str], interval_s: float, parent: QObject | None = None):
        super().__init__(parent)
        if not names:
            raise ValueError("a tour needs at least one layout")
        if not 1 <= interval_s <= 86_400:
            raise ValueError("a tour's interval is 1 s to a day")
        self.names = list(names)
        self.layouts: dict[str, NamedLayout] = {}  # by name, fetched once by whoever shows them
        self.index = -1
        self._timer = QTimer(self)
        self._timer.setInterval(round(interval_s * 1000))
        self._timer.timeout.connect(self.next)

    @property
    def running(self) -> bool:
        return self._timer.isActive()

    def start(self) -> None:
        self.next()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def next(self) -> None:
        self.index = (self.index + 1) % len(self.names)
        self.step.emit(self.names[self.index])
