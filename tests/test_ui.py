"""The PySide6 pin that keeps Qt painting stable (the window itself: test_ui_main.py)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtWidgets import QApplication, QWidget


class _Painter(QWidget):
    def __init__(self) -> None:
        super().__init__()
        self.frames = 0
        self.image = QImage(64, 64, QImage.Format.Format_RGB32)
        self.image.fill(QColor("navy"))

    def paintEvent(self, _event) -> None:
        p = QPainter(self)
        p.drawImage(0, 0, self.image)
        p.drawText(4, 20, f"frame {self.frames}")
        p.end()
        self.frames += 1


def test_repeated_painting_does_not_crash(qtbot) -> None:
    """PySide6 6.12.0 on Python 3.11 frees None in drawImage/drawText/update (see
    platform notes): a few thousand paints kill the process. The pin (<6.12) must hold."""
    w = _Painter()
    qtbot.addWidget(w)
    w.resize(200, 100)
    w.show()
    for _ in range(3000):
        w.update()
        w.grab()  # renders synchronously through paintEvent
    QApplication.processEvents()
    assert w.frames >= 3000
    assert w.testAttribute(Qt.WidgetAttribute.WA_WState_Visible)
