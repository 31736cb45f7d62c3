"""Settings page: AI per camera. Detection on/off, the stream and rate it analyses, which labels
and from what score (``GET/PATCH /cameras/{id}/analytics``), the pipeline's status, and zones
and lines drawn on the camera's snapshot (``PUT``/``DELETE /cameras/{id}/zones/{zone_id}``)."""

from __future__ import annotations

from PySide6.QtGui import QImage
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.analytics_settings import (
    AnalyticsSettings,
    CameraAnalytics,
    parse_labels,
    settings_changes,
)
from app.workstation import Workstation
from ui.dialogs.common import Page, RecorderPicker
from ui.zone_editor import Shape, ZoneEditor


def status_text(status: dict) -> str:
    """The pipeline's status in one line: state, reason, provider and model."""
    parts = [str(status.get("state", "unknown"))]
    if status.get("reason"):
        parts.append(str(status["reason"]))
    if status.get("provider"):
        parts.append(str(status["provider"]))
    if status.get("model"):
        parts.append(str(status["model"]))
    return " · ".join(parts)


class AnalyticsPage(Page):
    title = "AI"
    context = "AnalyticsPage"

    def __init__(self, workstation: Workstation, parent: QWidget | None = None) -> None:
        super().__init__(workstation, parent)
        t = self.texts
        self.recorder = RecorderPicker(workstation)
        self.recorder.currentIndexChanged.connect(lambda _i: self.reload_cameras())
        self.camera = QComboBox()
        self.camera.currentIndexChanged.connect(lambda _i: self.load_camera())
        self.enabled = QCheckBox()
        t.bind(self.enabled.setText, "Detect objects on this camera")
        self.stream = QComboBox()
        self.stream.addItems(["sub", "main"])
        self.fps = QDoubleSpinBox()
        self.fps.setRange(0.1, 30.0)
        self.fps.setSingleStep(0.5)
        self.fps.setDecimals(1)
        self.labels = QLineEdit()
        self.min_score = QDoubleSpinBox()
        self.min_score.setRange(0.01, 0.99)
        self.min_score.setSingleStep(0.05)
        self.min_score.setDecimals(2)
        self.state = QLabel()
        self.state.setWordWrap(True)
        self.apply_button = QPushButton()
        t.bind(self.apply_button.setText, "Apply")
        self.apply_button.clicked.connect(self.apply)
        t.bind(self.labels.setPlaceholderText, "all labels (or e.g. person, car)")

        self.editor = ZoneEditor()
        self.editor.selection_changed.connect(self._on_shape_selected)
        self.new_zone = QPushButton()
        t.bind(self.new_zone.setText, "Draw zone")
        self.new_zone.clicked.connect(lambda: self.editor.start_drawing("zone"))
        self.new_line = QPushButton()
        t.bind(self.new_line.setText, "Draw line")
        self.new_line.clicked.connect(lambda: self.editor.start_drawing("line"))
        self.delete_shape = QPushButton()
        t.bind(self.delete_shape.setText, "Delete")
        self.delete_shape.clicked.connect(lambda: self.editor.remove(self.editor.selected()))
        self.save_zones_button = QPushButton()
        t.bind(self.save_zones_button.setText, "Save zones")
        self.save_zones_button.clicked.connect(self.save_zones)
        self.shape_name = QLineEdit()
        self.shape_name.editingFinished.connect(self._apply_shape_fields)
        self.shape_labels = QLineEdit()
        t.bind(self.shape_labels.setPlaceholderText, "all labels")
        self.shape_labels.editingFinished.connect(self._apply_shape_fields)
        self.hint = t.label(
            "Zone: click the corners, double-click to finish. Line: drag from start to end; "
            "the tick shows the side a left-to-right crossing ends on."
        )
        self.hint.setWordWrap(True)

        top = QHBoxLayout()
        top.addWidget(t.label("Recorder"))
        top.addWidget(self.recorder, 1)
        top.addWidget(t.label("Camera"))
        top.addWidget(self.camera, 1)
        form = QFormLayout()
        form.addRow("", self.enabled)
        form.addRow(t.label("Stream"), self.stream)
        form.addRow(t.label("Analysed frames per second"), self.fps)
        form.addRow(t.label("Labels"), self.labels)
        form.addRow(t.label("Minimum score"), self.min_score)
        form.addRow(t.label("Status"), self.state)
        form.addRow("", self.apply_button)
        settings_box = QGroupBox()
        t.bind(settings_box.setTitle, "Detection")
        settings_box.setLayout(form)
        tools = QHBoxLayout()
        for b in (self.new_zone, self.new_line, self.delete_shape):
            tools.addWidget(b)
        tools.addStretch(1)
        tools.addWidget(self.save_zones_button)
        shape_form = QFormLayout()
        shape_form.addRow(t.label("Name"), self.shape_name)
        shape_form.addRow(t.label("Object labels"), self.shape_labels)
        zones_box = QGroupBox()
        t.bind(zones_box.setTitle, "Zones and lines")
        zl = QVBoxLayout(zones_box)
        zl.addLayout(tools)
        zl.addWidget(self.editor, 1)
        zl.addLayout(shape_form)
        zl.addWidget(self.hint)
        body = QHBoxLayout()
        body.addWidget(settings_box, 2)
        body.addWidget(zones_box, 3)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(body, 1)
        layout.addWidget(self.status)

        self.settings: dict = {}
        self.server_zones: set[str] = set()  # zone ids the recorder had when last read
        self.hook(workstation.sessions.added, lambda _s: self.recorder.reload())
        self.hook(workstation.sessions.removed, lambda _s: self.recorder.reload())
        self._on_shape_selected("")

    def activate(self) -> None:
        self.recorder.reload()
        self.reload_cameras()

    def camera_id(self) -> str:
        return str(self.camera.currentData() or "")

    # --- loading ----------------------------------------------------------------------------

    def reload_cameras(self) -> None:
        session = self.recorder.session()
        current = self.camera_id()
        self.camera.blockSignals(True)
        self.camera.clear()
        for cam in session.cameras if session else []:
            self.camera.addItem(f"{cam.get('name') or cam['id']} ({cam['id']})", cam["id"])
        i = self.camera.findData(current) if current else 0
        self.camera.setCurrentIndex(max(0, i))
        self.camera.blockSignals(False)
        self.load_camera()

    def select_camera(self, camera_id: str) -> None:
        i = self.camera.findData(camera_id)
        if i < 0:
            self.reload_cameras()
            i = self.camera.findData(camera_id)
        self.camera.setCurrentIndex(i)

    def load_camera(self) -> None:
        session, cid = self.recorder.session(), self.camera_id()
        self.editor.set_shapes([])
        self.editor.set_image(None)
        self.server_zones = set()
        if session is None or not cid:
            self.state.clear()
            return
        self.status.busy(self.tr_("Reading {0}…").format(cid))

        def ok(result: CameraAnalytics) -> None:
            if cid != self.camera_id():
                return
            settings, zones, image = result.settings, result.zones, result.snapshot
            self.show_settings(settings)
            self.editor.set_shapes([Shape.from_json(z) for z in zones])
            self.server_zones = {z["id"] for z in zones}
            self.editor.set_image(QImage.fromData(image) if image else None)
            self.status.clear_status()

        self.tasks.future(AnalyticsSettings(session, cid).read(), ok, self.fail)

    def show_settings(self, s: dict) -> None:
        self.settings = s
        self.enabled.setChecked(bool(s.get("enabled")))
        self.stream.setCurrentText(str(s.get("stream", "sub")))
        self.fps.setValue(float(s.get("fps", 5.0)))
        self.labels.setText(", ".join(s.get("labels") or ()))
        self.min_score.setValue(float(s.get("min_score", 0.5)))
        self.state.setText(status_text(s.get("status") or {}))

    # --- settings ---------------------------------------------------------------------------

    def changes(self) -> dict:
        now = {
            "enabled": self.enabled.isChecked(),
            "stream": self.stream.currentText(),
            "fps": round(self.fps.value(), 1),
            "labels": parse_labels(self.labels.text()),
            "min_score": round(self.min_score.value(), 2),
        }
        return settings_changes(self.settings, now)

    def apply(self) -> None:
        session, cid = self.recorder.session(), self.camera_id()
        if session is None or not cid:
            self.status.error(self.tr_("Choose a camera of a logged-in recorder"))
            return
        body = self.changes()
        if not body:
            self.status.ok(self.tr_("Nothing changed"))
            return
        self.status.busy(self.tr_("Saving…"))

        def ok(s: dict) -> None:
            self.show_settings(s)
            self.status.ok(self.tr_("Saved"))

        self.tasks.future(AnalyticsSettings(session, cid).apply(body), ok, self.fail)

    # --- zones ------------------------------------------------------------------------------

    def _on_shape_selected(self, shape_id: str) -> None:
        shape = self.editor.shape(shape_id) if shape_id else None
        for w in (self.shape_name, self.shape_labels, self.delete_shape):
            w.setEnabled(shape is not None)
        self.shape_name.setText(shape.name if shape else "")
        self.shape_labels.setText(", ".join(shape.labels) if shape else "")

    def _apply_shape_fields(self) -> None:
        sid = self.editor.selected()
        if sid:
            self.editor.update_shape(
                sid,
                name=self.shape_name.text().strip(),
                labels=tuple(parse_labels(self.shape_labels.text())),
            )

    def save_zones(self) -> None:
        """Put every shape, delete the ones removed here since they were read."""
        session, cid = self.recorder.session(), self.camera_id()
        if session is None or not cid:
            self.status.error(self.tr_("Choose a camera of a logged-in recorder"))
            return
        shapes = self.editor.shapes()
        gone = sorted(self.server_zones - {s.id for s in shapes})
        self.status.busy(self.tr_("Saving zones…"))

        def ok(zones: list[dict]) -> None:
            self.server_zones = {z["id"] for z in zones}
            self.status.ok(
                self.tr_("Saved {0} zone(s) and line(s); deleted {1}").format(
                    len(shapes), len(gone)
                )
            )

        bodies = {s.id: s.body() for s in shapes}
        self.tasks.future(AnalyticsSettings(session, cid).save_zones(bodies, gone), ok, self.fail)
