"""The events model without Qt, against a real recorder running analytics on real footage.

One ``vigia-server`` serves OpenCV's ``vtest.avi`` (people walking across a plaza, 20 s looped)
as a ``file://`` camera analysed at 5 fps. ``EventFeed`` must hand over object events live from
NATS as the recorder writes them, find them again with a filtered ``GET /events`` query, fetch
their snapshot JPEGs, and the motion search model must find the walkers in the walkway.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from keyring.backends import fail

from app.api import ApiError
from app.events import EventFeed, EventFilter, EventItem
from app.motion_search import MotionSearch
from app.session import Session
from app.settings import SecretStore, Settings
from app.workstation import Workstation
from server.sim.clips import transcode_to_h264
from server.sim.footage import VTEST
from tests.conftest import EVERY_FRAME, ServerProcess, camera_toml, wait_until

ADMIN_PASSWORD = "admin-password-1"
S = 1_000_000
HOUR_US = 3600 * S
WALKWAY = (0.25, 0.2, 0.95, 0.6)  # where people cross vtest's picture
CALL_S = 20


@dataclass
class Recorder:
    server: ServerProcess
    ws: Workstation
    session: Session


@pytest.fixture(scope="module")
def recorder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorder]:
    tmp = tmp_path_factory.mktemp("app-events")
    clip = transcode_to_h264(VTEST, tmp / "vtest.mp4", max_seconds=20)
    toml = camera_toml([("vt", f"file://{clip}", None)], analytics=f"fps = 5\n{EVERY_FRAME}")
    (tmp / "vigia.toml").write_text(toml)
    server = ServerProcess(tmp / "data", tmp / "vigia.toml", tmp / "server.log")
    server.start(env={"VIGIA_ADMIN_PASSWORD": ADMIN_PASSWORD})
    port = server.api_port
    ws = Workstation(Settings(tmp / "config", SecretStore(fail.Keyring())), start_discovery=False)

    def connected():
        try:
            return ws.connect(f"http://127.0.0.1:{port}", "admin", ADMIN_PASSWORD, timeout=5)
        except (ApiError, TimeoutError):
            return None

    try:
        session = wait_until(connected, 60, f"a logged-in workstation\n{server.log()}", poll=0.3)
        yield Recorder(server, ws, session)
    finally:
        try:
            ws.close()
        finally:
            if server.proc is not None and server.proc.poll() is None:
                server.stop()


class Received:
    """Live events of the feed (delivered on the network loop)."""

    def __init__(self) -> None:
        self.items: list[EventItem] = []
        self._cond = threading.Condition()

    def __call__(self, item: EventItem) -> None:
        with self._cond:
            self.items.append(item)
            self._cond.notify_all()

    def wait(self, pred, timeout: float) -> EventItem:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = next((i for i in self.items if pred(i)), None)
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"no live event matched in {timeout} s (got {len(self.items)})")
                self._cond.wait(left)


def test_event_feed_live_query_and_snapshot(recorder: Recorder) -> None:
    sid = recorder.session.server_id
    feed = EventFeed(recorder.ws.runner, recorder.ws.sessions)
    received = Received()
    feed.received.connect(received)
    try:
        first = received.wait(lambda e: (e.kind, e.label) == ("object", "person"), 90)
        assert first.server_id == sid and first.camera_id == "vt"

        now = time.time_ns() // 1000
        everything = feed.query(EventFilter(window_us=HOUR_US), now).result(CALL_S)
        assert everything.failures == []
        assert first.key in {e.key for e in everything.items}
        assert all(e.server_id == sid and e.camera_id == "vt" for e in everything.items)
        people = feed.query(
            EventFilter(camera=(sid, "vt"), window_us=HOUR_US, labels=("person",)), now
        ).result(CALL_S)
        assert people.items and {e.label for e in people.items} == {"person"}
        assert (
            feed.query(EventFilter(window_us=HOUR_US, labels=("giraffe",)), now)
            .result(CALL_S)
            .items
            == []
        )
        # what the live filter lets through is what the query answers
        f = EventFilter(window_us=HOUR_US, kinds=("object",), labels=("person",))
        assert f.matches(first, now)
        assert not EventFilter(window_us=HOUR_US, labels=("car",)).matches(first, now)

        def with_snapshot() -> EventItem | None:
            rows = feed.query(EventFilter(window_us=HOUR_US), time.time_ns() // 1000)
            return next((e for e in rows.result(CALL_S).items if e.snapshot), None)

        item = wait_until(with_snapshot, 60, "an event with a snapshot", poll=1)
        jpeg = feed.snapshot(item).result(CALL_S)
        assert jpeg[:2] == b"\xff\xd8"
    finally:
        feed.close()


def test_motion_search_finds_the_walkers(recorder: Recorder) -> None:
    model = MotionSearch(recorder.session)

    def found() -> list[tuple[int, int]] | None:
        now = time.time_ns() // 1000
        ranges = model.search("vt", WALKWAY, now - HOUR_US, now).result(CALL_S)
        return ranges or None

    ranges = wait_until(found, 60, "motion in the walkway", poll=1)
    assert ranges == sorted(ranges, reverse=True)
    assert all(a < b for a, b in ranges)
