"""Events panel and area motion search against a real recorder running analytics on real footage.

One ``vigia-server`` for the module serves OpenCV's ``vtest`` clip (people walking across a
plaza, transcoded to H.264, 20 s looped) as a ``file://`` camera with analytics at 5 fps; the
workstation side is the real ``app.workstation.Workstation``. The panel must list the object
events, filter them by label, take new ones live from NATS, show a snapshot thumbnail and ask
for playback at the event's time; motion search must find the walkers in a rectangle drawn
over the walkway and nothing in one drawn over the pavement at the bottom, where nobody walks
in these 20 s.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from keyring.backends import fail
from PySide6.QtCore import QPoint, Qt

from app.settings import SecretStore, Settings
from app.workstation import Workstation
from server.sim.clips import transcode_to_h264
from server.sim.footage import VTEST
from tests.conftest import EVERY_FRAME, START_S, ServerProcess, camera_toml, wait_until
from ui.events_panel import EventFilter, EventItem, EventsPanel, now_us
from ui.motion_search import MotionSearchPanel, normalise_region
from ui.videotile import VideoTile

ADMIN_PASSWORD = "admin-password-1"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
HOUR_US = 3_600_000_000
# normalised rectangles of vtest's picture: the walkway people cross, the empty pavement below
WALKWAY = (0.25, 0.2, 0.95, 0.6)
PAVEMENT = (0.05, 0.8, 0.6, 0.98)


@dataclass
class Recorder:
    server: ServerProcess
    ws: Workstation
    sid: str


@pytest.fixture(scope="module")
def recorder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorder]:
    tmp = tmp_path_factory.mktemp("ui-events")
    clip = transcode_to_h264(VTEST, tmp / "vtest.mp4", max_seconds=20)
    toml = camera_toml([("vt", f"file://{clip}", None)], analytics=f"fps = 5\n{EVERY_FRAME}")
    (tmp / "vigia.toml").write_text(toml)
    server = ServerProcess(tmp / "data", tmp / "vigia.toml", tmp / "server.log")
    server.start(env={"VIGIA_ADMIN_PASSWORD": ADMIN_PASSWORD})
    base_url = server.base_url
    ws = Workstation(Settings(tmp / "config", SecretStore(fail.Keyring())), start_discovery=False)

    def connected():
        try:
            return ws.connect(base_url, "admin", ADMIN_PASSWORD, timeout=5)
        except Exception:
            return None

    try:
        session = wait_until(
            connected, START_S, f"a logged-in workstation\n{server.log()}", poll=0.3
        )
        yield Recorder(server, ws, session.server_id)
    finally:
        try:
            ws.close()
        finally:
            if server.proc is not None and server.proc.poll() is None:
                server.stop()


def test_event_items_and_filters_are_checked() -> None:
    with pytest.raises(ValueError):
        EventItem.from_json("s", {"id": "x", "camera_id": "vt", "kind": "object"})
    with pytest.raises(ValueError):
        EventItem.from_json("s", [1, 2])
    item = EventItem.from_json(
        "s",
        {
            "id": 3,
            "camera_id": "vt",
            "kind": "object",
            "start_us": 10,
            "end_us": None,  # the wire always says whether it has ended
            "label": "person",
            "score": 0.8,
            "snapshot": True,
            "box": [0.1, 0.2, 0.3, 0.4],
        },
    )
    assert item.key == ("s", 3) and item.box == [0.1, 0.2, 0.3, 0.4]
    f = EventFilter(window_us=None, start_us=0, end_us=100, labels=("person",), min_score=0.5)
    assert f.matches(item, now_us())
    assert not EventFilter(window_us=None, start_us=0, end_us=100, labels=("car",)).matches(
        item, now_us()
    )
    assert not EventFilter(camera=("other", "vt"), window_us=None, end_us=100).matches(item, 0)
    assert not EventFilter(window_us=None, start_us=0, end_us=100, min_score=0.9).matches(item, 0)
    params = f.params(0)
    assert params["label"] == "person" and params["min_score"] == "0.500"
    assert normalise_region((0.9, 1.4), (0.2, -0.1)) == (0.2, 0.0, 0.9, 1.0)
    assert normalise_region((0.5, 0.5), (0.502, 0.9)) is None  # a click is not a region


def test_events_panel_lists_filters_goes_live_and_plays(qtbot, recorder: Recorder) -> None:
    panel = EventsPanel(recorder.ws, None)
    qtbot.addWidget(panel)
    panel.resize(760, 720)
    panel.show()
    # an object event arrives on the events subject (people keep walking into the picture)
    with qtbot.waitSignal(
        panel.event_received,
        timeout=90_000,
        check_params_cb=lambda e: (e.kind, e.label) == ("object", "person"),
    ) as live:
        pass
    first: EventItem = live.args[0]
    assert first.camera_id == "vt" and first.server_id == recorder.sid
    assert any(e.key == first.key for e in panel.model.items)

    def query(f: EventFilter) -> list[EventItem]:
        with qtbot.waitSignal(panel.loaded, timeout=20_000):
            panel.set_filter(f)
        return panel.model.items

    everything = query(EventFilter(window_us=HOUR_US))
    assert first.key in {e.key for e in everything}
    objects = [e for e in everything if e.kind == "object"]
    assert objects and all(e.camera_id == "vt" for e in everything)
    assert [e.start_us for e in everything] == sorted(
        (e.start_us for e in everything), reverse=True
    )
    people = query(EventFilter(window_us=HOUR_US, labels=("person",)))
    assert first.key in {e.key for e in people} and {e.label for e in people} == {"person"}
    assert query(EventFilter(window_us=HOUR_US, labels=("giraffe",))) == []
    high = query(EventFilter(window_us=HOUR_US, kinds=("object",), min_score=0.6))
    assert all(e.kind == "object" and e.score >= 0.6 for e in high)
    # (live data: scores and counts move between two queries, so compare with no other one)
    assert query(EventFilter(window_us=HOUR_US, kinds=("object",), min_score=1.0)) == []

    # object search: label + camera + time range
    with qtbot.waitSignal(panel.loaded, timeout=20_000):
        panel.object_search("person", now_us() - HOUR_US, now_us() + 60_000_000,
                            (recorder.sid, "vt"))  # fmt: skip
    found = panel.model.items
    assert found and all(e.kind == "object" and e.label == "person" for e in found)
    assert panel.current_filter().camera == (recorder.sid, "vt")

    # a live event the query did not have lands in the list (the filter lets people through)
    known = {e.key for e in found}
    wait_until_new = [None]

    def new_event(item: EventItem) -> bool:
        if item.key in known:
            return False
        wait_until_new[0] = item
        return True

    with qtbot.waitSignal(panel.event_received, timeout=90_000, check_params_cb=new_event):
        pass
    new = wait_until_new[0]
    assert new is not None and new.label == "person"
    assert new.key in {e.key for e in panel.model.items}

    # thumbnails: asked for when rows are drawn, decoded off the UI thread
    with_snapshot = [e for e in panel.model.items if e.snapshot]

    def some_thumbnail() -> bool:
        panel.view.viewport().grab()  # draws the visible rows: they ask for their snapshots
        return any(panel.model.has_thumbnail(e.key) for e in panel.model.items)

    qtbot.waitUntil(lambda: any(e.snapshot for e in panel.model.items), timeout=60_000)
    qtbot.waitUntil(some_thumbnail, timeout=30_000)
    with_snapshot = [e for e in panel.model.items if panel.model.has_thumbnail(e.key)]
    assert with_snapshot
    ARTIFACTS.mkdir(exist_ok=True)
    panel.grab().save(str(ARTIFACTS / "events_panel.png"))

    # double-click and Enter ask playback for the event's camera and time
    row = 0
    item = panel.model.item(row)
    rect = panel.view.visualRect(panel.model.index(row, 1))
    with qtbot.waitSignal(panel.play_requested, timeout=5_000) as played:
        _double_click(qtbot, panel.view.viewport(), rect.center())
    assert played.args == [recorder.sid, "vt", item.start_us]
    last = panel.model.rowCount() - 1
    panel.view.setCurrentIndex(panel.model.index(last, 0))
    panel.view.setFocus()
    with qtbot.waitSignal(panel.play_requested, timeout=5_000) as played:
        qtbot.keyClick(panel.view, Qt.Key.Key_Return)
    assert played.args == [recorder.sid, "vt", panel.model.item(last).start_us]
    panel.close_panel()


def _double_click(qtbot, widget, pos: QPoint) -> None:
    """What a mouse sends: a click, then the second press as a double-click (QTest's
    mouseDClick alone sends no first press, and item views ignore a double-click without one)."""
    qtbot.mouseClick(widget, Qt.MouseButton.LeftButton, pos=pos)
    qtbot.mouseDClick(widget, Qt.MouseButton.LeftButton, pos=pos)


def _drag(qtbot, widget, a: tuple[float, float], b: tuple[float, float]) -> None:
    """A mouse drag over ``widget`` between two points given as fractions of its size."""
    w, h = widget.width(), widget.height()
    start = QPoint(round(a[0] * w), round(a[1] * h))
    end = QPoint(round(b[0] * w), round(b[1] * h))
    qtbot.mousePress(widget, Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(widget, QPoint((start.x() + end.x()) // 2, (start.y() + end.y()) // 2))
    qtbot.mouseMove(widget, end)
    qtbot.mouseRelease(widget, Qt.MouseButton.LeftButton, pos=end)


def test_motion_search_from_a_drawn_rectangle(qtbot, recorder: Recorder) -> None:
    panel = MotionSearchPanel(recorder.ws)
    tile = VideoTile(renderer="raster")  # no frame: the picture fills the tile
    qtbot.addWidget(panel)
    qtbot.addWidget(tile)
    tile.resize(640, 480)
    tile.show()
    panel.show()

    def search(region: tuple[float, float, float, float]) -> int:
        tool = panel.arm(tile, recorder.sid, "vt")
        with qtbot.waitSignal(panel.searched, timeout=20_000) as done:
            _drag(qtbot, tool, region[:2], region[2:])
        assert panel.region == pytest.approx(region, abs=0.01)
        return done.args[0]

    # motion is stored as the analytics run: wait until the walkway shows some. Every answer,
    # empty or not, is what the panel lists
    found = search(WALKWAY)
    assert found == len(panel.ranges) == panel.results.count()
    qtbot.waitUntil(lambda: search(WALKWAY) > 0, timeout=60_000)
    assert all(a < b for a, b in panel.ranges)
    moving = list(panel.ranges)
    ARTIFACTS.mkdir(exist_ok=True)
    panel.grab().save(str(ARTIFACTS / "motion_search.png"))
    item = panel.results.item(0)
    rect = panel.results.visualItemRect(item)
    with qtbot.waitSignal(panel.play_requested, timeout=5_000) as played:
        _double_click(qtbot, panel.results.viewport(), rect.center())
    assert played.args == [recorder.sid, "vt", moving[0][0]]

    # nobody walks on the pavement at the bottom: no ranges over the same time
    assert search(PAVEMENT) == 0 and panel.results.count() == 0
    # Esc puts the tool away
    tool = panel.arm(tile, recorder.sid, "vt")
    qtbot.keyClick(tool, Qt.Key.Key_Escape)
    assert panel.tool is None and not tool.isVisible()


def test_a_camera_event_row_names_what_raised_it(qtbot) -> None:
    """A camera's own event (ONVIF: kind 'camera') reads as its label and kind, and the zone
    column names what raised it on the device (docs/design/cameras.md)."""
    from ui.events_panel import EventsModel

    item = EventItem.from_json(
        "s",
        {"id": 7, "camera_id": "door", "kind": "camera", "start_us": 10, "end_us": 20,
         "label": "input", "score": 1.0, "topic": "tns1:Device/Trigger/DigitalInput",
         "source": "InputToken=DI_0"},
    )  # fmt: skip
    model = EventsModel(lambda _item: None, lambda _sid, cam: cam)
    model.set_items([item])
    row = [model.data(model.index(0, col)) for col in range(model.columnCount())]
    assert row[1:] == ["door", "input · camera", "1.00", "InputToken=DI_0"]
    assert EventFilter(window_us=None, start_us=0, end_us=100, kinds=("camera",)).matches(item, 0)
    assert not EventFilter(window_us=None, start_us=0, end_us=100, kinds=("motion",)).matches(
        item, 0
    )
