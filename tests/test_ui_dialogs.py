"""Settings and export dialogs offscreen against a real recorder recording real RTSP cameras.

One recorder for the module records camera ``cam0``; the test adds ``cam1`` (a second real RTSP
camera) through the cameras page and sees it recorded. The workstation is the real
``app.workstation.Workstation`` logged in as admin; every dialog call goes over HTTP to the
recorder. Each page is saved as ``tests/artifacts/dialog-<page>.png``.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from PySide6.QtCore import QCoreApplication, QPoint, Qt, QTranslator
from PySide6.QtWidgets import QApplication

from app.api import ApiError
from app.export import verify_export
from app.settings import SecretStore, Settings
from app.workstation import Workstation
from server.sim.rtsp_cameras import RtspCameraHost
from tests.conftest import ROOT, START_S, ServerProcess, camera_toml, wait_until
from ui import theme
from ui.dialogs import PAGES, open_export_dialog, open_settings
from ui.dialogs.common import Page
from ui.wall import VideoWall
from ui.zone_editor import Shape, ZoneEditor

ADMIN_PASSWORD = "admin-password-1"
ARTIFACTS = ROOT / "tests" / "artifacts"

pytestmark = pytest.mark.rtsp


@dataclass
class Rig:
    ws: Workstation
    host: RtspCameraHost
    server: ServerProcess
    sid: str
    server_url: str

    def get(self, path: str, **params: object):
        session = self.ws.session(self.sid)
        assert session is not None
        return session.call_sync(lambda api: api.get_json(path, params or None))


@pytest.fixture(scope="module")
def rig(
    gst: None, camera_clips: list[tuple[Path, Path]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Rig]:
    mounts: dict[str, Path] = {}
    for i in range(2):
        mounts[f"cam{i}-main"], mounts[f"cam{i}-sub"] = camera_clips[i]
    host = RtspCameraHost(mounts, name="ui-dialog-cameras")
    host.start()
    tmp = tmp_path_factory.mktemp("ui-dialogs")
    toml = camera_toml([("cam0", host.url("cam0-main"), host.url("cam0-sub"))])
    (tmp / "vigia.toml").write_text(toml)
    server = ServerProcess(tmp / "data", tmp / "vigia.toml", tmp / "server.log")
    server.start(env={"VIGIA_ADMIN_PASSWORD": ADMIN_PASSWORD})
    ws = Workstation(Settings(tmp / "config", SecretStore()), start_discovery=False)
    base_url = server.base_url

    def connected():
        try:
            return ws.connect(base_url, "admin", ADMIN_PASSWORD, timeout=5)
        except (ApiError, TimeoutError):
            return None

    try:
        session = wait_until(
            connected, START_S, f"a login to the recorder\n{server.log()}", poll=0.2
        )
        yield Rig(ws, host, server, session.server_id, base_url)
    finally:
        try:
            ws.close()
        finally:
            if server.proc is not None and server.proc.poll() is None:
                server.stop()
            host.stop()


@pytest.fixture(scope="module", autouse=True)
def dark_theme(qapp) -> Iterator[None]:
    """The screenshots show the dialogs as operators see them."""
    style, palette, sheet = qapp.style().name(), qapp.palette(), qapp.styleSheet()
    theme.apply_theme(qapp)
    yield
    qapp.setStyleSheet(sheet)
    qapp.setPalette(palette)
    qapp.setStyle(style)


@pytest.fixture
def settings_dialog(rig: Rig, qtbot):
    dialog = open_settings(None, rig.ws)
    qtbot.addWidget(dialog)
    qtbot.waitExposed(dialog)
    return dialog  # qtbot closes it (and it deletes itself) after the test


def idle(page: Page, qtbot, timeout_ms: int = 15000) -> None:
    qtbot.waitUntil(lambda: page.tasks.pending == 0, timeout=timeout_ms)


def shoot(widget, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert widget.grab().save(str(ARTIFACTS / f"dialog-{name}.png"))


def test_every_settings_page_opens_with_the_recorders_data(rig: Rig, settings_dialog, qtbot):
    dialog = settings_dialog
    assert dialog.current_page() == "recorders"
    for key in PAGES:
        page = dialog.show_page(key)
        assert dialog.current_page() == key and page.isVisible()
        idle(page, qtbot)
        assert page.status.kind != "error", f"{key}: {page.status.text()}"
    rec = dialog.pages["recorders"]
    row = rec.rows[rec.row_index(rig.sid)]
    assert row.state == "online" and "connected" in row.sources and row.user == "admin"
    cams = dialog.pages["cameras"]
    assert [c["id"] for c in cams.cameras][:1] == ["cam0"]
    recording = dialog.pages["recording"]
    assert recording.ids == [c["id"] for c in cams.cameras]
    assert recording.loaded["cam0"]["record_main"] is True
    ai = dialog.pages["ai"]
    assert ai.camera_id() == "cam0" and "state" not in ai.state.text()  # a state word, not a key
    assert ai.settings["camera_id"] == "cam0" and ai.state.text()
    users = dialog.pages["users"]
    assert "admin" in [u["name"] for u in users.users]
    prefs = dialog.pages["preferences"]
    assert prefs.decoder.currentData() == rig.ws.settings.preferences.decoder
    # the pages as a person would see them
    for key in PAGES:
        dialog.show_page(key)
        idle(dialog.pages[key], qtbot)
        shoot(dialog, key)


def test_add_a_camera_test_it_and_see_it_recorded(rig: Rig, settings_dialog, qtbot):
    page = settings_dialog.show_page("cameras")
    idle(page, qtbot)
    page.new_button.click()
    page.camera_id.setText("Bad Id")
    page.main_url.setText(rig.host.url("cam1-main"))
    page.add_button.click()
    assert page.status.kind == "error" and "ID" in page.status.text()  # refused before sending

    page.camera_id.setText("cam1")
    page.name.setText("Gate")
    page.sub_url.setText(rig.host.url("cam1-sub"))
    page.test_button.click()
    assert page.status.kind == "busy"  # the call runs off the Qt thread
    qtbot.waitUntil(lambda: page.status.kind in ("ok", "error"), timeout=20000)
    assert page.status.kind == "ok", page.status.text()
    text = page.probe_result.text()
    assert "h264" in text.lower() and "640×360" in text and "320×180" in text and "25 fps" in text
    # before it is added, the camera's first picture comes with the probe
    assert page.snapshot_image is not None
    assert (page.snapshot_image.width(), page.snapshot_image.height()) == (640, 360)

    page.add_button.click()
    qtbot.waitUntil(
        lambda: page.snapshot_image is not None and page.snapshot_image.width() == 320,
        timeout=30000,
    )
    assert (page.snapshot_image.width(), page.snapshot_image.height()) == (320, 180)
    assert page.editing == "cam1" and page.camera("cam1")["name"] == "Gate"
    shoot(settings_dialog, "cameras-added")

    now = time.time_ns() // 1000

    def fragments() -> int:
        segs = rig.get("/cameras/cam1/segments", start_us=now - 60_000_000, end_us=now + 60_000_000)
        return sum(len(s["fragments"]) for s in segs)

    wait_until(fragments, 20, "fragments of the camera added through the dialog")
    # the camera tree follows (the page refreshed the session's cameras)
    assert rig.ws.tree.camera((rig.sid, "cam1")) is not None

    # recording page: retention for the new camera, sent as a PATCH
    rec = settings_dialog.show_page("recording")
    idle(rec, qtbot)
    row = rec.row_of("cam1")
    rec.table.cellWidget(row, 4).setValue(7)
    assert rec.changes() == {"cam1": {"retention_days": 7}}
    rec.apply_button.click()
    idle(rec, qtbot)
    assert rec.status.kind != "error", rec.status.text()
    cam = rig.get("/cameras/cam1")
    assert cam["retention_days"] == 7 and cam["enabled"]


def test_analytics_settings_and_zones(rig: Rig, settings_dialog, qtbot):
    page = settings_dialog.show_page("ai")
    page.select_camera("cam0")
    idle(page, qtbot)
    before = page.settings["min_score"]
    page.min_score.setValue(0.35 if abs(before - 0.35) > 0.01 else 0.45)
    want = round(page.min_score.value(), 2)
    page.apply_button.click()
    idle(page, qtbot)
    assert page.status.kind == "ok", page.status.text()
    assert rig.get("/cameras/cam0/analytics")["min_score"] == pytest.approx(want)

    editor: ZoneEditor = page.editor
    zone = editor.add_zone([(0.1, 0.1), (0.6, 0.1), (0.6, 0.8), (0.1, 0.8)], name="Door")
    page.shape_labels.setText("person")
    page._apply_shape_fields()
    # a line drawn with the mouse: press at a, release at b
    editor.start_drawing("line")
    a, b = editor.to_widget((0.2, 0.9)), editor.to_widget((0.9, 0.9))
    qtbot.mousePress(editor, Qt.MouseButton.LeftButton, pos=QPoint(round(a.x()), round(a.y())))
    qtbot.mouseMove(editor, QPoint(round(b.x()), round(b.y())))
    qtbot.mouseRelease(editor, Qt.MouseButton.LeftButton, pos=QPoint(round(b.x()), round(b.y())))
    line = next(s for s in editor.shapes() if s.kind == "line")
    assert line.points[0] == pytest.approx((0.2, 0.9), abs=0.01)
    assert line.points[1] == pytest.approx((0.9, 0.9), abs=0.01)
    page.save_zones_button.click()
    idle(page, qtbot)
    assert page.status.kind == "ok", page.status.text()
    zones = {z["id"]: z for z in rig.get("/cameras/cam0/zones")}
    assert set(zones) == {zone.id, line.id}
    assert zones[zone.id]["labels"] == ["person"] and zones[zone.id]["name"] == "Door"
    assert zones[line.id]["kind"] == "line"
    flat = [v for p in zones[zone.id]["points"] for v in p]
    assert flat == pytest.approx([0.1, 0.1, 0.6, 0.1, 0.6, 0.8, 0.1, 0.8])
    shoot(settings_dialog, "ai-zones")

    # removed in the editor -> DELETE on save
    editor.select(line.id)
    page.delete_shape.click()
    page.save_zones_button.click()
    idle(page, qtbot)
    assert [z["id"] for z in rig.get("/cameras/cam0/zones")] == [zone.id]


def test_zone_editor_mouse_polygon_and_validation(qtbot):
    editor = ZoneEditor()
    qtbot.addWidget(editor)
    editor.resize(400, 300)  # letterboxed: 16:9 picture in a 4:3 widget
    r = editor.image_rect()
    assert r.width() == 400 and r.height() == pytest.approx(225)
    editor.start_drawing("zone")
    pts = [(0.1, 0.2), (0.5, 0.2), (0.5, 0.6)]
    for p in pts:
        q = editor.to_widget(p)
        qtbot.mouseClick(editor, Qt.MouseButton.LeftButton, pos=QPoint(round(q.x()), round(q.y())))
    assert editor.shapes() == [] and editor.drawing() == "zone"
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    (shape,) = editor.shapes()
    assert shape.kind == "zone" and len(shape.points) == 3
    for got, want in zip(shape.points, pts, strict=True):
        assert got == pytest.approx(want, abs=0.01)
    assert editor.drawing() == "" and editor.selected() == shape.id
    with pytest.raises(ValueError):
        Shape("Bad id", "zone", pts)
    with pytest.raises(ValueError):
        Shape("l", "line", pts)
    with pytest.raises(ValueError):
        editor.add_zone([(0, 0), (2, 0), (0, 1)])


def test_add_a_user(rig: Rig, settings_dialog, qtbot):
    page = settings_dialog.show_page("users")
    idle(page, qtbot)
    page.new_button.click()
    page.name.setText("op1")
    page.add_button.click()
    assert page.status.kind == "error"  # no password: refused here, nothing sent
    page.password.setText("op1-password")
    page.role.setCurrentIndex(page.role.findData("operator"))
    page.all_cameras.setChecked(False)
    for i in range(page.cameras.count()):
        item = page.cameras.item(i)
        if item.data(Qt.ItemDataRole.UserRole) == "cam0":
            item.setCheckState(Qt.CheckState.Checked)
    page.add_button.click()
    idle(page, qtbot)
    assert page.status.kind != "error", page.status.text()
    users = {u["name"]: u for u in rig.get("/users")}
    assert users["op1"]["role"] == "operator" and users["op1"]["cameras"] == ["cam0"]
    assert page.user("op1") is not None and page.editing == "op1"
    # the same name again is refused by the recorder, and said inline
    page.new_button.click()
    page.name.setText("op1")
    page.password.setText("x-password-2")
    page.add_button.click()
    idle(page, qtbot)
    assert page.status.kind == "error" and "exists" in page.status.text()


def test_language_switch_applies_at_once(rig: Rig, settings_dialog, qtbot, tmp_path):
    app = QApplication.instance()
    page = settings_dialog.show_page("preferences")
    nav_item = settings_dialog.nav.item(list(PAGES).index("cameras"))
    assert nav_item.text() == "Cameras"
    # our own strings go to U1's .ts file; a small translator of them stands in meanwhile
    ts = tmp_path / "dialogs_pt_BR.ts"
    ts.write_text(
        '<?xml version="1.0" encoding="utf-8"?><!DOCTYPE TS><TS version="2.1" language="pt_BR">'
        "<context><name>SettingsDialog</name><message><source>Cameras</source>"
        "<translation>Câmeras</translation></message></context></TS>",
        encoding="utf-8",
    )
    qm = tmp_path / "dialogs_pt_BR.qm"
    lrelease = ROOT / ".venv" / "bin" / "pyside6-lrelease"
    subprocess.run([str(lrelease), str(ts), "-qm", str(qm)], check=True, capture_output=True)
    extra = QTranslator()
    try:
        page.language.setCurrentIndex(page.language.findData("pt_BR"))
        page.apply_button.click()
        assert rig.ws.settings.preferences.language == "pt_BR"
        assert Settings(rig.ws.settings.dir, SecretStore()).preferences.language == "pt_BR"
        assert QCoreApplication.translate("VideoTile", "No signal") == "Sem sinal"
        assert extra.load(str(qm))
        app.installTranslator(extra)  # LanguageChange: every page and the list retranslate
        qtbot.waitUntil(lambda: nav_item.text() == "Câmeras", timeout=5000)
        shoot(settings_dialog, "preferences-pt_BR")
    finally:
        app.removeTranslator(extra)
        theme.install_language(app, "en")
        rig.ws.settings.set_preferences(language="en")
    qtbot.waitUntil(lambda: nav_item.text() == "Cameras", timeout=5000)


def test_export_from_the_dialog_verified(rig: Rig, qtbot, tmp_path):
    wall = VideoWall(layout="2x2")
    qtbot.addWidget(wall)
    wall.assign(0, f"{rig.sid}/cam0")

    def recorded() -> tuple[int, int] | None:
        """Six seconds the recorder has indexed (a busy machine may index them late)."""
        now = time.time_ns() // 1000
        rec = rig.get("/recordings", camera="cam0", start_us=now - 120_000_000, end_us=now)
        for r in reversed(rec["ranges"]):
            if r["end_us"] - r["start_us"] >= 8_000_000:
                return r["end_us"] - 7_000_000, r["end_us"] - 1_000_000
        return None

    start_us, end_us = wait_until(recorded, 60, "6 s of cam0 indexed")
    dialog = open_export_dialog(None, rig.ws, wall, start_us, end_us)
    qtbot.addWidget(dialog)
    assert dialog.checked_cameras() == ["cam0"]  # the wall's cameras, not every camera
    assert dialog.format.count() == 2 and dialog.format.currentData() == "mp4"
    dialog.folder.setText(str(tmp_path / "exports"))
    dialog.end.setDateTime(dialog.start.dateTime())
    dialog.start_button.click()
    assert dialog.status.kind == "error"  # an empty range is refused before sending
    dialog.set_range(start_us, end_us)
    dialog.start_button.click()
    assert dialog.running() and not dialog.start_button.isEnabled()
    qtbot.waitUntil(lambda: not dialog.running(), timeout=90000)
    assert dialog.verification is not None, dialog.status.text()
    assert dialog.verification.ok, dialog.verification.problems
    assert dialog.progress.value() == 100 and dialog.verification_label.text().startswith(
        "Verified"
    )
    out = dialog.result_dir
    assert out is not None and out.parent == tmp_path / "exports"
    assert any(p.suffix == ".mp4" for p in out.iterdir())
    assert verify_export(out).ok  # and independently of the dialog
    shoot(dialog, "export")


def test_recorders_page_log_out_and_add_again(rig: Rig, settings_dialog, qtbot):
    """Last in the module: it logs the workstation out of the recorder and in again."""
    page = settings_dialog.show_page("recorders")
    page.address.setText("ftp://nowhere")
    page.add_button.click()
    assert page.status.kind == "error" and "http" in page.status.text()  # nothing sent
    page.select(rig.sid)
    assert page.logout_button.isEnabled() and not page.login_button.isEnabled()
    page.logout_button.click()
    qtbot.waitUntil(lambda: rig.ws.session(rig.sid) is None, timeout=15000)

    def gone() -> bool:
        i = page.row_index(rig.sid)
        return i < 0 or "connected" not in page.rows[i].sources

    qtbot.waitUntil(gone, timeout=5000)
    base_url = rig.server_url
    page.address.setText(base_url)
    page.user.setText("admin")
    page.password.setText("wrong-password")
    page.add_button.click()
    idle(page, qtbot)
    assert page.status.kind == "error" and rig.ws.session(rig.sid) is None
    page.password.setText(ADMIN_PASSWORD)
    page.add_button.click()
    idle(page, qtbot)
    assert page.status.kind == "ok", page.status.text()
    session = rig.ws.session(rig.sid)
    assert session is not None and session.state == "online"
    assert page.rows[page.row_index(rig.sid)].state == "online"
    assert rig.ws.settings.server(rig.sid) is not None  # remembered (password: keyring only)
