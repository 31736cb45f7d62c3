"""The add-cameras wizard (settings → Cameras → Find cameras…) against a real recorder and a
real ONVIF camera (IPyCam in a network namespace, ``tests/onvif_cameras.py``): the device is
found, credentials typed once, its picture shown before adding, and the checked camera added
with its main and sub streams and no URL typed. The wizard is saved as
``tests/artifacts/dialog-add-cameras.png``. Also the PTZ model (``app.ptz``) against it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication

from app.api import ApiError
from app.ptz import PtzControl, drag_velocity, wheel_zoom
from app.session import Session
from app.settings import SecretStore, Settings
from app.workstation import Workstation
from tests.conftest import ROOT, ServerProcess, camera_toml, wait_until
from tests.onvif_cameras import PASSWORD, USERNAME, IpyCam, scene_clip
from tests.test_whep import NetNs, netns_unavailable
from ui.dialogs import open_settings
from ui.tile_ptz import TilePtz
from ui.videotile import VideoTile

ADMIN_PASSWORD = "admin-password-1"
ARTIFACTS = ROOT / "tests" / "artifacts"


@dataclass
class Rig:
    ws: Workstation
    session: Session
    camera: IpyCam


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    reason = netns_unavailable()
    if reason:
        pytest.skip(f"{reason} (IPyCam's WS-Discovery multicasts stay on a veth pair)")
    tmp = tmp_path_factory.mktemp("ui-add-cameras")
    ns = NetNs()
    ns.create()
    camera = IpyCam(ns, tmp, scene_clip(tmp / "scene.mp4"), name="Porch")
    onvif = f'[onvif]\ndiscovery_interfaces = ["{ns.host_addr}"]\ndiscovery_timeout_s = 1.0'
    (tmp / "vigia.toml").write_text(camera_toml([], extra=onvif))
    server = ServerProcess(tmp / "data", tmp / "vigia.toml", tmp / "server.log")
    ws = Workstation(Settings(tmp / "config", SecretStore()), start_discovery=False)
    try:
        camera.start()
        server.start(env={"VIGIA_ADMIN_PASSWORD": ADMIN_PASSWORD})
        port = server.api_port

        def connected():
            try:
                return ws.connect(f"http://127.0.0.1:{port}", "admin", ADMIN_PASSWORD, timeout=5)
            except (ApiError, TimeoutError):
                return None

        session = wait_until(connected, 60, f"a login to the recorder\n{server.log()}", poll=0.3)
        yield Rig(ws, session, camera)
    finally:
        try:
            ws.close()
        finally:
            if server.proc is not None and server.proc.poll() is None:
                server.stop()
            camera.stop()
            ns.delete()


def test_the_wizard_finds_previews_and_adds_a_camera(rig: Rig, qtbot) -> None:
    dialog = open_settings(None, rig.ws)
    qtbot.addWidget(dialog)
    page = dialog.show_page("cameras")
    qtbot.waitUntil(lambda: page.tasks.pending == 0, timeout=15000)
    wizard = page.find_cameras()
    assert wizard is not None
    qtbot.waitExposed(wizard)

    wizard.find_button.click()
    qtbot.waitUntil(lambda: wizard.list.count() == 1, timeout=15000)
    assert "Porch" in wizard.list.item(0).text()
    wizard.username.setText(USERNAME)
    wizard.password.setText(PASSWORD)
    wizard.list.item(0).setCheckState(Qt.CheckState.Checked)
    wizard.preview_button.click()
    qtbot.waitUntil(lambda: wizard.status.kind in ("ok", "error"), timeout=30000)
    assert wizard.status.kind == "ok", wizard.status.text()
    assert not wizard.list.item(0).icon().isNull()  # the picture, before adding
    assert wizard.list.item(0).checkState() == Qt.CheckState.Checked  # kept across the preview
    assert "IPyCam" in wizard.list.item(0).text()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert wizard.grab().save(str(ARTIFACTS / "dialog-add-cameras.png"))

    with qtbot.waitSignal(wizard.added, timeout=30000) as added:
        wizard.add_button.click()
    (cam,) = added.args[0]
    assert (cam["id"], cam["onvif"]) == ("porch", rig.camera.address)
    urls = sorted(s["url"] for s in cam["streams"])
    assert urls[0].endswith("/video_main") and urls[1].endswith("/video_sub")
    # found again, it is marked as added and cannot be checked
    wizard.find_button.click()

    def marked() -> bool:
        return wizard.list.count() == 1 and "added as porch" in wizard.list.item(0).text()

    qtbot.waitUntil(marked, timeout=15000)
    assert not wizard.list.item(0).flags() & Qt.ItemFlag.ItemIsEnabled
    qtbot.waitUntil(lambda: page.camera("porch") is not None, timeout=15000)


def test_ptz_model_steers_the_added_camera(rig: Rig) -> None:
    assert drag_velocity(160, -45, 320, 180) == (1.0, 0.5)  # right and up
    assert drag_velocity(5, 3, 320, 180) == (0.0, 0.0)  # inside the dead zone
    assert wheel_zoom(1) > 0 > wheel_zoom(-2)
    _ensure_porch(rig)
    ptz = PtzControl(rig.session, "porch")
    state = ptz.state().result(20)
    assert state["continuous"] and state["missing"] == []
    ptz.move(0.0, 0.0, 0.5, timeout_s=1).result(20)
    ptz.stop().result(20)
    saved = ptz.save("gate").result(20)
    assert {"token": saved["token"], "name": "gate"} in ptz.presets().result(20)
    ptz.goto(saved["token"]).result(20)
    ptz.zoom_burst(-1).result(20)
    ptz.home().result(20)
    state = ptz.state().result(20)
    assert state["holder"] == "admin"


def _ensure_porch(rig: Rig) -> None:
    cams = rig.session.call_sync(lambda api: api.get_json("/cameras"))
    if not any(c["id"] == "porch" for c in cams):
        body = {"id": "porch", "name": "Porch", "onvif": rig.camera.address,
                "username": USERNAME, "password": PASSWORD}  # fmt: skip
        rig.session.call_sync(lambda api: api.post_json("/cameras", body))


def test_tile_steers_by_drag_wheel_keys_and_presets(rig: Rig, qtbot) -> None:
    _ensure_porch(rig)
    since = rig.session.call_sync(lambda api: api.get_json("/server"))["time_us"]
    tile = VideoTile(renderer="raster")
    qtbot.addWidget(tile)
    tile.resize(480, 270)
    tile.show()
    qtbot.waitExposed(tile)
    ptz = TilePtz(PtzControl(rig.session, "porch"), tile)
    tile.set_ptz(ptz)
    assert not tile.steering
    tile._ptz_button.click()
    assert tile.steering
    qtbot.waitUntil(lambda: ptz.tasks.pending == 0, timeout=20000)
    assert ptz.text.startswith("PTZ") and "no " not in ptz.text, ptz.text

    def settle() -> None:
        qtbot.waitUntil(lambda: ptz.tasks.pending == 0, timeout=20000)
        assert ptz.answered == ptz.commands, ptz.text

    # drag right from the centre: a pan right, then a stop on release
    qtbot.mousePress(tile, Qt.MouseButton.LeftButton, pos=QPoint(240, 135))
    qtbot.mouseMove(tile, QPoint(420, 135))
    qtbot.mouseRelease(tile, Qt.MouseButton.LeftButton, pos=QPoint(420, 135))
    settle()
    # one wheel notch forward: a short zoom
    wheel = QWheelEvent(QPointF(240, 135), QPointF(240, 135), QPoint(0, 0), QPoint(0, 120),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                        Qt.ScrollPhase.NoScrollPhase, False)  # fmt: skip
    QApplication.sendEvent(tile, wheel)
    # an arrow key held and let go
    qtbot.keyPress(tile, Qt.Key.Key_Up)
    qtbot.keyRelease(tile, Qt.Key.Key_Up)
    settle()
    ptz.save("tile-view")
    settle()
    qtbot.waitUntil(lambda: any(p["name"] == "tile-view" for p in ptz.presets), timeout=20000)
    menu = ptz.menu(tile)
    goto = next(a for a in menu.actions() if a.text() == "tile-view")
    goto.trigger()
    settle()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert tile.grab().save(str(ARTIFACTS / "tile-ptz.png"))

    log = rig.session.call_sync(
        lambda api: api.get_json("/audit", {"action": "ptz", "since_us": since})
    )
    sent = [(e["detail"]["op"], e["detail"].get("pan"), e["detail"].get("tilt"),
             e["detail"].get("zoom")) for e in reversed(log)]  # fmt: skip
    assert sent == [
        ("move", 0.75, 0.0, 0.0),  # 180 px right of the press on a 480 px tile
        ("stop", None, None, None),
        ("move", 0.0, 0.0, 0.5),  # the wheel
        ("move", 0.0, 0.5, 0.0),  # up arrow
        ("stop", None, None, None),
        ("set-preset", None, None, None),
        ("goto-preset", None, None, None),
    ], sent
