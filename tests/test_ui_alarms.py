"""The alarm console (pytest-qt) over the real alarm model and a real recorder: a manual rule
fires, the alarm is listed with its priority colour and the camera's tiles are told to flash;
Enter acknowledges it with the typed comment and it leaves the list. Screenshot to
``tests/artifacts/alarm_console.png``."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from keyring.backends import fail
from PySide6.QtCore import Qt

from app.alarms import AlarmFeed
from app.api import ApiError
from app.settings import SecretStore, Settings
from app.workstation import Workstation
from tests.conftest import ServerProcess, wait_until
from tests.test_app_alarms import ADMIN_PASSWORD, recorder  # noqa: F401 (the fixture)
from ui.alarm_console import AlarmConsole
from ui.wall import VideoWall

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CALL_S = 20


def test_alarm_console_lists_flashes_and_acknowledges(
    qtbot,
    tmp_path: Path,
    recorder: tuple[ServerProcess, int],  # noqa: F811
) -> None:
    server, port = recorder
    ws = Workstation(Settings(tmp_path / "ws", SecretStore(fail.Keyring())), start_discovery=False)
    feed = None
    try:

        def connected():
            try:
                return ws.connect(f"http://127.0.0.1:{port}", "admin", ADMIN_PASSWORD, timeout=5)
            except (ApiError, TimeoutError):
                return None

        session = wait_until(connected, 60, f"a logged-in workstation\n{server.log()}", 0.3)
        sid = session.server_id
        feed = AlarmFeed(ws.runner, ws.sessions)
        wait_until(lambda: feed.followed().result(CALL_S).get(sid) == ["door"], 20, "alarms")
        wall = VideoWall(None, provider=None, renderer="raster", layout="2x2")
        qtbot.addWidget(wall)
        wall.resize(640, 240)
        wall.assign(0, f"{sid}/door")
        wall.assign(1, f"{sid}/yard")
        wall.show()
        console = AlarmConsole(feed)
        qtbot.addWidget(console)
        console.resize(520, 260)
        console.show()
        console.activateWindow()  # its keys, not the wall's
        console.flash.connect(wall.flash_alarms)
        rule = {"name": "panic button", "trigger": "manual", "cooldown_s": 0,
                "actions": [{"type": "alarm", "priority": 1}]}  # fmt: skip
        created = session.call_sync(lambda api: api.post_json("/rules", rule), CALL_S)
        trigger = {"camera": "door", "comment": "pressed"}
        session.call_sync(
            lambda api: api.post_json(f"/rules/{created['id']}/trigger", trigger), CALL_S
        )
        qtbot.waitUntil(lambda: console.list.count() == 1, timeout=10_000)
        assert "P1" in console.list.item(0).text() and "door" in console.list.item(0).text()
        assert console.list.item(0).foreground().color().name() == "#d32f2f"
        with qtbot.waitSignal(console.flash, timeout=2_000,
                              check_params_cb=lambda cams, lit: lit) as blink:  # fmt: skip
            pass
        assert blink.args[0] == {(sid, "door")}
        # the door's tile flashes, the yard's does not
        assert wall.tile(0).alarm_lit and not wall.tile(1).alarm_lit
        ARTIFACTS.mkdir(exist_ok=True)
        console.grab().save(str(ARTIFACTS / "alarm_console.png"))
        wall.grab().save(str(ARTIFACTS / "alarm_wall.png"))
        # keyboard: type a comment, Enter acknowledges the chosen alarm
        console.comment.setFocus()
        qtbot.keyClicks(console.comment, "checked the door")
        with qtbot.waitSignal(console.handled, timeout=CALL_S * 1000) as done:
            qtbot.keyClick(console.comment, Qt.Key.Key_Return)
        assert (done.args[0].state, done.args[0].comment) == ("acknowledged", "checked the door")
        qtbot.waitUntil(lambda: console.list.count() == 0, timeout=5_000)
        qtbot.waitUntil(lambda: not wall.tile(0).alarm_lit, timeout=2_000)  # no more flashing
        with qtbot.waitSignal(console.flash, timeout=2_000):
            pass
        assert not wall.tile(0).alarm_lit
        console.close()
    finally:
        if feed is not None:
            feed.close()
        ws.close()
