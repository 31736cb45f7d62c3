"""Playback on the wall from the playback bar, offscreen, against a real recorder.

The archive is recorded offline with the recorder's own segmenter (``serve_archive`` of
test_app_playback: part A, a gap, part B ending about now, and a second camera over the end of
part B) and served by a real vigia-server whose cameras also record and stream live. The
workstation side is the real ``Workstation``, a ``VideoWall`` fed by ``LiveSources`` and the
``PlaybackBar``. The clips carry a frame code, so each check reads the picture the tile shows.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from keyring.backends import fail
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QVBoxLayout, QWidget

from app.frames import VideoFrame
from app.playback import ManualTime
from app.settings import SecretStore, Settings
from app.workstation import Workstation
from server.sim.clips import read_frame_number
from tests.test_app_playback import CLIP_FRAMES, FRAME_US, GOP, PASSWORD, Recorder, serve_archive
from ui.playback import WallPlayback
from ui.playback_bar import PlaybackBar
from ui.sources import LiveSources
from ui.wall import VideoWall, WallLayout

S = 1_000_000
PART_US = 4 * 60 * S
GAP_US = 60 * S
WAIT_MS = 15_000
K0 = 2 * 60 * 25 + 7  # a frame of part A the keyboard test starts from
MARK_K = K0 + 300  # the frame of part A with a bookmark


@dataclass
class Env:
    rec: Recorder
    ws: Workstation
    sid: str
    mark_us: int

    def camera(self, name: str = "cam") -> str:
        return f"{self.sid}/{name}"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, clip_dir: Path) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("ui-playback")
    with serve_archive(tmp, clip_dir, PART_US, GAP_US, PART_US) as rec:
        ws = Workstation(
            Settings(tmp / "config", SecretStore(fail.Keyring())), start_discovery=False
        )
        try:
            session = ws.connect(rec.base, "admin", PASSWORD, timeout=10)
            # a bookmark in part A, before any timeline fetches that span
            mark = {"camera": "cam", "start_us": rec.a_start + MARK_K * FRAME_US + 5_000}
            mark["end_us"], mark["name"] = mark["start_us"] + S, "here"
            session.call_sync(lambda api: api.post_json("/bookmarks", mark))
            yield Env(rec, ws, session.server_id, mark["start_us"])
        finally:
            ws.close()


@dataclass
class Window:
    widget: QWidget
    wall: VideoWall
    bar: PlaybackBar
    sources: LiveSources

    @property
    def pb(self) -> WallPlayback:
        return self.bar.playback

    def tile(self, i: int = 0):
        return self.wall.tile(i)

    def key(self, qtbot, key: Qt.Key, modifier=Qt.KeyboardModifier.NoModifier) -> None:
        qtbot.keyClick(self.widget, key, modifier)


@pytest.fixture
def window(qtbot, env: Env, request: pytest.FixtureRequest) -> Iterator[Window]:
    """A wall with cam (and cam2 when the test is marked ``two_tiles``) over a playback bar;
    ``manual_time`` makes the playback clocks follow a ``ManualTime`` the test moves."""
    manual = getattr(request, "param", {}) or {}
    cameras = [env.camera("cam")] + ([env.camera("cam2")] if manual.get("two") else [])
    sources = LiveSources(env.ws, overlays=False)
    widget = QWidget()
    qtbot.addWidget(widget)
    wall = VideoWall(widget, provider=sources, renderer="raster", layout=WallLayout.grid(1, 1))
    sources.attach(wall)
    wall.set_layout(WallLayout.grid(1, len(cameras)), cameras)
    playback = None
    if manual.get("time") is not None:
        playback = WallPlayback(env.ws, wall, widget, now_us=manual["time"])
    bar = PlaybackBar(env.ws, wall, widget, playback=playback)
    layout = QVBoxLayout(widget)
    layout.addWidget(wall, 1)
    layout.addWidget(bar)
    widget.resize(960, 540)
    widget.show()
    qtbot.waitExposed(widget)
    widget.activateWindow()
    qtbot.waitUntil(widget.isActiveWindow, timeout=3000)
    w = Window(widget, wall, bar, sources)
    try:
        yield w
    finally:
        bar.shutdown()
        wall.clear()
        sources.close()


def code(frame: VideoFrame | None) -> int | None:
    return None if frame is None else read_frame_number(frame.luma)


def expected_code(t_us: int, origin_us: int) -> int:
    return (t_us - origin_us) // FRAME_US % CLIP_FRAMES


def wait_frame(qtbot, tile, pred, what: str, timeout: int = WAIT_MS) -> VideoFrame:
    """Wait (processing Qt events, so the frame pump runs) until the tile shows a frame
    satisfying ``pred``."""
    try:
        qtbot.waitUntil(lambda: tile.frame is not None and pred(tile.frame), timeout=timeout)
    except AssertionError:
        f = tile.frame
        shown = None if f is None else (f.pts_us, code(f))
        pytest.fail(f"tile never showed {what}; it shows {shown} in state {tile.state}")
    return tile.frame


def shows(t_us: int, origin_us: int):
    """A frame that is the one for ``t_us`` (stamp and picture)."""
    want = expected_code(t_us, origin_us)
    return lambda f: f.pts_us <= t_us < f.pts_us + FRAME_US and code(f) == want


def test_seek_from_the_timeline_shows_the_exact_frame(qtbot, env: Env, window: Window) -> None:
    rec, bar, tile = env.rec, window.bar, window.tile()
    wait_frame(qtbot, tile, lambda f: f.pts_us > time.time_ns() // 1000 - 10 * S, "live video")
    timeline = bar.timeline
    timeline.set_view(rec.a_start + 30 * S, 2 * 60 * S)
    lane = timeline.lanes()["recorded"].center().y()
    # the timeline shows what is recorded: part A covers the whole view
    qtbot.waitUntil(lambda: bool(bar.adapter.recorded(timeline.start_us, timeline.end_us)))
    ranges = bar.adapter.recorded(timeline.start_us, timeline.end_us)
    assert ranges[0][0] <= timeline.start_us + S and ranges[-1][1] >= timeline.end_us - S
    for x in (137, 611):
        t = timeline.x_to_us(x)
        qtbot.mouseClick(timeline, Qt.MouseButton.LeftButton, pos=QPoint(x, round(lane)))
        frame = wait_frame(qtbot, tile, shows(t, rec.a_start), f"the frame at x={x}")
        assert tile.state == "playback" and frame.pts_us <= t
        assert window.pb.paused, "a seek from live starts paused"
    # a click in the gap shows the first frame after it
    timeline.set_view(rec.b_start - GAP_US // 2 - 30 * S, 60 * S)
    qtbot.mouseClick(timeline, Qt.MouseButton.LeftButton, pos=QPoint(timeline.width() // 2, 40))
    wait_frame(qtbot, tile, lambda f: f.pts_us == rec.b_start and code(f) == 0, "after the gap")
    # hovering shows the key frame at or before the time under the mouse
    timeline.set_view(rec.a_start + 60 * S, 60 * S)
    x = 400
    t = timeline.x_to_us(x)
    qtbot.mouseMove(timeline, QPoint(x, 30))
    popup = bar.thumbnails.popup
    qtbot.waitUntil(lambda: popup.isVisible() and popup.frame is not None, timeout=WAIT_MS)
    thumb = popup.frame
    assert thumb.pts_us <= t < thumb.pts_us + GOP * FRAME_US
    assert (thumb.pts_us - rec.a_start) % (GOP * FRAME_US) == 0
    assert thumb.width <= 160
    assert bar.hover_label.text() != ""


def test_keyboard_steps_plays_reverses_and_goes_live(qtbot, env: Env, window: Window) -> None:
    rec, pb, tile = env.rec, window.pb, window.tile()
    k0 = K0
    t0 = rec.a_start + k0 * FRAME_US + 10_000
    assert pb.seek(t0).result(10) is not None
    wait_frame(qtbot, tile, shows(t0, rec.a_start), "the sought frame")
    # frame steps: Right, Right, Left
    for key, k in (
        (Qt.Key.Key_Right, k0 + 1),
        (Qt.Key.Key_Right, k0 + 2),
        (Qt.Key.Key_Left, k0 + 1),
    ):
        window.key(qtbot, key)
        t = rec.a_start + k * FRAME_US
        wait_frame(qtbot, tile, shows(t, rec.a_start), f"frame {k} after a step")
    # a detection at the next frame's time is drawn on it
    pb.overlays(0).load_rows(
        [{"ts_us": rec.a_start + (k0 + 2) * FRAME_US, "track_id": 7, "label": "person",
          "score": 0.9, "x1": 0.1, "y1": 0.2, "x2": 0.3, "y2": 0.6}]
    )  # fmt: skip
    window.key(qtbot, Qt.Key.Key_Right)
    qtbot.waitUntil(lambda: [b.label for b in tile.boxes] == ["person"], timeout=WAIT_MS)
    window.key(qtbot, Qt.Key.Key_Right)
    qtbot.waitUntil(lambda: not tile.boxes, timeout=WAIT_MS)

    def run_for(n: int) -> list[int]:
        seen: list[int] = []

        def enough() -> bool:
            f = tile.frame
            if f is not None and (not seen or seen[-1] != f.pts_us):
                seen.append(f.pts_us)
            return len(seen) >= n

        qtbot.waitUntil(enough, timeout=WAIT_MS)
        return seen

    # Space plays forwards, + doubles the speed, Space pauses
    window.key(qtbot, Qt.Key.Key_Space)
    assert not pb.paused and pb.clock().rate == 1.0
    forward = run_for(8)
    assert forward == sorted(forward) and forward[-1] > forward[0]
    window.key(qtbot, Qt.Key.Key_Plus)
    assert pb.speed == 2.0 and pb.clock().rate == 2.0
    assert window.bar.speed_combo.currentText() == "2×"
    window.key(qtbot, Qt.Key.Key_Minus)
    assert pb.clock().rate == 1.0
    window.key(qtbot, Qt.Key.Key_Space)
    assert pb.paused
    qtbot.waitUntil(lambda: pb.position_us() == tile.frame.pts_us, timeout=WAIT_MS)
    # R plays backwards
    window.key(qtbot, Qt.Key.Key_R)
    assert not pb.paused and pb.clock().rate == -1.0
    backward = run_for(8)
    assert backward == sorted(backward, reverse=True) and backward[-1] < backward[0]
    window.key(qtbot, Qt.Key.Key_Space)
    # Shift+Right jumps to the next bookmark
    mark = env.mark_us
    window.bar.timeline.set_view(mark - 30 * S, 2 * 60 * S)
    data = window.bar.timeline_data
    qtbot.waitUntil(lambda: mark in data.mark_times(), timeout=WAIT_MS)
    window.key(qtbot, Qt.Key.Key_Right, Qt.KeyboardModifier.ShiftModifier)
    wait_frame(qtbot, tile, shows(mark, rec.a_start), "the bookmarked frame")
    # L: back to live pictures
    window.key(qtbot, Qt.Key.Key_L)
    assert not pb.playing_back
    assert tile.source is window.wall.cells[0].source and tile.state == "live"
    wait_frame(qtbot, tile, lambda f: f.pts_us > time.time_ns() // 1000 - 10 * S, "live again")
    assert window.bar.position_label.text() == "Live"


def test_playing_into_the_live_edge_returns_the_wall_to_live(
    qtbot, env: Env, window: Window
) -> None:
    pb, tile = window.pb, window.tile()
    live_source = window.wall.cells[0].source

    def seek_recent() -> bool:  # a busy machine indexes the last seconds late: try again
        fut = pb.seek(time.time_ns() // 1000 - 8 * S)
        return fut is not None and fut.result(10) is not None

    qtbot.waitUntil(seek_recent, timeout=60_000)
    qtbot.waitUntil(lambda: tile.state == "playback", timeout=WAIT_MS)
    # 2x (via the combo): the clock gains on the recorder's indexed end one second a second
    combo = window.bar.speed_combo
    combo.activated.emit(combo.findData(2.0))
    assert pb.speed == 2.0
    window.key(qtbot, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: not pb.playing_back, timeout=20_000)
    assert tile.source is live_source and tile.state == "live"
    wait_frame(qtbot, tile, lambda f: f.pts_us > time.time_ns() // 1000 - 10 * S, "live video")


CLOCK = ManualTime(1_000 * S)


@pytest.mark.parametrize("window", [{"two": True, "time": CLOCK}], indirect=True)
def test_two_tiles_stay_in_sync_and_unsync(qtbot, env: Env, window: Window) -> None:
    rec, pb = env.rec, window.pb
    a, b = window.tile(0), window.tile(1)
    start = rec.cam2_start + 5 * S + 17_000
    pb.seek(start).result(10)
    fa = wait_frame(qtbot, a, shows(start, rec.b_start), "cam at the start")
    fb = wait_frame(qtbot, b, shows(start, rec.cam2_start), "cam2 at the start")
    assert abs(fa.pts_us - fb.pts_us) <= FRAME_US
    # play on the manual clock, one 30 Hz display tick at a time
    window.key(qtbot, Qt.Key.Key_Space)
    clock = pb.shared_clock
    ea, eb = pb.engine(0), pb.engine(1)
    worst = 0
    for _ in range(45):
        CLOCK.advance(33_333)
        clock.notify()
        st = clock.state()
        pa, pb_ = ea.wait_handled(st.version, 10), eb.wait_handled(st.version, 10)
        qtbot.waitUntil(lambda pa=pa, pb_=pb_: a.frame is pa.frame and b.frame is pb_.frame)
        for tile in (a, b):
            assert tile.frame.pts_us <= st.media_us < tile.frame.pts_us + FRAME_US
        worst = max(worst, abs(a.frame.pts_us - b.frame.pts_us))
    assert worst <= FRAME_US
    assert code(a.frame) == expected_code(a.frame.pts_us, rec.b_start)
    assert code(b.frame) == expected_code(b.frame.pts_us, rec.cam2_start)
    # a step moves both tiles to the same instant
    window.wall.set_current(0)
    window.key(qtbot, Qt.Key.Key_Right)
    assert pb.paused
    target = a.frame.pts_us + FRAME_US
    wait_frame(qtbot, a, lambda f: f.pts_us == target, "cam one frame on")
    wait_frame(qtbot, b, lambda f: f.pts_us <= target < f.pts_us + FRAME_US, "cam2 following")
    # S unsyncs: a step moves the current tile only
    before_b = b.frame.pts_us
    window.key(qtbot, Qt.Key.Key_S)
    assert not pb.sync and not window.bar.actions_by_name["sync"].isChecked()
    for _ in range(3):
        window.key(qtbot, Qt.Key.Key_Right)
    wait_frame(qtbot, a, lambda f: f.pts_us == target + 3 * FRAME_US, "cam three frames on")
    eb = pb.engine(1)
    shown = eb.wait_handled(eb.clock.state().version, 10)
    assert shown is not None and shown.frame.pts_us == before_b
    qtbot.waitUntil(lambda: b.frame is shown.frame)
    # S again: cam2 joins cam's instant
    window.key(qtbot, Qt.Key.Key_S)
    assert pb.sync
    t = a.frame.pts_us
    wait_frame(qtbot, b, lambda f: f.pts_us <= t < f.pts_us + FRAME_US, "cam2 synced again")
    window.key(qtbot, Qt.Key.Key_L)
    assert a.state == "live" and b.state == "live"


def test_controls_have_tooltips_with_their_shortcuts(qtbot, env: Env, window: Window) -> None:
    actions = window.bar.actions_by_name
    expect = {"play": "Space", "reverse": "R", "step_back": "Left", "step_forward": "Right",
              "previous_mark": "Shift+Left", "next_mark": "Shift+Right", "live": "L",
              "sync": "S", "faster": "+", "slower": "-"}  # fmt: skip
    for name, key in expect.items():
        tip = actions[name].toolTip()
        assert key in tip and len(tip) > len(key) + 3, (name, tip)
    assert actions["sync"].isChecked() and window.pb.sync
    assert window.bar.position_label.text() == "Live"
    with pytest.raises(ValueError):
        window.pb.set_speed(3.0)
