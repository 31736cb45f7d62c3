"""Settings page: recorders (saved, discovered, logged in): add by address, log in and out,
remove. Passwords go to the keyring through ``app.settings``, never to the settings file."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.discovery import normalize_url
from app.session import Session
from app.workstation import Workstation
from ui.dialogs.common import Page


@dataclass
class RecorderRow:
    key: str  # server id when known, else the address
    name: str
    base_url: str
    user: str
    state: str  # the session's state, or 'not connected'
    sources: tuple[str, ...]  # 'saved', 'discovered', 'connected'
    server_id: str = ""


COLUMNS = ("Name", "Address", "User", "State", "Known from")


class RecordersPage(Page):
    title = "Recorders"
    context = "RecordersPage"

    def __init__(self, workstation: Workstation, parent: QWidget | None = None) -> None:
        super().__init__(workstation, parent)
        t = self.texts
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().hide()
        self.table.itemSelectionChanged.connect(self._on_select)
        self.address = QLineEdit()
        self.address.setPlaceholderText("http://192.0.2.10:8480")
        self.user = QLineEdit("admin")
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.remember = QCheckBox()
        self.remember.setChecked(True)
        t.bind(self.remember.setText, "Remember (password in the system keyring)")
        self.add_button = QPushButton()
        t.bind(self.add_button.setText, "Add and log in")
        self.add_button.clicked.connect(self.add)
        self.login_button = QPushButton()
        t.bind(self.login_button.setText, "Log in")
        self.login_button.clicked.connect(self.login_selected)
        self.logout_button = QPushButton()
        t.bind(self.logout_button.setText, "Log out")
        self.logout_button.clicked.connect(self.logout_selected)
        self.remove_button = QPushButton()
        t.bind(self.remove_button.setText, "Remove")
        self.remove_button.clicked.connect(self.remove_selected)

        form = QFormLayout()
        form.addRow(t.label("Address"), self.address)
        form.addRow(t.label("User"), self.user)
        form.addRow(t.label("Password"), self.password)
        form.addRow("", self.remember)
        buttons = QHBoxLayout()
        for b in (self.add_button, self.login_button, self.logout_button, self.remove_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table, 1)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        self.rows: list[RecorderRow] = []
        self.retranslate()

        self.hook(workstation.sessions.added, lambda _s: self.reload())
        self.hook(workstation.sessions.removed, lambda _s: self.reload())
        self.hook(workstation.tree.recorder_changed, lambda _r: self.reload())
        self.hook(workstation.settings.changed, lambda _s: self.reload())
        if workstation.discovery is not None:
            d = workstation.discovery
            for sig in (d.added, d.updated, d.removed):
                self.hook(sig, lambda _e: self.reload())
        self.reload()

    def retranslate(self) -> None:
        super().retranslate()
        self.table.setHorizontalHeaderLabels([self.tr_(c) for c in COLUMNS])
        self.reload()

    def activate(self) -> None:
        self.reload()

    # --- list -------------------------------------------------------------------------------

    def collect(self) -> list[RecorderRow]:
        """Saved, discovered and connected recorders, one row each."""
        rows: dict[str, RecorderRow] = {}
        by_url: dict[str, str] = {}

        def row_for(server_id: str, base_url: str) -> RecorderRow:
            key = server_id or by_url.get(base_url) or base_url
            row = rows.get(key)
            if row is None and server_id and base_url in rows:
                row = rows.pop(base_url)  # learned who is at that address
                row.key = key
            if row is None:
                row = RecorderRow(key, "", base_url, "", "", ())
            row.server_id = row.server_id or server_id
            rows[key] = row
            by_url[base_url] = key
            return row

        for saved in self.ws.settings.servers:
            row = row_for(saved.server_id, saved.base_url)
            row.name = row.name or saved.name
            row.user = row.user or saved.user
            row.sources += ("saved",)
        if self.ws.discovery is not None:
            for entry in self.ws.discovery.servers():
                row = row_for(entry.server_id, entry.base_url)
                row.name = entry.name or row.name
                row.sources += ("discovered",)
        for s in self.ws.sessions.sessions():
            row = row_for(s.server_id, s.base_url)
            row.name, row.user, row.state = s.name, s.user, s.state
            row.sources += ("connected",)
        return list(rows.values())

    def reload(self) -> None:
        selected = self.selected()
        self.rows = self.collect()
        self.table.setRowCount(len(self.rows))
        for i, row in enumerate(self.rows):
            state = self.tr_(row.state) if row.state else self.tr_("not connected")
            sources = ", ".join(self.tr_(s) for s in row.sources)
            values = (row.name or "—", row.base_url, row.user, state, sources)
            for col, value in enumerate(values):
                self.table.setItem(i, col, QTableWidgetItem(value))
            if selected is not None and row.key == selected.key:
                self.table.selectRow(i)
        self._on_select()

    def row_index(self, key: str) -> int:
        return next((i for i, r in enumerate(self.rows) if key in (r.key, r.base_url)), -1)

    def selected(self) -> RecorderRow | None:
        items = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if not items:
            return None
        i = items[0].row()
        return self.rows[i] if 0 <= i < len(self.rows) else None

    def select(self, key: str) -> None:
        i = self.row_index(key)
        if i >= 0:
            self.table.selectRow(i)

    def _on_select(self) -> None:
        row = self.selected()
        connected = row is not None and "connected" in row.sources
        self.login_button.setEnabled(row is not None and not connected)
        self.logout_button.setEnabled(connected)
        self.remove_button.setEnabled(row is not None)
        if row is not None:
            self.address.setText(row.base_url)
            if row.user:
                self.user.setText(row.user)

    # --- actions ----------------------------------------------------------------------------

    def add(self) -> None:
        """Log in to the address in the form; saved when it works (and "remember" is on)."""
        try:
            url = normalize_url(self.address.text())
        except ValueError as exc:
            self.status.error(str(exc))
            return
        user, password = self.user.text().strip(), self.password.text()
        if not user:
            self.status.error(self.tr_("A user name is needed"))
            return
        self._connect(url, user, password, self.remember.isChecked())

    def _connect(self, url: str, user: str, password: str, remember: bool) -> None:
        self.status.busy(self.tr_("Logging in to {0}…").format(url))
        self.add_button.setEnabled(False)

        def work() -> Session:
            return self.ws.connect(url, user, password, remember=remember)

        def ok(session: Session) -> None:
            self.add_button.setEnabled(True)
            self.password.clear()
            self.status.ok(
                self.tr_("Logged in to {0} as {1} ({2})").format(
                    session.name, session.user, session.role
                )
            )
            self.reload()
            self.select(session.server_id)

        def error(exc: BaseException) -> None:
            self.add_button.setEnabled(True)
            self.fail(exc)

        self.tasks.blocking(work, ok, error)

    def login_selected(self) -> None:
        row = self.selected()
        if row is None:
            return
        user = self.user.text().strip() or row.user
        remember = "saved" in row.sources
        password = self.password.text()
        if password:
            self._connect(row.base_url, user, password, remember)
            return
        saved = self.ws.settings.server(row.server_id or row.base_url)

        def lookup() -> str:  # the keyring may wait on D-Bus: a worker thread
            return (self.ws.settings.password(saved) if saved else None) or ""

        def found(password: str) -> None:
            if not password:
                self.status.error(self.tr_("Type the password (none is saved for this recorder)"))
                self.password.setFocus()
                return
            self._connect(row.base_url, user, password, remember)

        self.status.busy(self.tr_("Logging in to {0}…").format(row.base_url))
        self.tasks.blocking(lookup, found, self.fail)

    def logout_selected(self) -> None:
        row = self.selected()
        if row is None or not row.server_id:
            return
        sid = row.server_id
        self.status.busy(self.tr_("Logging out…"))
        self.tasks.blocking(
            lambda: self.ws.sessions.disconnect(sid),
            lambda _r: (self.status.ok(self.tr_("Logged out")), self.reload()),
            self.fail,
        )

    def remove_selected(self) -> None:
        """Log out, forget the saved entry (and its password) and the manual address."""
        row = self.selected()
        if row is None:
            return
        ws = self.ws

        def work() -> None:
            if row.server_id:
                ws.sessions.disconnect(row.server_id)
            ws.settings.remove_server(row.server_id or row.base_url)
            ws.settings.remove_server(row.base_url)
            if ws.discovery is not None:
                ws.discovery.remove(row.base_url)

        self.status.busy(self.tr_("Removing…"))
        self.tasks.blocking(
            work, lambda _r: (self.status.ok(self.tr_("Removed")), self.reload()), self.fail
        )
