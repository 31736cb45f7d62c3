"""Settings page: recording and retention per camera (what ``PATCH /cameras/{id}`` offers:
enabled, record main, record sub, retention days). Only changed rows are sent."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.recording_settings import RecordingSettings, camera_recording
from app.recording_settings import changes as recording_changes
from app.session import Session
from app.workstation import Workstation
from ui.dialogs.common import Page, RecorderPicker

COLUMNS = ("Camera", "Enabled", "Record main", "Record sub", "Keep (days)")
MAX_RETENTION_DAYS = 3650


class RecordingPage(Page):
    title = "Recording"
    context = "RecordingPage"

    def __init__(self, workstation: Workstation, parent: QWidget | None = None) -> None:
        super().__init__(workstation, parent)
        t = self.texts
        self.recorder = RecorderPicker(workstation)
        self.recorder.currentIndexChanged.connect(lambda _i: self.reload())
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.verticalHeader().hide()
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.apply_button = QPushButton()
        t.bind(self.apply_button.setText, "Apply")
        self.apply_button.clicked.connect(self.apply)
        self.refresh_button = QPushButton()
        t.bind(self.refresh_button.setText, "Refresh")
        self.refresh_button.clicked.connect(self.reload)
        self.hint = t.label(
            "Keep (days) 0: no age limit (the storage limits still apply). Disabled cameras "
            "are not recorded."
        )
        self.hint.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(t.label("Recorder"))
        top.addWidget(self.recorder, 1)
        top.addWidget(self.refresh_button)
        bottom = QHBoxLayout()
        bottom.addStretch(1)
        bottom.addWidget(self.apply_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.hint)
        layout.addLayout(bottom)
        layout.addWidget(self.status)
        self.loaded: dict[str, dict] = {}  # camera id -> settings as read
        self.ids: list[str] = []
        self.hook(workstation.sessions.added, lambda _s: self.recorder.reload())
        self.hook(workstation.sessions.removed, lambda _s: self.recorder.reload())
        self.retranslate()

    def retranslate(self) -> None:
        super().retranslate()
        self.table.setHorizontalHeaderLabels([self.tr_(c) for c in COLUMNS])

    def activate(self) -> None:
        self.recorder.reload()
        self.reload()

    def reload(self) -> None:
        session = self.recorder.session()
        if session is None:
            self.show_cameras([])
            return
        self.status.busy(self.tr_("Reading cameras…"))

        def ok(cams: list[dict]) -> None:
            self.status.clear_status()
            self.show_cameras(cams or [])

        self.tasks.future(RecordingSettings(session).load(), ok, self.fail)

    def show_cameras(self, cameras: list[dict]) -> None:
        self.loaded = {c["id"]: camera_recording(c) for c in cameras}
        self.ids = [c["id"] for c in cameras]
        self.table.setRowCount(len(cameras))
        for row, cam in enumerate(cameras):
            s = self.loaded[cam["id"]]
            item = QTableWidgetItem(f"{cam.get('name') or cam['id']} ({cam['id']})")
            item.setFlags(Qt.ItemFlag.ItemIsEnabled)
            self.table.setItem(row, 0, item)
            for col, key in ((1, "enabled"), (2, "record_main"), (3, "record_sub")):
                box = QCheckBox()
                box.setChecked(bool(s[key]))
                box.setEnabled(s[key] is not None)
                self.table.setCellWidget(row, col, box)
            days = QSpinBox()
            days.setRange(0, MAX_RETENTION_DAYS)
            days.setSpecialValueText(self.tr_("no limit"))
            days.setValue(s["retention_days"] or 0)
            self.table.setCellWidget(row, 4, days)

    def row_of(self, camera_id: str) -> int:
        return self.ids.index(camera_id)

    def edited(self, camera_id: str) -> dict:
        row = self.row_of(camera_id)
        boxes = [self.table.cellWidget(row, c) for c in (1, 2, 3)]
        days = self.table.cellWidget(row, 4)
        assert isinstance(days, QSpinBox)
        sub = boxes[2]
        return {
            "enabled": boxes[0].isChecked(),
            "record_main": boxes[1].isChecked(),
            "record_sub": sub.isChecked() if sub.isEnabled() else None,
            "retention_days": days.value() or None,
        }

    def changes(self) -> dict[str, dict]:
        """Per camera, the fields that differ from what the recorder said."""
        return recording_changes(self.loaded, {cid: self.edited(cid) for cid in self.ids})

    def apply(self) -> None:
        session = self.recorder.session()
        if session is None:
            self.status.error(self.tr_("Log in to a recorder first (Recorders page)"))
            return
        edits = self.changes()
        if not edits:
            self.status.ok(self.tr_("Nothing changed"))
            return
        self.status.busy(self.tr_("Saving…"))

        def ok(_r: list[dict]) -> None:
            self.status.ok(self.tr_("Saved {0} camera(s)").format(len(edits)))
            self._refresh_tree(session)
            self.reload()

        self.tasks.future(RecordingSettings(session).apply(edits), ok, self.fail)

    def _refresh_tree(self, session: Session) -> None:
        self.tasks.future(
            RecordingSettings(session).refresh_tree(), lambda _r: None, lambda _e: None
        )
