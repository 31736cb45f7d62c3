"""The add-cameras wizard: ONVIF devices the recorder finds, credentials typed once for all,
a picture from each before adding, several added at once (``app.camera_wizard``)."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.camera_wizard import CameraWizard, Candidate
from app.session import Session
from ui.dialogs.common import StatusLine, Tasks, describe

THUMB = (160, 90)


class AddCamerasDialog(QDialog):
    added = Signal(list)  # the cameras as the recorder answered

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("Add cameras"))
        self.model = CameraWizard(session)
        self.tasks = Tasks(self)
        self.candidates: list[Candidate] = []

        self.host = QLineEdit(self)
        self.host.setPlaceholderText(self.tr("optional: a camera's IP address (no multicast)"))
        self.find_button = QPushButton(self.tr("Find cameras"), self)
        self.find_button.clicked.connect(self.find)
        top = QHBoxLayout()
        top.addWidget(self.host, 1)
        top.addWidget(self.find_button)

        self.list = QListWidget(self)
        self.list.setIconSize(QPixmap(*THUMB).size())
        self.list.setMinimumSize(640, 260)

        self.username = QLineEdit(self)
        self.password = QLineEdit(self)
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        form = QFormLayout()
        form.addRow(self.tr("User name (for all)"), self.username)
        form.addRow(self.tr("Password (for all)"), self.password)

        self.preview_button = QPushButton(self.tr("Show pictures"), self)
        self.preview_button.clicked.connect(self.preview)
        self.add_button = QPushButton(self.tr("Add selected"), self)
        self.add_button.clicked.connect(self.add_selected)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.preview_button)
        buttons.addWidget(self.add_button)

        self.status = StatusLine(self)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.list, 1)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.status)

    # -- steps ----------------------------------------------------------------------------

    def find(self) -> None:
        self.status.busy(self.tr("Looking for ONVIF cameras…"))

        def ok(found: list[Candidate]) -> None:
            self.show_candidates(found)
            self.status.ok(self.tr("%n camera(s) found", "", len(found)))

        self.tasks.future(self.model.discover(self.host.text().strip()), ok, self.fail)

    def show_candidates(self, found: list[Candidate]) -> None:
        self.candidates = found
        self.list.clear()
        for c in found:
            item = QListWidgetItem(c.label, self.list)
            flags = item.flags() | Qt.ItemFlag.ItemIsUserCheckable
            if c.camera_id:
                flags &= ~Qt.ItemFlag.ItemIsEnabled  # already added
            item.setFlags(flags)
            item.setCheckState(Qt.CheckState.Unchecked)
            if c.snapshot_jpeg:
                image = QImage.fromData(c.snapshot_jpeg)
                item.setIcon(QIcon(QPixmap.fromImage(image).scaled(*THUMB)))
            if c.error:
                item.setText(f"{c.label}\n{c.error}")

    def checked(self) -> list[Candidate]:
        return [
            c
            for i, c in enumerate(self.candidates)
            if self.list.item(i).checkState() == Qt.CheckState.Checked
        ]

    def preview(self) -> None:
        chosen = self.checked() or [c for c in self.candidates if not c.camera_id]
        self.status.busy(self.tr("Asking the cameras…"))

        def ok(_probed: list[Candidate]) -> None:
            checked = {c.address for c in self.checked()}
            self.show_candidates(self.candidates)
            for i, c in enumerate(self.candidates):
                if c.address in checked:
                    self.list.item(i).setCheckState(Qt.CheckState.Checked)
            failed = [c for c in chosen if c.error]
            if failed:
                self.status.error(failed[0].error)
            else:
                self.status.ok(self.tr("Pictures shown; check the cameras to add"))

        self.tasks.future(
            self.model.probe(chosen, self.username.text(), self.password.text()), ok, self.fail
        )

    def add_selected(self) -> None:
        chosen = self.checked()
        if not chosen:
            self.status.error(self.tr("Check the cameras to add first"))
            return
        self.status.busy(self.tr("Adding…"))

        def ok(cameras: list[dict]) -> None:
            self.status.ok(self.tr("Added: ") + ", ".join(c["name"] for c in cameras))
            self.added.emit(cameras)

        self.tasks.future(
            self.model.add(chosen, self.username.text(), self.password.text()), ok, self.fail
        )

    def fail(self, exc: BaseException) -> None:
        self.status.error(describe(exc))
