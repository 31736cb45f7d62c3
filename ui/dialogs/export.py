"""The export dialog: cameras (the wall's by default), in and out marks, format, a progress bar
while the recorder cuts, cancel, the download folder, and the signature check of what arrived.

The recorder does the cutting (``POST /exports``); this follows it with ``app.export``, downloads
the files into ``<folder>/<export id>/`` and checks the manifest and signature there
(``verify_export``), so what the operator hands over is known to be what the recorder wrote.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from pathlib import Path

from PySide6.QtCore import QDateTime, QEvent, QStandardPaths, Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDateTimeEdit,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.export import ExportStatus, Verification
from app.export_job import ExportFailed, ExportJob
from app.session import Session
from app.workstation import Workstation
from server.protocol.timeutil import now_us
from ui.bridge import bridge
from ui.dialogs.common import RecorderPicker, StatusLine, Tasks, Texts, describe
from ui.theme import DARK

FORMATS = ("mp4", "mkv")  # what POST /exports accepts (server/api/exports.py)
DEFAULT_SPAN_US = 5 * 60 * 1_000_000


def wall_cameras(wall: object | None) -> list[tuple[str, str]]:
    """(server id, camera id) of the cameras shown on a ``VideoWall`` ("sid/cid" cells)."""
    out: list[tuple[str, str]] = []
    cameras = getattr(wall, "cameras", None)  # VideoWall.cameras: a list property
    if callable(cameras):
        cameras = cameras()
    for cell in cameras or []:
        if cell and "/" in cell:
            sid, cid = cell.split("/", 1)
            if (sid, cid) not in out:
                out.append((sid, cid))
    return out


def default_folder() -> Path:
    movies = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.MoviesLocation)
    return Path(movies or Path.home()) / "Vigia exports"


def to_us(dt: QDateTime) -> int:
    return dt.toMSecsSinceEpoch() * 1000


def from_us(t_us: int) -> QDateTime:
    return QDateTime.fromMSecsSinceEpoch(t_us // 1000)


class ExportDialog(QDialog):
    def __init__(
        self,
        workstation: Workstation,
        wall: object | None = None,
        start_us: int | None = None,
        end_us: int | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.ws = workstation
        self.texts = t = Texts("ExportDialog")
        t.bind(self.setWindowTitle, "Export")
        self.tasks = Tasks(self)
        self.on_wall = wall_cameras(wall)
        end_us = end_us if end_us is not None else now_us()
        start_us = start_us if start_us is not None else end_us - DEFAULT_SPAN_US

        self.recorder = RecorderPicker(workstation)
        if self.on_wall:
            self.recorder.select(self.on_wall[0][0])
        self.recorder.currentIndexChanged.connect(lambda _i: self.fill_cameras())
        self.cameras = QListWidget()
        self.stream = QComboBox()
        self.stream.addItem("main", "main")
        self.stream.addItem("sub", "sub")
        self.start = QDateTimeEdit(from_us(start_us))
        self.end = QDateTimeEdit(from_us(end_us))
        for edit in (self.start, self.end):
            edit.setDisplayFormat("yyyy-MM-dd HH:mm:ss")
            edit.setCalendarPopup(True)
        self.format = QComboBox()
        for f in FORMATS:
            self.format.addItem(f.upper(), f)
        self.exact = QCheckBox()
        t.bind(self.exact.setText, "Exact start (re-encode the first second)")
        self.folder = QLineEdit(str(default_folder()))
        self.browse = QPushButton()
        t.bind(self.browse.setText, "Browse…")
        self.browse.clicked.connect(self._browse)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self.status = StatusLine(self)
        self.verification_label = QLabel()
        self.verification_label.setWordWrap(True)
        self.verification_label.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse
        )
        self.start_button = QPushButton()
        t.bind(self.start_button.setText, "Export")
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(self.start_export)
        self.cancel_button = QPushButton()
        t.bind(self.cancel_button.setText, "Cancel export")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel_export)
        self.close_button = QPushButton()
        t.bind(self.close_button.setText, "Close")
        self.close_button.clicked.connect(self.close)
        QShortcut(QKeySequence("Ctrl+Return"), self, self.start_export)

        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder, 1)
        folder_row.addWidget(self.browse)
        form = QFormLayout()
        form.addRow(t.label("Recorder"), self.recorder)
        form.addRow(t.label("Cameras"), self.cameras)
        form.addRow(t.label("Stream"), self.stream)
        form.addRow(t.label("From"), self.start)
        form.addRow(t.label("To"), self.end)
        form.addRow(t.label("Format"), self.format)
        form.addRow("", self.exact)
        form.addRow(t.label("Save in"), folder_row)
        form.addRow(t.label("Progress"), self.progress)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for b in (self.start_button, self.cancel_button, self.close_button):
            buttons.addWidget(b)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.verification_label)
        layout.addWidget(self.status)
        layout.addLayout(buttons)
        self.resize(560, 560)

        self.export_id = ""
        self.result_dir: Path | None = None
        self.verification: Verification | None = None
        self._future: concurrent.futures.Future | None = None
        self._session: Session | None = None
        self.fill_cameras()

    # --- cameras ----------------------------------------------------------------------------

    def fill_cameras(self) -> None:
        session = self.recorder.session()
        self.cameras.clear()
        if session is None:
            self.status.error(self.texts.tr("Log in to a recorder first"))
            return
        wanted = {cid for sid, cid in self.on_wall if sid == session.server_id}
        for cam in session.cameras:
            item = QListWidgetItem(f"{cam.get('name') or cam['id']} ({cam['id']})")
            item.setData(Qt.ItemDataRole.UserRole, cam["id"])
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            on = cam["id"] in wanted
            item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
            self.cameras.addItem(item)

    def checked_cameras(self) -> list[str]:
        out = []
        for i in range(self.cameras.count()):
            item = self.cameras.item(i)
            if item.checkState() == Qt.CheckState.Checked:
                out.append(str(item.data(Qt.ItemDataRole.UserRole)))
        return out

    def set_checked(self, camera_ids: list[str]) -> None:
        for i in range(self.cameras.count()):
            item = self.cameras.item(i)
            on = item.data(Qt.ItemDataRole.UserRole) in camera_ids
            item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)

    def set_range(self, start_us: int, end_us: int) -> None:
        self.start.setDateTime(from_us(start_us))
        self.end.setDateTime(from_us(end_us))

    def _browse(self) -> None:
        path = QFileDialog.getExistingDirectory(
            self, self.texts.tr("Save exports in"), self.folder.text()
        )
        if path:
            self.folder.setText(path)

    # --- running ----------------------------------------------------------------------------

    def running(self) -> bool:
        return self._future is not None and not self._future.done()

    def start_export(self) -> None:
        if self.running():
            return
        t = self.texts
        session = self.recorder.session()
        cams = self.checked_cameras()
        start_us, end_us = to_us(self.start.dateTime()), to_us(self.end.dateTime())
        folder = Path(self.folder.text().strip()).expanduser()
        if session is None:
            self.status.error(t.tr("Log in to a recorder first"))
            return
        if not cams:
            self.status.error(t.tr("Choose at least one camera"))
            return
        if end_us <= start_us:
            self.status.error(t.tr("The end must be after the start"))
            return
        if not self.folder.text().strip():
            self.status.error(t.tr("Choose a folder to save in"))
            return
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.status.error(t.tr("Cannot use {0}: {1}").format(folder, exc.strerror or exc))
            return
        stream, fmt, exact = (
            self.stream.currentData(),
            self.format.currentData(),
            self.exact.isChecked(),
        )
        self.export_id, self.result_dir, self.verification = "", None, None
        self.verification_label.clear()
        self.progress.setValue(0)
        self.status.busy(t.tr("Exporting…"))
        self._set_running(True)
        self._session = session
        post = bridge().post

        def on_progress(st: ExportStatus) -> None:  # on the network loop
            post(lambda: self._progress(st))

        def phase_text(phase: str) -> str:
            if phase == "downloading":
                return t.tr("Downloading…")
            return t.tr("Checking the signature…")

        def on_phase(phase: str) -> None:  # on the network loop
            post(lambda: self.status.busy(phase_text(phase)))

        job = ExportJob(session).run(
            [(c, stream) for c in cams],
            start_us,
            end_us,
            folder,
            fmt=fmt,
            exact=exact,
            on_progress=on_progress,
            on_phase=on_phase,
        )
        self._future = self.tasks.future(job, self._finished, self._failed)

    def _progress(self, st: ExportStatus) -> None:
        self.export_id = st.id
        if st.state in ("queued", "running"):
            self.progress.setValue(round(st.progress * 100))

    def _finished(self, result: tuple[Path, Verification]) -> None:
        self._set_running(False)
        out, report = result
        self.result_dir, self.verification = out, report
        self.progress.setValue(100)
        t = self.texts
        if report.ok:
            self.verification_label.setStyleSheet("color: #5cb85c; font-weight: bold;")
            self.verification_label.setText(
                t.tr("Verified: signature valid (key {0}), every file intact.").format(
                    report.key_id
                )
            )
            self.status.ok(t.tr("Saved in {0}").format(out))
        else:
            self.verification_label.setStyleSheet(f"color: {DARK.alarm}; font-weight: bold;")
            self.verification_label.setText(
                t.tr("NOT verified:") + "\n" + "\n".join(f"• {p}" for p in report.problems)
            )
            self.status.error(t.tr("Saved in {0}, but the check failed").format(out))

    def _failed(self, exc: BaseException) -> None:
        self._set_running(False)
        if isinstance(exc, concurrent.futures.CancelledError | asyncio.CancelledError):
            self.status.error(self.texts.tr("Export cancelled"))
        elif isinstance(exc, ExportFailed):
            self.status.error(
                self.texts.tr("The recorder's export {0}: {1}").format(exc.state, exc.error)
            )
        else:
            self.status.error(describe(exc))

    def cancel_export(self) -> None:
        """Stop following, and ask the recorder to cancel and drop the job."""
        if not self.running():
            return
        future, session, export_id = self._future, self._session, self.export_id
        assert future is not None and session is not None
        future.cancel()  # cancels the task on the loop: no more polling or downloading
        self._set_running(False)
        self.progress.setValue(0)
        self.status.error(self.texts.tr("Export cancelled"))
        if export_id:
            self.tasks.future(
                ExportJob(session).cancel(export_id), lambda _r: None, lambda _e: None
            )

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        for w in (
            self.recorder,
            self.cameras,
            self.stream,
            self.start,
            self.end,
            self.format,
            self.exact,
            self.folder,
            self.browse,
        ):
            w.setEnabled(not running)

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.texts.retranslate()
        super().changeEvent(event)

    def closeEvent(self, event) -> None:
        self.cancel_export()
        super().closeEvent(event)


def open_export_dialog(
    parent: QWidget | None,
    workstation: Workstation,
    wall: object | None,
    start_us: int | None = None,
    end_us: int | None = None,
) -> ExportDialog:
    """Show the export dialog (non-modal): the wall's cameras checked, marks from the timeline."""
    dialog = ExportDialog(workstation, wall, start_us, end_us, parent)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.show()
    return dialog
