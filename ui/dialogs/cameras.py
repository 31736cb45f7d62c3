"""Settings page: a recorder's cameras. Add one with its URLs, test them first (the recorder
probes the URL: codec, size, fps), see its snapshot, edit, remove (after a confirmation).

Removing a camera on the recorder stops pulling and recording it; its recordings stay until
retention removes them (the recorder keeps it, disabled)."""

from __future__ import annotations

import base64
import re

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.cameras_admin import CamerasAdmin, ProbeResult, edit_body
from app.remote import ApiError
from app.session import Session
from app.workstation import Workstation
from ui.dialogs.add_cameras import AddCamerasDialog
from ui.dialogs.common import Page, RecorderPicker, describe

CAMERA_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")  # the recorder's rule
SNAPSHOT_TRIES = 30  # a new camera needs its first fragment (a GOP) before it has a snapshot
SNAPSHOT_RETRY_MS = 1000


def camera_summary(cam: dict) -> str:
    streams = {s.get("name"): s for s in cam.get("streams") or ()}
    state = "disabled" if not cam.get("enabled", True) else streams.get("main", {}).get("state")
    return f"{cam['id']} — {cam.get('name') or cam['id']} ({state or 'unknown'})"


def probe_text(result: dict) -> str:
    fps = result.get("fps")
    rate = f", {fps:g} fps" if isinstance(fps, int | float) and fps else ""
    return (
        f"{result.get('codec', '?')} {result.get('width', '?')}×{result.get('height', '?')}{rate}"
    )


class CamerasPage(Page):
    title = "Cameras"
    context = "CamerasPage"

    def __init__(self, workstation: Workstation, parent: QWidget | None = None) -> None:
        super().__init__(workstation, parent)
        t = self.texts
        self.recorder = RecorderPicker(workstation)
        self.recorder.currentIndexChanged.connect(lambda _i: self.reload())
        self.list = QListWidget()
        self.list.currentItemChanged.connect(lambda cur, _prev: self._on_select(cur))
        self.camera_id = QLineEdit()
        self.camera_id.setPlaceholderText("gate-1")
        self.name = QLineEdit()
        self.main_url = QLineEdit()
        self.main_url.setPlaceholderText("rtsp://user:password@192.0.2.20:554/stream1")
        self.sub_url = QLineEdit()
        self.sub_url.setPlaceholderText("rtsp://…/stream2")
        self.enabled = QCheckBox()
        self.enabled.setChecked(True)
        t.bind(self.enabled.setText, "Enabled")
        self.probe_result = QLabel()
        self.probe_result.setWordWrap(True)
        self.probe_result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.snapshot = QLabel()
        self.snapshot.setFixedSize(320, 180)
        self.snapshot.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.snapshot.setStyleSheet("background: #000;")
        self.snapshot_image: QImage | None = None

        self.new_button = QPushButton()
        t.bind(self.new_button.setText, "New")
        self.new_button.clicked.connect(self.new_camera)
        self.test_button = QPushButton()
        t.bind(self.test_button.setText, "Test")
        self.test_button.clicked.connect(self.test)
        self.add_button = QPushButton()
        t.bind(self.add_button.setText, "Add")
        self.add_button.clicked.connect(self.add)
        self.save_button = QPushButton()
        t.bind(self.save_button.setText, "Save changes")
        self.save_button.clicked.connect(self.save)
        self.remove_button = QPushButton()
        t.bind(self.remove_button.setText, "Remove…")
        self.remove_button.clicked.connect(self.remove)
        self.refresh_button = QPushButton()
        t.bind(self.refresh_button.setText, "Refresh")
        self.refresh_button.clicked.connect(self.reload)
        self.find_button = QPushButton()
        t.bind(self.find_button.setText, "Find cameras…")
        self.find_button.clicked.connect(self.find_cameras)
        self.wizard: AddCamerasDialog | None = None

        top = QHBoxLayout()
        top.addWidget(t.label("Recorder"))
        top.addWidget(self.recorder, 1)
        top.addWidget(self.refresh_button)
        top.addWidget(self.find_button)
        form = QFormLayout()
        form.addRow(t.label("ID"), self.camera_id)
        form.addRow(t.label("Name"), self.name)
        form.addRow(t.label("Main stream URL"), self.main_url)
        form.addRow(t.label("Sub stream URL"), self.sub_url)
        form.addRow("", self.enabled)
        form.addRow(t.label("Test result"), self.probe_result)
        form.addRow(t.label("Snapshot"), self.snapshot)
        buttons = QHBoxLayout()
        for b in (
            self.new_button,
            self.test_button,
            self.add_button,
            self.save_button,
            self.remove_button,
        ):
            buttons.addWidget(b)
        buttons.addStretch(1)
        right = QVBoxLayout()
        right.addLayout(form)
        right.addLayout(buttons)
        right.addStretch(1)
        body = QHBoxLayout()
        body.addWidget(self.list, 2)
        body.addLayout(right, 3)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(body, 1)
        layout.addWidget(self.status)

        self.cameras: list[dict] = []
        self.editing = ""  # the camera id in the form, "" for a new one
        self._original_urls: tuple[str, str] = ("", "")  # as the recorder showed them (redacted)
        self._snapshot_timer = QTimer(self)
        self._snapshot_timer.setSingleShot(True)
        self._snapshot_timer.timeout.connect(self._fetch_snapshot)
        self._snapshot_for = ""
        self._snapshot_tries = 0
        self._snapshot_inflight = False
        self.hook(workstation.sessions.added, lambda _s: self.recorder.reload())
        self.hook(workstation.sessions.removed, lambda _s: self.recorder.reload())
        self.new_camera()

    def activate(self) -> None:
        self.recorder.reload()
        self.reload()

    def session(self) -> Session | None:
        return self.recorder.session()

    def _need_session(self) -> Session | None:
        session = self.session()
        if session is None:
            self.status.error(self.tr_("Log in to a recorder first (Recorders page)"))
        return session

    # --- list -------------------------------------------------------------------------------

    def reload(self, select: str | None = None) -> None:
        session = self.session()
        if session is None:
            self.cameras = []
            self.list.clear()
            return
        self.status.busy(self.tr_("Reading cameras…"))
        keep = select if select is not None else self.editing

        def ok(cameras: list[dict]) -> None:
            self.status.clear_status()
            self.show_cameras(cameras or [], keep)

        self.tasks.future(CamerasAdmin(session).refresh(), ok, self.fail)

    def show_cameras(self, cameras: list[dict], select: str = "") -> None:
        self.cameras = cameras
        self.list.blockSignals(True)
        self.list.clear()
        for cam in cameras:
            item = QListWidgetItem(camera_summary(cam))
            item.setData(Qt.ItemDataRole.UserRole, cam["id"])
            self.list.addItem(item)
            if cam["id"] == select:
                self.list.setCurrentItem(item)
        self.list.blockSignals(False)
        if select and self.camera(select) is not None:
            self.edit(select)

    def camera(self, camera_id: str) -> dict | None:
        return next((c for c in self.cameras if c["id"] == camera_id), None)

    def _on_select(self, item: QListWidgetItem | None) -> None:
        if item is not None:
            self.edit(str(item.data(Qt.ItemDataRole.UserRole)))

    # --- form -------------------------------------------------------------------------------

    def new_camera(self) -> None:
        self.editing = ""
        self.list.clearSelection()
        for w in (self.camera_id, self.name, self.main_url, self.sub_url):
            w.clear()
        self.camera_id.setReadOnly(False)
        self.enabled.setChecked(True)
        self._original_urls = ("", "")
        self._show_snapshot(None, "")
        self.probe_result.clear()
        self._update_buttons()

    def edit(self, camera_id: str) -> None:
        cam = self.camera(camera_id)
        if cam is None:
            return
        streams = {s.get("name"): s for s in cam.get("streams") or ()}
        main = streams.get("main", {}).get("url", "")
        sub = streams.get("sub", {}).get("url", "")
        self.camera_id.setText(camera_id)
        self.camera_id.setReadOnly(True)
        self.name.setText(cam.get("name") or "")
        self.main_url.setText(main)
        self.sub_url.setText(sub)
        self.enabled.setChecked(bool(cam.get("enabled", True)))
        self._original_urls = (main, sub)
        if camera_id != self.editing:
            self.probe_result.clear()
        self.editing = camera_id
        self._update_buttons()
        self.load_snapshot(camera_id, tries=1)

    def find_cameras(self) -> AddCamerasDialog | None:
        """The add-cameras wizard (ONVIF discovery) for the selected recorder."""
        session = self._need_session()
        if session is None:
            return None
        self.wizard = AddCamerasDialog(session, self)
        self.wizard.added.connect(lambda cams: self.reload(cams[0]["id"] if cams else None))
        self.wizard.open()
        return self.wizard

    def _update_buttons(self) -> None:
        self.add_button.setEnabled(not self.editing)
        self.save_button.setEnabled(bool(self.editing))
        self.remove_button.setEnabled(bool(self.editing))

    def body(self) -> dict:
        """The camera as ``POST /cameras`` (or the changes as ``PATCH``) wants it; ValueError
        with the reason for a field that cannot be right."""
        cid = self.camera_id.text().strip()
        if not CAMERA_ID.match(cid):
            raise ValueError(self.tr_("ID: lower-case letters, digits, '-' and '_' (up to 64)"))
        main, sub = self.main_url.text().strip(), self.sub_url.text().strip()
        if "://" not in main:
            raise ValueError(self.tr_("Main stream URL: rtsp://, rtsps://, http(s):// or file://"))
        if sub and "://" not in sub:
            raise ValueError(self.tr_("Sub stream URL: rtsp://, rtsps://, http(s):// or file://"))
        body: dict = {
            "id": cid,
            "name": self.name.text().strip() or cid,
            "main": main,
            "sub": sub or None,
            "enabled": self.enabled.isChecked(),
        }
        if self.editing:
            return edit_body(body, self._original_urls)
        return body

    # --- actions ----------------------------------------------------------------------------

    def test(self) -> None:
        """Probe the URLs on the recorder (what it sees is what it will record)."""
        session = self._need_session()
        if session is None:
            return
        urls = [("main", self.main_url.text().strip()), ("sub", self.sub_url.text().strip())]
        urls = [(n, u) for n, u in urls if u]
        if not urls or "://" not in urls[0][1]:
            self.status.error(self.tr_("Type the main stream URL first"))
            return
        if any(":***@" in u for _n, u in urls):
            self.status.error(self.tr_("The recorder hides this URL's password: type it again"))
            return
        self.status.busy(self.tr_("Testing…"))
        self.probe_result.clear()
        self.test_button.setEnabled(False)

        def ok(results: list[ProbeResult]) -> None:
            self.test_button.setEnabled(True)
            lines, good = [], True
            for name, r in results:
                what = self.tr_("Main") if name == "main" else self.tr_("Sub")
                if isinstance(r, dict):
                    lines.append(f"{what}: {probe_text(r)}")
                else:
                    good = False
                    lines.append(f"{what}: {self.tr_('failed')}: {r}")
            self.probe_result.setText("\n".join(lines))
            main = dict(results).get("main")
            picture = main.get("snapshot_jpeg") if isinstance(main, dict) else None
            if picture is not None:
                image = QImage.fromData(base64.b64decode(picture))
                self._show_snapshot(None if image.isNull() else image, "probe")
            if good:
                self.status.ok(self.tr_("The recorder can open this camera"))
            else:
                self.status.error(self.tr_("The recorder cannot open this camera"))
            if self.editing and picture is None:
                self.load_snapshot(self.editing, tries=1)

        def error(exc: BaseException) -> None:
            self.test_button.setEnabled(True)
            self.fail(exc)

        self.tasks.future(CamerasAdmin(session).probe(urls), ok, error)

    def add(self) -> None:
        session = self._need_session()
        if session is None:
            return
        try:
            body = self.body()
        except ValueError as exc:
            self.status.error(str(exc))
            return
        cid = body["id"]
        self.status.busy(self.tr_("Adding {0}…").format(cid))

        def ok(_cam: dict) -> None:
            self.status.ok(self.tr_("Added {0}; it is recording").format(cid))
            self.editing = cid
            self.reload(select=cid)
            self.load_snapshot(cid, tries=SNAPSHOT_TRIES)

        self.tasks.future(CamerasAdmin(session).add(body), ok, self.fail)

    def save(self) -> None:
        session = self._need_session()
        if session is None or not self.editing:
            return
        try:
            body = self.body()
        except ValueError as exc:
            self.status.error(str(exc))
            return
        cid = self.editing
        self.status.busy(self.tr_("Saving {0}…").format(cid))

        def ok(_cam: dict) -> None:
            self.status.ok(self.tr_("Saved {0}").format(cid))
            self.reload(select=cid)

        self.tasks.future(CamerasAdmin(session).edit(cid, body), ok, self.fail)

    def confirm(self, text: str) -> bool:
        answer = QMessageBox.question(self, self.tr_("Remove camera"), text)
        return answer == QMessageBox.StandardButton.Yes

    def remove(self, confirmed: bool = False) -> None:
        session = self._need_session()
        if session is None or not self.editing:
            return
        cid = self.editing
        question = self.tr_(
            "Remove camera {0}? The recorder stops recording it; its recordings stay until "
            "retention removes them."
        ).format(cid)
        if not confirmed and not self.confirm(question):
            return
        self.status.busy(self.tr_("Removing {0}…").format(cid))

        def ok(_r: None) -> None:
            self.status.ok(self.tr_("Removed {0}").format(cid))
            self.new_camera()
            self.reload()

        self.tasks.future(CamerasAdmin(session).remove(cid), ok, self.fail)

    # --- snapshot ---------------------------------------------------------------------------

    def load_snapshot(self, camera_id: str, tries: int = 1) -> None:
        """Fetch the camera's latest key frame; a new camera is asked again until it has one."""
        if camera_id == self._snapshot_for and (
            self._snapshot_inflight or self._snapshot_timer.isActive()
        ):
            self._snapshot_tries = max(self._snapshot_tries, tries)  # already on its way
            return
        self._snapshot_for, self._snapshot_tries = camera_id, tries
        self._snapshot_timer.stop()
        self._fetch_snapshot()

    def _fetch_snapshot(self) -> None:
        session, cid = self.session(), self._snapshot_for
        if session is None or not cid:
            return
        self._snapshot_tries -= 1
        cam = self.camera(cid) or {}
        has_sub = any(s.get("name") == "sub" for s in cam.get("streams") or ())
        stream = "sub" if has_sub or not cam else "main"

        def ok(data: bytes) -> None:
            self._snapshot_inflight = False
            if cid != self._snapshot_for:
                return
            image = QImage.fromData(data)
            self._show_snapshot(image if not image.isNull() else None, cid)

        def error(exc: BaseException) -> None:
            self._snapshot_inflight = False
            if cid != self._snapshot_for:
                return
            if self._snapshot_tries > 0 and isinstance(exc, ApiError) and exc.status == 404:
                self.snapshot.setText(self.tr_("Waiting for video…"))
                self._snapshot_timer.start(SNAPSHOT_RETRY_MS)
                return
            self._show_snapshot(None, cid, describe(exc))

        self._snapshot_inflight = True
        self.tasks.future(CamerasAdmin(session).snapshot(cid, stream), ok, error)

    def _show_snapshot(self, image: QImage | None, camera_id: str, why: str = "") -> None:
        self.snapshot_image = image
        if image is None:
            self.snapshot.setPixmap(QPixmap())
            self.snapshot.setText(why or (self.tr_("No snapshot") if camera_id else ""))
            return
        pixmap = QPixmap.fromImage(image).scaled(
            self.snapshot.size(),
            Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation,
        )
        self.snapshot.setPixmap(pixmap)
