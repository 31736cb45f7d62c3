"""The main window against a real recorder recording 4 real RTSP cameras (offscreen Qt).

Connect, see the tree, drag a camera to a tile and see frames, layouts saved and restored
locally and through the recorder, tours, a detached wall, the ``vigia`` program itself
(``VIGIA_SELFTEST``) and a clean shutdown.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from keyring.backends import null
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from app.settings import SecretStore, Settings
from app.workstation import Workstation
from server.sim.rtsp_cameras import RtspCameraHost
from tests.conftest import ROOT, START_S, ServerProcess, camera_toml, wait_until
from ui import i18n
from ui.layouts import LocalLayouts, RemoteLayouts
from ui.mainwindow import MainWindow
from ui.theme import install_language
from ui.tree import CAMERA_ROLE

ADMIN_PASSWORD = "admin-password-ui"
CAMERAS = [f"cam{i}" for i in range(4)]
FRAMES_S = 30_000  # ms to wait for video on this loaded machine


@dataclass
class Recorder:
    server: ServerProcess
    base_url: str


@pytest.fixture(scope="module")
def recorder(
    gst: None, camera_clips: list[tuple[Path, Path]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Recorder]:
    mounts: dict[str, Path] = {}
    for cam, (main, sub) in zip(CAMERAS, camera_clips, strict=True):
        mounts[f"{cam}-main"], mounts[f"{cam}-sub"] = main, sub
    host = RtspCameraHost(mounts, name="ui-main-cameras")
    host.start()
    tmp = tmp_path_factory.mktemp("ui-main")
    toml = camera_toml([(c, host.url(f"{c}-main"), host.url(f"{c}-sub")) for c in CAMERAS])
    (tmp / "vigia.toml").write_text(toml)
    server = ServerProcess(tmp / "data", tmp / "vigia.toml", tmp / "server.log")
    server.start(env={"VIGIA_ADMIN_PASSWORD": ADMIN_PASSWORD})
    base_url = server.base_url
    probe = Workstation(_settings(tmp / "probe"), start_discovery=False)

    def online() -> bool:
        try:
            session = probe.connect(base_url, "admin", ADMIN_PASSWORD, timeout=5)
            session.refresh(timeout=5)
        except Exception:
            return False
        states = [s.state for c in probe.tree.cameras() for s in c.streams]
        return session.live_available and states.count("online") == 2 * len(CAMERAS)

    try:
        wait_until(online, START_S, "a recorder with 4 cameras online (see its log)", poll=0.5)
        probe.close()
        yield Recorder(server, base_url)
    finally:
        probe.close()
        if server.proc is not None and server.proc.poll() is None:
            server.stop()
        host.stop()


def _settings(directory: Path) -> Settings:
    return Settings(directory, secrets=SecretStore(null.Keyring()))


@pytest.fixture
def workstation(tmp_path: Path) -> Iterator[Workstation]:
    ws = Workstation(_settings(tmp_path / "config"), start_discovery=False)
    yield ws
    ws.close()


@pytest.fixture
def window(qtbot, workstation: Workstation, recorder: Recorder) -> Iterator[MainWindow]:
    w = MainWindow(workstation, renderer="raster", layout="2x2")
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.shutdown()


def _connect(qtbot, window: MainWindow, recorder: Recorder):
    with qtbot.waitSignal(window.connected, timeout=15_000) as blocker:
        window.connect_to(recorder.base_url, "admin", ADMIN_PASSWORD)
    return blocker.args[0]


def _drop(cell, mime) -> bool:
    pos = QPointF(cell.rect().center())
    actions = Qt.DropAction.CopyAction
    buttons, mods = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(pos.toPoint(), actions, mime, buttons, mods)
    QApplication.sendEvent(cell, enter)
    if not enter.isAccepted():
        return False
    event = QDropEvent(pos, actions, mime, buttons, mods)
    QApplication.sendEvent(cell, event)
    return event.isAccepted()


def test_connect_tree_drag_and_frames(qtbot, window: MainWindow, recorder: Recorder) -> None:
    assert window.windowTitle().startswith("Vigia")
    assert window.wall is not None and window.tree is not None and window.status is not None
    session = _connect(qtbot, window, recorder)
    assert window.workstation.session(session.server_id) is session
    assert session.name in window.windowTitle()

    def tree_ready() -> bool:
        rows = window.tree.cameras()
        return [c for c, _ in rows] == [f"{session.server_id}/{c}" for c in CAMERAS] and all(
            status == "online" for _, status in rows
        )

    qtbot.waitUntil(tree_ready, timeout=10_000)
    recorder_item = window.tree.model.item(0)
    assert recorder_item.text() == session.name and recorder_item.rowCount() == len(CAMERAS)

    # the filter keeps matching cameras only
    window.tree.filter.setText("cam2")
    assert [c for c, _ in window.tree.cameras()] == [f"{session.server_id}/cam2"]
    window.tree.filter.setText("nothing-like-this")
    assert window.tree.cameras() == []
    window.tree.filter.clear()

    # cam1 has a zone: the tile draws it over the video
    zone = {"points": [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]], "name": "Door"}
    session.call_sync(lambda api: api.request("PUT", "/cameras/cam1/zones/door", json=zone))

    # drag cam1 from the tree onto tile 3: the tile shows its frames
    index = window.tree.index_of(f"{session.server_id}/cam1")
    mime = window.tree.model.mimeData([index])
    assert mime is not None and index.data(CAMERA_ROLE) == f"{session.server_id}/cam1"
    assert _drop(window.wall.cells[3], mime)
    assert window.wall.cameras[3] == f"{session.server_id}/cam1"
    tile = window.wall.tile(3)
    qtbot.waitUntil(lambda: tile.frames_received >= 5, timeout=FRAMES_S)
    assert tile.state == "live"
    qtbot.waitUntil(lambda: [z.name for z in tile.shapes] == ["Door"], timeout=10_000)
    # a small offscreen tile takes the sub-stream (320x180)
    assert tile.frame is not None and tile.frame.stream == "sub" and tile.frame.width == 320
    assert all(tile.frame is None for tile in (window.wall.tile(i) for i in range(3)))

    # the status bar reports the current tile's decoder, fps and drops
    window.wall.set_current(3)
    qtbot.waitUntil(lambda: "fps" in window.status.tile.text(), timeout=5000)
    assert "SW" in window.status.tile.text() or "HW" in window.status.tile.text()
    assert session.name in window.status.recorders.text()

    # maximising makes the tile big: it switches to the main stream (640x360)
    window.resize(1600, 1000)
    window.wall.maximise(3)
    qtbot.waitUntil(lambda: tile.frame is not None and tile.frame.stream == "main", timeout=15000)
    assert tile.frame.width == 640
    window.wall.restore()

    # log out: the tile's live video stops and waits; log in again: it plays on the new session
    source = window.sources.source_at(3)
    old_live = source.live
    assert old_live is not None
    window.workstation.sessions.disconnect(session.server_id)
    qtbot.waitUntil(lambda: source.live is None and tile.state == "no_signal", timeout=5000)
    qtbot.waitUntil(lambda: not old_live._thread.is_alive(), timeout=10_000)
    _connect(qtbot, window, recorder)
    qtbot.waitUntil(lambda: source.live is not None, timeout=5000)
    assert source.live is not old_live and window.sources.source_at(3) is source
    before = tile.frames_received
    qtbot.waitUntil(lambda: tile.frames_received >= before + 5, timeout=FRAMES_S)
    assert tile.state == "live"


def test_layouts_local_and_shared(qtbot, window: MainWindow, recorder: Recorder) -> None:
    session = _connect(qtbot, window, recorder)
    sid = session.server_id
    window.start_wall("3x3")
    assert len(window.wall.cells) == 9
    assert window.wall.cameras[:4] == [f"{sid}/{c}" for c in CAMERAS]
    assert window.wall.cameras[4:] == [None] * 5
    qtbot.waitUntil(
        lambda: all(window.wall.tile(i).frames_received for i in range(4)), timeout=FRAMES_S
    )
    saved = window.wall.to_dict()

    where = window.save_layout("night shift")
    assert where == ["local", sid]  # this recorder keeps layouts too
    window.set_preset("1")
    assert len(window.wall.cells) == 1
    assert window.restore_layout("night shift")
    assert window.wall.to_dict() == saved

    # the local copy is in the settings directory, per user
    local = LocalLayouts(window.workstation.settings.dir, "admin")
    assert [lay.name for lay in local.list()] == ["night shift"]
    # ... and the recorder's survives without it
    assert local.delete("night shift")
    window.set_preset("1")
    assert window.restore_layout("night shift")
    assert window.wall.to_dict() == saved

    # shared: every user sees it; it comes back from the recorder
    window.set_preset("2x2")
    window.wall.assign(0, f"{sid}/cam3")
    shared = window.wall.to_dict()
    assert window.save_layout("lobby", shared=True) == [sid]
    remote = RemoteLayouts(session)
    rows = {lay.name: lay for lay in remote.list()}
    assert rows["lobby"].shared and rows["lobby"].owner == "admin"
    assert rows["lobby"].layout == shared
    window.set_preset("1")
    assert window.restore_layout("lobby")
    assert window.wall.cameras[0] == f"{sid}/cam3"
    assert window.layouts.delete("lobby") == 1
    assert "lobby" not in window.layouts.names()

    # bad input: refused with the reason, nothing changes
    with pytest.raises(ValueError):
        window.save_layout("   ")
    assert not window.restore_layout("no such layout")


def test_tour_detach_and_clean_shutdown(qtbot, window: MainWindow, recorder: Recorder) -> None:
    session = _connect(qtbot, window, recorder)
    sid = session.server_id
    window.start_wall("2x2")
    window.save_layout("four")
    window.set_preset("1")
    window.wall.assign(0, f"{sid}/cam2")
    window.save_layout("one")
    tour = window.start_tour(["four", "one"], 1)
    # the layouts are fetched in the background, then the first one shows
    with qtbot.waitSignal(tour.step, timeout=10_000):
        pass
    assert len(window.wall.cells) == 4
    with qtbot.waitSignal(tour.step, timeout=10_000):
        pass
    assert window.wall.cameras == [f"{sid}/cam2"]
    window.stop_tour()
    assert window.tour is None

    detached = window.detach_layout()
    qtbot.addWidget(detached)
    assert detached.wall.to_dict() == window.wall.to_dict()
    qtbot.waitUntil(lambda: detached.wall.tile(0).frames_received > 0, timeout=FRAMES_S)
    # each wall has its own live tile: closing the detached one leaves ours playing
    ours = window.sources.source_at(0)
    assert ours is not None and ours is not detached.sources.source_at(0)
    detached.close()
    assert window.detached == []
    before = window.wall.tile(0).frames_received
    qtbot.waitUntil(lambda: window.wall.tile(0).frames_received > before, timeout=FRAMES_S)

    # Ctrl+M: a motion-search rectangle tool over the current tile
    window.wall.set_current(0)
    window.actions_by_key["motion-search"].trigger()
    tool = window.motion_panel.tool
    assert tool is not None and tool.parent() is window.wall.tile(0)
    assert window.motion_panel.camera_id == "cam2"

    lives = [s.live for s in window.sources.sources()]
    assert lives and all(live is not None for live in lives)
    window.shutdown()
    assert window.sources.sources() == []
    assert all(live._thread is None or not live._thread.is_alive() for live in lives)
    assert window.wall.cameras == [None]
    runner = window.workstation.runner
    window.workstation.close()
    assert runner._thread is None


def test_vigia_program_selftest(recorder: Recorder, tmp_path: Path) -> None:
    report = tmp_path / "selftest.json"
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "VIGIA_PASSWORD": ADMIN_PASSWORD,
        "VIGIA_SELFTEST": str(report),
        "VIGIA_SELFTEST_TIMEOUT": "45",
        "VIGIA_CONFIG_DIR": str(tmp_path / "config"),
        "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "ui.main", "--server", recorder.base_url, "--user", "admin",
         "--no-discovery", "--renderer", "raster"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    assert report.exists(), proc.stderr[-3000:]
    result = json.loads(report.read_text())
    assert proc.returncode == 0 and result["ok"], (result, proc.stderr[-3000:])
    assert result["title"].startswith("Vigia")
    assert result["layout"] == "2x2"
    assert [t["camera"].split("/")[1] for t in result["tiles"]] == CAMERAS
    assert all(t["frames_received"] > 0 for t in result["tiles"])
    # the wall was remembered for next time
    assert list((tmp_path / "config" / "layouts").glob("admin.json"))


def test_translations_complete_and_installed(qtbot, workstation: Workstation) -> None:
    """Every visible string of the workstation (all of ui/) has a pt_BR translation, and
    switching the language retranslates the open window."""
    files = sorted((ROOT / "ui").rglob("*.py"))
    assert len(files) > 10
    assert i18n.missing(files) == []
    w = MainWindow(workstation, renderer="raster")
    qtbot.addWidget(w)
    app = QApplication.instance()
    assert w.file_menu.title() == "&File"
    try:
        assert install_language(app, "pt_BR")
        QApplication.processEvents()
        assert w.file_menu.title() == "&Arquivo"
        assert w.tree.filter.placeholderText() == "Filtrar câmeras (Ctrl+F)"
        assert w.status.recorders.text() == "Não conectado"
    finally:
        install_language(app, "en")
        QApplication.processEvents()
        w.shutdown()
    assert w.file_menu.title() == "&File"
