"""The workstation's alarm model without Qt: ordering and state, and two workstations on one
real recorder (a manual rule fires an alarm; one acknowledges it; the other's list drops it
within 1 s)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from keyring.backends import fail

from app.alarms import AlarmFeed, AlarmItem, AlarmList
from app.api import ApiError
from app.settings import SecretStore, Settings
from app.workstation import Workstation
from server.protocol.models.rules import Alarm
from tests.conftest import ServerProcess, camera_toml, wait_until

ADMIN_PASSWORD = "admin-password-1"
CALL_S = 20


def alarm(aid: int, priority: int, ts: int, state: str = "new", updated: int = 0) -> Alarm:
    return Alarm(aid, 1, "r", "cam", priority, state, ts, "manual", {}, None, updated)  # type: ignore[arg-type]


def test_alarm_list_orders_by_priority_then_newest_and_drops_handled_ones() -> None:
    alarms = AlarmList()
    for a in (alarm(1, 3, 100), alarm(2, 1, 50), alarm(3, 3, 200), alarm(4, 1, 60)):
        assert alarms.apply(AlarmItem("s", a))
    assert [i.alarm.id for i in alarms.items()] == [4, 2, 3, 1]
    assert alarms.apply(AlarmItem("s", alarm(4, 1, 60, "acknowledged", 5)))
    assert not alarms.apply(AlarmItem("s", alarm(4, 1, 60, "closed", 6)))  # already gone
    assert not alarms.apply(AlarmItem("s", alarm(2, 1, 50, "new", 0)))  # no change
    assert [i.alarm.id for i in alarms.items()] == [2, 3, 1]
    alarms.replace("s", [alarm(9, 2, 10)])
    assert [i.alarm.id for i in alarms.items()] == [9]
    assert alarms.cameras() == {("s", "cam")}


class Changes:
    def __init__(self) -> None:
        self.lists: list[tuple[float, list[AlarmItem]]] = []
        self._cond = threading.Condition()

    def __call__(self, items: list[AlarmItem]) -> None:
        with self._cond:
            self.lists.append((time.monotonic(), items))
            self._cond.notify_all()

    def wait(self, pred, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for at, items in self.lists:
                    if pred(items):
                        return at
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"no alarm list matched in {timeout} s: {self.lists[-3:]}")
                self._cond.wait(left)


@pytest.fixture
def recorder(tmp_path: Path) -> Iterator[tuple[ServerProcess, int]]:
    # a camera nobody serves: the rule is manual, nothing needs video
    toml = camera_toml([("door", "rtsp://127.0.0.1:9/none", None)])
    (tmp_path / "vigia.toml").write_text(toml)
    server = ServerProcess(tmp_path / "data", tmp_path / "vigia.toml", tmp_path / "server.log")
    server.start(env={"VIGIA_ADMIN_PASSWORD": ADMIN_PASSWORD})
    try:
        yield server, server.api_port
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.stop()


def test_acknowledged_on_one_workstation_leaves_the_others_list(
    tmp_path: Path, recorder: tuple[ServerProcess, int]
) -> None:
    server, port = recorder
    stations, feeds = [], []
    try:
        for n in (1, 2):
            ws = Workstation(Settings(tmp_path / f"ws{n}", SecretStore(fail.Keyring())),
                             start_discovery=False)  # fmt: skip
            stations.append(ws)

            def connected(ws=ws):
                try:
                    return ws.connect(f"http://127.0.0.1:{port}", "admin", ADMIN_PASSWORD,
                                      timeout=5)  # fmt: skip
                except (ApiError, TimeoutError):
                    return None

            session = wait_until(connected, 60, f"a logged-in workstation\n{server.log()}", 0.3)
            feeds.append(AlarmFeed(ws.runner, ws.sessions))
        sid = session.server_id
        for feed in feeds:
            wait_until(lambda f=feed: f.followed().result(CALL_S).get(sid) == ["door"], 20,
                       "alarm subscriptions")  # fmt: skip
        changes = [Changes(), Changes()]
        for feed, ch in zip(feeds, changes, strict=True):
            feed.changed.connect(ch)
        rule = {"name": "panic button", "trigger": "manual", "actions": [{"type": "alarm",
                "priority": 1}], "cooldown_s": 0}  # fmt: skip
        created = session.call_sync(lambda api: api.post_json("/rules", rule), CALL_S)
        fired = time.monotonic()
        session.call_sync(lambda api: api.post_json(f"/rules/{created['id']}/trigger",
                                                    {"camera": "door"}), CALL_S)  # fmt: skip
        for ch in changes:
            at = ch.wait(lambda items: len(items) == 1, 10)
            assert at - fired < 1.0
        (item,) = feeds[1].alarms.items()
        assert (item.alarm.camera, item.alarm.priority, item.alarm.state) == ("door", 1, "new")
        assert feeds[0].refresh().result(CALL_S)[0].key == item.key  # GET /alarms agrees
        t0 = time.monotonic()
        done = feeds[0].acknowledge(feeds[0].alarms.items()[0], "checked").result(CALL_S)
        assert (done.state, done.by, done.comment) == ("acknowledged", "admin", "checked")
        at = changes[1].wait(lambda items: items == [], 5)
        assert at - t0 < 1.0, f"the other workstation saw it after {at - t0:.3f} s"
    finally:
        for feed in feeds:
            feed.close()
        for ws in stations:
            ws.close()
