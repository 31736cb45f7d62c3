"""Settings page: users and roles of a recorder (``GET/POST/PATCH /users``): name, role
(admin / operator / viewer), the cameras a user may see (all, or a list), password, disable."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.users_admin import UsersAdmin, user_changes
from app.workstation import Workstation
from ui.dialogs.common import Page, RecorderPicker

ROLES = ("admin", "operator", "viewer")
COLUMNS = ("Name", "Role", "Cameras", "Disabled")


class UsersPage(Page):
    title = "Users"
    context = "UsersPage"

    def __init__(self, workstation: Workstation, parent: QWidget | None = None) -> None:
        super().__init__(workstation, parent)
        t = self.texts
        self.recorder = RecorderPicker(workstation)
        self.recorder.currentIndexChanged.connect(lambda _i: self.reload())
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._on_select)
        self.name = QLineEdit()
        self.role = QComboBox()
        for role in ROLES:
            self.role.addItem(role, role)
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.all_cameras = QCheckBox()
        t.bind(self.all_cameras.setText, "All cameras")
        self.all_cameras.setChecked(True)
        self.cameras = QListWidget()
        self.cameras.setMaximumHeight(110)
        self.all_cameras.toggled.connect(lambda on: self.cameras.setEnabled(not on))
        self.cameras.setEnabled(False)
        self.disabled = QCheckBox()
        t.bind(self.disabled.setText, "Disabled (cannot log in)")
        self.new_button = QPushButton()
        t.bind(self.new_button.setText, "New")
        self.new_button.clicked.connect(self.new_user)
        self.add_button = QPushButton()
        t.bind(self.add_button.setText, "Add user")
        self.add_button.clicked.connect(self.add)
        self.save_button = QPushButton()
        t.bind(self.save_button.setText, "Save changes")
        self.save_button.clicked.connect(self.save)
        self.refresh_button = QPushButton()
        t.bind(self.refresh_button.setText, "Refresh")
        self.refresh_button.clicked.connect(self.reload)

        top = QHBoxLayout()
        top.addWidget(t.label("Recorder"))
        top.addWidget(self.recorder, 1)
        top.addWidget(self.refresh_button)
        form = QFormLayout()
        form.addRow(t.label("Name"), self.name)
        form.addRow(t.label("Role"), self.role)
        self.password_label = t.label("Password")
        form.addRow(self.password_label, self.password)
        form.addRow(t.label("Cameras"), self.all_cameras)
        form.addRow("", self.cameras)
        form.addRow("", self.disabled)
        buttons = QHBoxLayout()
        for b in (self.new_button, self.add_button, self.save_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        self.users: list[dict] = []
        self.editing = ""
        self.hook(workstation.sessions.added, lambda _s: self.recorder.reload())
        self.hook(workstation.sessions.removed, lambda _s: self.recorder.reload())
        self.retranslate()
        self.new_user()

    def retranslate(self) -> None:
        super().retranslate()
        self.table.setHorizontalHeaderLabels([self.tr_(c) for c in COLUMNS])
        for i, role in enumerate(ROLES):
            self.role.setItemText(i, self.tr_(role))

    def activate(self) -> None:
        self.recorder.reload()
        self.reload()

    def reload(self, select: str | None = None) -> None:
        session = self.recorder.session()
        self._fill_cameras()
        if session is None:
            self.show_users([])
            return
        self.status.busy(self.tr_("Reading users…"))
        keep = select if select is not None else self.editing

        def ok(users: list[dict]) -> None:
            self.status.clear_status()
            self.show_users(users or [], keep)

        self.tasks.future(UsersAdmin(session).list(), ok, self.fail)

    def _fill_cameras(self, checked: list[str] | None = None) -> None:
        session = self.recorder.session()
        self.cameras.clear()
        for cam in session.cameras if session else []:
            item = QListWidgetItem(f"{cam.get('name') or cam['id']} ({cam['id']})")
            item.setData(Qt.ItemDataRole.UserRole, cam["id"])
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            on = checked is not None and cam["id"] in checked
            item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
            self.cameras.addItem(item)

    def show_users(self, users: list[dict], select: str = "") -> None:
        self.users = users
        self.table.blockSignals(True)
        self.table.setRowCount(len(users))
        for row, u in enumerate(users):
            cams = u.get("cameras")
            values = (
                u["name"],
                self.tr_(u.get("role", "")),
                self.tr_("all") if cams is None else ", ".join(cams),
                self.tr_("yes") if u.get("disabled") else "",
            )
            for col, v in enumerate(values):
                self.table.setItem(row, col, QTableWidgetItem(v))
            if u["name"] == select:
                self.table.selectRow(row)
        self.table.blockSignals(False)
        if select and self.user(select):
            self.edit(select)

    def user(self, name: str) -> dict | None:
        return next((u for u in self.users if u["name"] == name), None)

    def _on_select(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if rows and 0 <= rows[0].row() < len(self.users):
            self.edit(self.users[rows[0].row()]["name"])

    def new_user(self) -> None:
        self.editing = ""
        self.table.clearSelection()
        self.name.clear()
        self.name.setReadOnly(False)
        self.password.clear()
        self.role.setCurrentIndex(ROLES.index("viewer"))
        self.all_cameras.setChecked(True)
        self.disabled.setChecked(False)
        self._fill_cameras()
        self.password.setPlaceholderText("")
        self.add_button.setEnabled(True)
        self.save_button.setEnabled(False)

    def edit(self, name: str) -> None:
        u = self.user(name)
        if u is None:
            return
        self.editing = name
        self.name.setText(name)
        self.name.setReadOnly(True)
        self.password.clear()
        self.password.setPlaceholderText(self.tr_("unchanged"))
        self.role.setCurrentIndex(max(0, self.role.findData(u.get("role"))))
        cams = u.get("cameras")
        self.all_cameras.setChecked(cams is None)
        self._fill_cameras(cams or [])
        self.disabled.setChecked(bool(u.get("disabled")))
        self.add_button.setEnabled(False)
        self.save_button.setEnabled(True)

    def chosen_cameras(self) -> list[str] | None:
        if self.all_cameras.isChecked():
            return None
        out = []
        for i in range(self.cameras.count()):
            item = self.cameras.item(i)
            if item.checkState() == Qt.CheckState.Checked:
                out.append(str(item.data(Qt.ItemDataRole.UserRole)))
        return out

    def add(self) -> None:
        session = self.recorder.session()
        if session is None:
            self.status.error(self.tr_("Log in to a recorder first (Recorders page)"))
            return
        name, password = self.name.text().strip(), self.password.text()
        if not name or not password:
            self.status.error(self.tr_("A new user needs a name and a password"))
            return
        role, cameras = self.role.currentData(), self.chosen_cameras()
        disable = self.disabled.isChecked()
        self.status.busy(self.tr_("Adding {0}…").format(name))

        def ok(_u: dict) -> None:
            self.status.ok(self.tr_("Added {0}").format(name))
            self.editing = name
            self.reload(select=name)

        added = UsersAdmin(session).add(name, password, role, cameras, disabled=disable)
        self.tasks.future(added, ok, self.fail)

    def save(self) -> None:
        session = self.recorder.session()
        if session is None or not self.editing:
            return
        name, u = self.editing, self.user(self.editing) or {}
        body = user_changes(
            u,
            self.role.currentData(),
            self.chosen_cameras(),
            self.disabled.isChecked(),
            self.password.text(),
        )
        if not body:
            self.status.ok(self.tr_("Nothing changed"))
            return
        self.status.busy(self.tr_("Saving {0}…").format(name))

        def ok(_u: dict) -> None:
            self.password.clear()
            self.status.ok(self.tr_("Saved {0}").format(name))
            self.reload(select=name)

        self.tasks.future(UsersAdmin(session).edit(name, body), ok, self.fail)
