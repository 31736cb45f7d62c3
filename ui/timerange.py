"""The time range of the search panels (events, motion search) and what else they share.

``TimeRange`` is a preset box ("last hour" and the like, which follow "now", so live results
keep landing in them) with two date edits shown for a custom range. ``now_us`` and
``camera_name`` are the small helpers both panels need.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QCoreApplication, QDateTime, QObject, Signal
from PySide6.QtWidgets import QComboBox, QDateTimeEdit, QFormLayout, QHBoxLayout, QWidget

from server.protocol.timeutil import DAY_US, MINUTE_US

# preset windows, None for the custom range (its text comes from ``preset_text``)
PRESETS: tuple[int | None, ...] = (15 * MINUTE_US, 60 * MINUTE_US, DAY_US, 7 * DAY_US, None)
DATE_FORMAT = "yyyy-MM-dd HH:mm:ss"


def _tr(text: str) -> str:
    return QCoreApplication.translate("TimeRange", text)


def preset_text(window_us: int | None) -> str:
    texts = {
        15 * MINUTE_US: _tr("Last 15 minutes"),
        60 * MINUTE_US: _tr("Last hour"),
        DAY_US: _tr("Last 24 hours"),
        7 * DAY_US: _tr("Last 7 days"),
    }
    if window_us is None:
        return _tr("Custom range")
    return texts.get(window_us) or _tr("Last {minutes} minutes").format(
        minutes=window_us // MINUTE_US
    )


def camera_name(tree: Any, server_id: str, camera_id: str) -> str:
    """The camera's name in the workstation's camera tree, else its id."""
    node = tree.camera((server_id, camera_id))
    return node.name if node is not None and node.name else camera_id


class TimeRange(QObject):
    """A preset box and, for a custom range, a from and a to edit; ``changed`` on any edit."""

    changed = Signal()

    def __init__(
        self, parent: QWidget, presets: tuple[int | None, ...] = PRESETS, current_us: int = 0
    ) -> None:
        super().__init__(parent)
        self.box = QComboBox(parent)
        for window in presets:
            self.box.addItem(preset_text(window), window)
        self.box.setCurrentIndex(max(0, self.box.findData(current_us or 60 * MINUTE_US)))
        now = QDateTime.currentDateTime()
        self.from_edit = QDateTimeEdit(now.addSecs(-3600), parent)
        self.to_edit = QDateTimeEdit(now, parent)
        for edit in (self.from_edit, self.to_edit):
            edit.setDisplayFormat(DATE_FORMAT)
            edit.setCalendarPopup(True)
            edit.setVisible(False)
            edit.dateTimeChanged.connect(lambda *_a: self.changed.emit())
        self.box.currentIndexChanged.connect(self._box_changed)

    def add_rows(self, form: QFormLayout, label: str) -> None:
        """The box under ``label``, the date edits on the row below it."""
        form.addRow(label, self.box)
        span = QHBoxLayout()
        span.addWidget(self.from_edit)
        span.addWidget(self.to_edit)
        form.addRow("", span)

    @property
    def window_us(self) -> int | None:
        """The preset window, None for the custom range."""
        return self.box.currentData()

    def custom_span(self) -> tuple[int, int]:
        """The date edits' range (µs since the epoch)."""
        return (
            self.from_edit.dateTime().toMSecsSinceEpoch() * 1000,
            self.to_edit.dateTime().toMSecsSinceEpoch() * 1000,
        )

    def set_window(self, window_us: int | None) -> bool:
        """Choose the preset ``window_us`` (None: custom); False when there is no such preset.
        Quiet: ``changed`` is not emitted."""
        index = self.box.findData(window_us) if window_us is not None else self.box.count() - 1
        if index < 0:
            return False
        self.box.blockSignals(True)
        self.box.setCurrentIndex(index)
        self.box.blockSignals(False)
        self.sync_edits()
        return True

    def set_custom_span(self, start_us: int, end_us: int) -> None:
        """Show ``start_us``..``end_us`` in the date edits (quietly)."""
        for edit, t_us in ((self.from_edit, start_us), (self.to_edit, end_us)):
            edit.blockSignals(True)
            edit.setDateTime(QDateTime.fromMSecsSinceEpoch(t_us // 1000))
            edit.blockSignals(False)

    def sync_edits(self) -> None:
        custom = self.window_us is None
        self.from_edit.setVisible(custom)
        self.to_edit.setVisible(custom)

    def retranslate(self) -> None:
        for i in range(self.box.count()):
            self.box.setItemText(i, preset_text(self.box.itemData(i)))

    def _box_changed(self) -> None:
        self.sync_edits()
        self.changed.emit()
