"""PTZ from a video tile: drag for a continuous move, wheel to zoom, arrow keys, a presets
menu, and the PTZ state drawn on the tile (``app.ptz`` does the arithmetic and the calls).

A tile steers only while its PTZ mode is on (the tile's "PTZ" button), so that a drag keeps
moving cameras between wall cells otherwise.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, QPointF, Qt, Signal
from PySide6.QtWidgets import QInputDialog, QMenu, QWidget

from app.ptz import KEYS, PtzControl, drag_velocity
from ui.dialogs.common import Tasks, describe

log = logging.getLogger(__name__)

ARROWS = {Qt.Key.Key_Left: "left", Qt.Key.Key_Right: "right", Qt.Key.Key_Up: "up",
          Qt.Key.Key_Down: "down"}  # fmt: skip
RESEND = 0.05  # a drag changes the velocity sent only by at least this much


class TilePtz(QObject):
    """The PTZ of the camera on one tile."""

    changed = Signal()  # the state text changed: the tile repaints

    def __init__(self, control: PtzControl, parent: QWidget) -> None:
        super().__init__(parent)
        self.control = control
        self.tasks = Tasks(self)
        self.active = False
        self.text = "PTZ"  # drawn on the tile
        self.presets: list[dict] = []
        self.commands = 0  # sent (tests wait on it)
        self.answered = 0
        self._from: QPointF | None = None
        self._sent: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def set_active(self, active: bool) -> None:
        self.active = active
        if active:
            self.refresh()
        else:
            self._say("PTZ")

    def refresh(self) -> None:
        def ok(state: dict) -> None:
            lacks = f" (no {', '.join(state['missing'])})" if state["missing"] else ""
            holder = f" · {state['holder']} steering" if state.get("holder") else ""
            self._say(f"PTZ{lacks}{holder}")

        self.tasks.future(self.control.state(), ok, self._fail)

        def got(presets: list[dict]) -> None:
            self.presets = presets

        self.tasks.future(self.control.presets(), got, self._fail)

    def _say(self, text: str) -> None:
        self.text = text
        self.changed.emit()

    def _fail(self, exc: BaseException) -> None:
        self.answered += 1
        self._say(f"PTZ: {describe(exc)}")

    def _done(self, _r: object) -> None:
        self.answered += 1

    def _send(self, future) -> None:
        self.commands += 1
        self.tasks.future(future, self._done, self._fail)

    # gestures -----------------------------------------------------------------------------

    def press(self, pos: QPointF) -> None:
        self._from = pos
        self._sent = (0.0, 0.0, 0.0)

    def drag(self, pos: QPointF, width: float, height: float) -> None:
        if self._from is None:
            return
        pan, tilt = drag_velocity(pos.x() - self._from.x(), pos.y() - self._from.y(), width,
                                  height)  # fmt: skip
        if max(abs(pan - self._sent[0]), abs(tilt - self._sent[1])) < RESEND:
            return
        self._sent = (pan, tilt, 0.0)
        if pan == tilt == 0.0:
            self._send(self.control.stop())
        else:
            self._send(self.control.move(pan, tilt, 0.0, timeout_s=10))

    def release(self) -> None:
        if self._from is None:
            return
        self._from = None
        if self._sent != (0.0, 0.0, 0.0):
            self._send(self.control.stop())
        self._sent = (0.0, 0.0, 0.0)

    def wheel(self, notches: float) -> None:
        self._send(self.control.zoom_burst(notches))

    def key(self, key: Qt.Key, pressed: bool) -> bool:
        name = ARROWS.get(key)
        if name is None:
            return False
        if pressed:
            pan, tilt = KEYS[name]
            self._send(self.control.move(pan, tilt, 0.0, timeout_s=10))
        else:
            self._send(self.control.stop())
        return True

    def menu(self, parent: QWidget) -> QMenu:
        """Presets (go to), save the present position, home."""
        menu = QMenu(parent)
        for p in self.presets:
            action = menu.addAction(p["name"] or p["token"])
            action.triggered.connect(lambda _c=False, t=p["token"]: self.goto(t))
        if self.presets:
            menu.addSeparator()
        menu.addAction(self.tr("Save position as preset…")).triggered.connect(
            lambda: self.save_asking(parent)
        )
        menu.addAction(self.tr("Home")).triggered.connect(lambda: self._send(self.control.home()))
        return menu

    def goto(self, token: str) -> None:
        self._send(self.control.goto(token))

    def save(self, name: str) -> None:
        def ok(_p: dict) -> None:
            self.answered += 1
            self.refresh()

        self.commands += 1
        self.tasks.future(self.control.save(name), ok, self._fail)

    def save_asking(self, parent: QWidget) -> None:
        name, ok = QInputDialog.getText(parent, self.tr("Save preset"), self.tr("Name"))
        if ok and name.strip():
            self.save(name.strip())
