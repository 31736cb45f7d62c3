"""The alarm console (pytest-qt) over the real alarm model and a real recorder recording a real
camera: a manual rule fires, the alarm is listed with its priority colour, the bell sounds and
the camera's tiles are told to flash; Enter acknowledges it with the typed comment and it leaves
the list. A second alarm is opened with Ctrl+O: the camera live beside the playback of the
moment it fired, side by side, and Enter there acknowledges it. Screenshots to
``tests/artifacts/alarm_console.png``, ``alarm_wall.png`` and ``alarm_view.png``."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from keyring.backends import fail
from PySide6.QtCore import QPoint, Qt

from app.alarms import AlarmFeed
from app.api import ApiError
from app.settings import SecretStore, Settings
from app.workstation import Workstation
from tests.conftest import ServerProcess, camera_toml, wait_until
from tests.helpers import refused_port
from tests.test_app_alarms import ADMIN_PASSWORD
from ui.alarm_console import AlarmConsole
from ui.alarm_view import LIVE, PLAYBACK, PRE_US
from ui.wall import VideoWall

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CALL_S = 20
RECORDED_S = 7  # footage before the opened alarm, so its playback starts before it


@pytest.fixture
def recorder(
    tmp_path: Path, camera_clips: list[tuple[Path, Path]]
) -> Iterator[tuple[ServerProcess, int]]:
    main, sub = camera_clips[0]
    toml = camera_toml([("door", f"file://{main}", f"file://{sub}")])
    (tmp_path / "vigia.toml").write_text(toml)
    server = ServerProcess(tmp_path / "data", tmp_path / "vigia.toml", tmp_path / "server.log")
    server.start(env={"VIGIA_ADMIN_PASSWORD": ADMIN_PASSWORD})
    try:
        yield server, server.api_port
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.stop()


def recorded_s(session) -> float:
    now = time.time_ns() // 1000
    window = {"start_us": now - 3_600_000_000, "end_us": now + 60_000_000}
    segs = session.call_sync(lambda api: api.get_json("/cameras/door/segments", window), CALL_S)
    return (segs[-1]["end_us"] - segs[0]["start_us"]) / 1e6 if segs else 0.0


def test_alarm_console_lists_flashes_acknowledges_and_opens(
    qtbot,
    tmp_path: Path,
    recorder: tuple[ServerProcess, int],
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
        tile = {"camera": f"{sid}/door"}  # the wall's current tile, for Ctrl+T
        console = AlarmConsole(feed, None, ws, "raster", current_camera=lambda: tile["camera"])
        qtbot.addWidget(console)
        console.resize(520, 260)
        console.show()
        console.activateWindow()  # its keys, not the wall's
        console.flash.connect(wall.flash_alarms)
        rule = {"name": "panic button", "trigger": "manual", "cooldown_s": 0,
                "actions": [{"type": "alarm", "priority": 1},
                            {"type": "webhook", "url": f"http://127.0.0.1:{refused_port()}/x",
                             "retries": 0, "timeout_s": 1}]}  # fmt: skip
        created = session.call_sync(lambda api: api.post_json("/rules", rule), CALL_S)
        trigger = {"camera": "door", "comment": "pressed"}

        def fire() -> None:
            session.call_sync(
                lambda api: api.post_json(f"/rules/{created['id']}/trigger", trigger), CALL_S
            )

        with qtbot.waitSignal(console.sounded, timeout=10_000) as bell:
            fire()
        assert bell.args[0].alarm.camera == "door"
        assert console.list.count() == 1
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

        # the manual rule and the webhook it could not deliver (twice: refused) are listed
        with qtbot.waitSignal(console.reloaded, timeout=CALL_S * 1000):
            qtbot.keyClick(console.list, Qt.Key.Key_F5)
        assert [t.rule.name for t in console.triggers] == ["panic button"]
        assert console.trigger_box.currentText() == "panic button"
        assert console.failed_list.count() == 1 and console.failed_list.isVisible()
        assert "webhook" in console.failed_list.item(0).text()

        # a second alarm, fired from the keyboard on the current tile, then opened: live
        # beside the playback of its moment
        wait_until(lambda: recorded_s(session) >= RECORDED_S, 30, "footage of the door")
        tile["camera"] = f"{sid}/yard"  # not a camera of that recorder: it refuses
        qtbot.keyClick(console.list, Qt.Key.Key_T, Qt.KeyboardModifier.ControlModifier)
        qtbot.waitUntil(lambda: "Not fired" in console.status.text(), timeout=CALL_S * 1000)
        tile["camera"] = f"{sid}/door"
        with qtbot.waitSignal(console.sounded, timeout=10_000):
            qtbot.keyClick(console.list, Qt.Key.Key_T, Qt.KeyboardModifier.ControlModifier)
        (item,) = console.items
        console.list.setFocus()
        with qtbot.waitSignal(console.opened, timeout=5_000) as opened:
            qtbot.keyClick(console.list, Qt.Key.Key_O, Qt.KeyboardModifier.ControlModifier)
        view = opened.args[0]
        view.resize(1000, 360)
        qtbot.waitExposed(view)
        live, played = view.wall.tile(LIVE), view.wall.tile(PLAYBACK)
        at = [t.mapTo(view, QPoint(0, 0)) for t in (live, played)]
        assert at[0].x() + live.width() <= at[1].x() and at[0].y() == at[1].y()  # side by side
        qtbot.waitUntil(lambda: live.state == "live" and live.frame is not None, timeout=20_000)
        qtbot.waitUntil(lambda: played.state == "playback" and played.frame is not None,
                        timeout=20_000)  # fmt: skip
        assert view.playback.in_playback(PLAYBACK) and not view.playback.in_playback(LIVE)
        assert view.playback.overlays(PLAYBACK) is not None  # the boxes of GET /tracks
        # the recorded frame shown is from around the alarm, not from now
        ts = item.alarm.ts_us
        assert ts - PRE_US - 2_000_000 <= played.frame.pts_us <= ts + 10_000_000
        view.grab().save(str(ARTIFACTS / "alarm_view.png"))
        qtbot.keyClicks(view.comment, "opened and seen")
        with qtbot.waitSignal(console.handled, timeout=CALL_S * 1000) as done:
            qtbot.keyClick(view.comment, Qt.Key.Key_Return)
        assert (done.args[0].state, done.args[0].comment) == ("acknowledged", "opened and seen")
        qtbot.waitUntil(lambda: console.list.count() == 0 and not console.views, timeout=5_000)
        console.close()
    finally:
        if feed is not None:
            feed.close()
        ws.close()
