"""First run: the real main window with no saved recorder and a real recorder running.

The window opens on the welcome screen (not an empty wall), which lists the recorder that
zeroconf found on 127.0.0.1 under its site; failures are said on the screen; picking the
recorder, typing the password and pressing Enter logs in, and the wall and the tree (site →
recorder → camera) take the screen's place. Screenshot: ``tests/artifacts/welcome.png``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from keyring.backends import null
from PySide6.QtCore import Qt

from app.settings import SecretStore, Settings
from app.workstation import Workstation
from tests.conftest import ROOT, START_S, ServerProcess, camera_toml, wait_until
from tests.helpers import refused_port
from tests.test_app_session import ADMIN_PASSWORD, api_up, start_recorder
from ui import theme
from ui.main import login_failed
from ui.mainwindow import MainWindow
from ui.tree import CAMERA_ROLE, RECORDER_ROLE, SITE_ROLE

ARTIFACTS = ROOT / "tests" / "artifacts"
LOOPBACK = ["127.0.0.1"]
SITE = f"first-run-{secrets.token_hex(3)}"  # fresh per run: nothing else on loopback has it
WAIT_MS = 30_000


@pytest.fixture(scope="module")
def recorder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("ui-welcome")
    with refused_port() as port:  # a camera that never answers: in the tree all the same
        toml = camera_toml([("door", f"rtsp://127.0.0.1:{port}/door", None)])
    toml = toml.replace("discovery = false", 'discovery = true\nname = "Gate recorder"')
    server = start_recorder(tmp, toml + f'\n[site]\nname = "{SITE}"\n')
    try:
        base = server.base_url
        wait_until(
            lambda: api_up(base) or server.proc.poll() is not None, START_S, "the recorder API"
        )
        assert server.proc.poll() is None, server.log()
        yield server
    finally:
        if server.proc and server.proc.poll() is None:
            server.stop()


@pytest.fixture(scope="module", autouse=True)
def dark_theme(qapp) -> Iterator[None]:
    """The screenshot shows the screen as operators see it."""
    style, palette, sheet = qapp.style().name(), qapp.palette(), qapp.styleSheet()
    theme.apply_theme(qapp)
    yield
    qapp.setStyleSheet(sheet)
    qapp.setPalette(palette)
    qapp.setStyle(style)


@pytest.fixture
def window(qtbot, tmp_path: Path) -> Iterator[MainWindow]:
    settings = Settings(tmp_path / "config", secrets=SecretStore(null.Keyring()))
    assert settings.servers == []  # first run: nothing saved
    ws = Workstation(settings, discovery_interfaces=LOOPBACK)
    w = MainWindow(ws, renderer="raster")
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.shutdown()
    ws.close()


def test_first_run_welcome_screen_logs_in_and_shows_the_wall(
    qtbot, window: MainWindow, recorder: ServerProcess
) -> None:
    screen = window.welcome
    assert window.welcome_shown() and window.stack.currentWidget() is screen
    assert window.tree_dock.isHidden()  # the docks are put away while nobody is logged in

    # found by zeroconf, under its site
    base = recorder.base_url
    qtbot.waitUntil(lambda: screen.select_address(base), timeout=WAIT_MS)
    names = screen.entry_names()
    site_row = names.index(f"Site {SITE} (1 recorder)")
    assert names[site_row + 1] == "Gate recorder"
    assert screen.address.text() == base
    ARTIFACTS.mkdir(exist_ok=True)
    assert window.grab().save(str(ARTIFACTS / "welcome.png"))

    # failures are said on the screen, and the screen stays
    screen.password.setText("not-the-password")
    qtbot.keyClick(screen.password, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: screen.message_kind == "error", timeout=WAIT_MS)
    assert "Wrong user name or password" in screen.message.text()
    assert window.welcome_shown() and screen.password.hasFocus()
    with refused_port() as port:
        screen.address.setText(f"127.0.0.1:{port}")
        qtbot.keyClick(screen.address, Qt.Key.Key_Return)
        qtbot.waitUntil(lambda: screen.message_kind == "error" and "reach" in screen.message.text(),
                        timeout=WAIT_MS)  # fmt: skip
    assert screen.message.text().startswith(f"Cannot reach 127.0.0.1:{port}")
    assert window.welcome_shown()

    # ``vigia --server URL`` whose login fails: the reason on the screen, the address kept
    with refused_port() as port:
        elsewhere = f"http://127.0.0.1:{port}"
        window.connect_failed.connect(lambda m: login_failed(window, m, elsewhere))
        with qtbot.waitSignal(window.connect_failed, timeout=WAIT_MS):
            window.connect_to(elsewhere, "admin", "x")
            assert not window.welcome_shown()  # a login under way: no welcome meanwhile
    assert window.welcome_shown() and screen.message_kind == "error"
    assert elsewhere in screen.message.text() and screen.address.text() == elsewhere

    # pick the recorder again, the right password, Enter: the wall
    assert screen.select_address(base) and screen.address.text() == base
    screen.password.setText(ADMIN_PASSWORD)
    with qtbot.waitSignal(window.connected, timeout=WAIT_MS) as blocker:
        qtbot.keyClick(screen.password, Qt.Key.Key_Return)
    session = blocker.args[0]
    assert session.site == SITE and session.name == "Gate recorder"
    qtbot.waitUntil(lambda: not window.welcome_shown(), timeout=WAIT_MS)
    assert window.stack.currentWidget() is window.wall and not window.tree_dock.isHidden()
    assert window.workstation.settings.server(session.server_id).site == SITE  # remembered

    # the tree: site → recorder → camera
    camera = f"{session.server_id}/door"
    qtbot.waitUntil(lambda: [c for c, _ in window.tree.cameras()] == [camera], timeout=WAIT_MS)
    model = window.tree.model
    site_item = next(
        model.item(r) for r in range(model.rowCount()) if model.item(r).data(SITE_ROLE) == SITE
    )
    rec_item = site_item.child(0)
    assert rec_item.data(RECORDER_ROLE) == session.server_id
    assert rec_item.child(0).data(CAMERA_ROLE) == camera

    # logging out of the last recorder brings the welcome screen back
    window.workstation.sessions.disconnect(session.server_id)
    qtbot.waitUntil(window.welcome_shown, timeout=WAIT_MS)
    assert window.tree_dock.isHidden()
