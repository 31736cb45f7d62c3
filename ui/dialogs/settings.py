"""The settings dialog: one window, a page list on the left (recorders, cameras, recording, AI,
users, preferences). Non-modal: the wall keeps playing while an admin works here."""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from app.workstation import Workstation
from ui.dialogs.analytics import AnalyticsPage
from ui.dialogs.cameras import CamerasPage
from ui.dialogs.common import Page, Texts
from ui.dialogs.preferences import PreferencesPage
from ui.dialogs.recorders import RecordersPage
from ui.dialogs.recording import RecordingPage
from ui.dialogs.users import UsersPage

PAGES: dict[str, type[Page]] = {
    "recorders": RecordersPage,
    "cameras": CamerasPage,
    "recording": RecordingPage,
    "ai": AnalyticsPage,
    "users": UsersPage,
    "preferences": PreferencesPage,
}


class SettingsDialog(QDialog):
    def __init__(self, workstation: Workstation, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("settingsDialog")
        self.texts = Texts("SettingsDialog")
        self.texts.bind(self.setWindowTitle, "Settings")
        self.ws = workstation
        self.nav = QListWidget()
        self.nav.setFixedWidth(170)
        self.stack = QStackedWidget()
        self.pages: dict[str, Page] = {}
        for i, (key, cls) in enumerate(PAGES.items()):
            page = cls(workstation, self)
            self.pages[key] = page
            self.stack.addWidget(page)
            item = QListWidgetItem()
            item.setData(Qt.ItemDataRole.UserRole, key)
            self.nav.addItem(item)
            self.texts.bind(item.setText, cls.title)
            # Alt+1..6 jump to a page
            QShortcut(QKeySequence(f"Alt+{i + 1}"), self, lambda k=key: self.show_page(k))
        self.nav.currentRowChanged.connect(self._on_row)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        body = QHBoxLayout()
        body.addWidget(self.nav)
        body.addWidget(self.stack, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(body, 1)
        layout.addWidget(buttons)
        self.resize(980, 640)
        self.nav.setCurrentRow(0)

    def show_page(self, key: str) -> Page:
        if key not in self.pages:
            raise KeyError(f"no settings page {key!r}; pages: {', '.join(PAGES)}")
        self.nav.setCurrentRow(list(PAGES).index(key))
        return self.pages[key]

    def current_page(self) -> str:
        return list(PAGES)[self.stack.currentIndex()]

    def _on_row(self, row: int) -> None:
        if 0 <= row < len(PAGES):
            self.stack.setCurrentIndex(row)
            self.pages[list(PAGES)[row]].activate()

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.texts.retranslate()
        super().changeEvent(event)

    def done(self, result: int) -> None:
        for page in self.pages.values():
            page.release()
        super().done(result)

    def closeEvent(self, event) -> None:
        for page in self.pages.values():
            page.release()
        super().closeEvent(event)


def open_settings(
    parent: QWidget | None, workstation: Workstation, page: str | None = None
) -> SettingsDialog:
    """Show the settings dialog (non-modal) at ``page`` (a key of ``PAGES``)."""
    dialog = SettingsDialog(workstation, parent)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    if page is not None:
        dialog.show_page(page)
    dialog.show()
    return dialog
