"""Workstation widgets offscreen: the wall (layouts, drops, swap, maximise, JSON), the timeline
(zoom, pan, click, hover, labels), the raster tile (colours, overlays, zoom) and the theme."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
from PySide6.QtCore import QByteArray, QMimeData, QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QDragEnterEvent, QDropEvent, QWheelEvent
from PySide6.QtWidgets import QApplication

from app.frames import VideoFrame
from app.live.slot import FrameSlot
from ui import theme
from ui.timeline import (
    DAY_US,
    MAX_SPAN_US,
    MIN_SPAN_US,
    Bookmark,
    ListTimelineModel,
    TimelineEvent,
    TimelineWidget,
    tick_label,
    tick_step,
)
from ui.videotile import OverlayBox, VideoTile, yuv_matrix
from ui.wall import CAMERA_MIME, TILE_MIME, CellSpec, VideoWall, WallLayout, camera_mime

T0_US = 1_700_000_000_000_000
# A saturated orange in limited-range YUV (BT.601: R≈254, G≈0... see expected_rgb)
YUV = (81, 90, 240)


def solid_frame(w: int, h: int, fmt: str, yuv=YUV, seq: int = 1) -> VideoFrame:
    y, u, v = yuv
    luma = np.full((h, w), y, np.uint8)
    if fmt == "nv12":
        uv = np.empty((h // 2, w), np.uint8)
        uv[:, 0::2], uv[:, 1::2] = u, v
        planes = (luma, uv)
    else:
        planes = (
            luma,
            np.full((h // 2, w // 2), u, np.uint8),
            np.full((h // 2, w // 2), v, np.uint8),
        )
    return VideoFrame(w, h, fmt, planes, T0_US, key=True, seq=seq)


def expected_rgb(yuv, standard: str) -> np.ndarray:
    m, off = yuv_matrix(standard)
    return np.clip(m @ (np.array(yuv) / 255.0 - off), 0, 1) * 255


def rgb_at(image, x: int, y: int) -> np.ndarray:
    c = image.pixelColor(x, y)
    return np.array([c.red(), c.green(), c.blue()], float)


class SlotProvider:
    """Hands out the engine's real latest-wins slots, one per camera; records the traffic."""

    def __init__(self) -> None:
        self.slots: dict[str, FrameSlot] = {}
        self.acquired: list[str] = []
        self.released: list[str] = []

    def acquire(self, camera: str) -> FrameSlot:
        self.acquired.append(camera)
        return self.slots.setdefault(camera, FrameSlot(camera))

    def release(self, camera: str, source: FrameSlot) -> None:
        assert self.slots[camera] is source
        self.released.append(camera)


@pytest.fixture
def wall(qtbot):
    provider = SlotProvider()
    w = VideoWall(provider=provider, renderer="raster", layout="2x2")
    qtbot.addWidget(w)
    w.resize(800, 450)
    w.show()
    qtbot.waitExposed(w)
    return w


def drop(cell, mime: QMimeData) -> bool:
    pos = cell.rect().center()
    actions = Qt.DropAction.CopyAction | Qt.DropAction.MoveAction
    enter = QDragEnterEvent(
        pos, actions, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    QApplication.sendEvent(cell, enter)
    if not enter.isAccepted():
        return False
    event = QDropEvent(
        QPointF(pos), actions, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    QApplication.sendEvent(cell, event)
    return event.isAccepted()


# --- wall ---------------------------------------------------------------------------------


def test_presets_spans_and_json_round_trip(wall, qtbot) -> None:
    for name, n in (("1", 1), ("3x3", 9), ("4x4", 16), ("5x5", 25), ("8x8", 64), ("2x2", 4)):
        wall.set_layout(name)
        assert len(wall.cells) == n
    wall.set_layout(WallLayout.custom(3, 3, [CellSpec(0, 0, 2, 2)]))
    assert len(wall.cells) == 6  # one 2x2 plus five 1x1
    qtbot.waitUntil(lambda: wall.cells[0].width() > 1.8 * wall.cells[1].width())
    wall.assign(0, "srv-a/cam1")
    wall.assign(4, "srv-b/cam7")
    data = json.loads(json.dumps(wall.to_dict()))
    assert data["cells"][0] == {
        "row": 0,
        "col": 0,
        "rowspan": 2,
        "colspan": 2,
        "camera": "srv-a/cam1",
    }

    other = VideoWall(renderer="raster", layout="1")
    qtbot.addWidget(other)
    other.from_dict(data)
    assert other.to_dict() == data
    assert other.cameras == [None if i not in (0, 4) else c for i, c in enumerate(wall.cameras)]

    before = other.to_dict()
    bad = [
        {**data, "cells": [*data["cells"], {"row": 1, "col": 1, "camera": None}]},  # overlap
        {**data, "rows": 2},  # cells outside the grid
        {**data, "cells": data["cells"][1:]},  # a hole
        {**data, "cells": [{**data["cells"][0], "camera": "no-slash"}, *data["cells"][1:]]},
        {"rows": 2},
        [],
    ]
    for doc in bad:
        with pytest.raises(ValueError):
            other.from_dict(doc)
        assert other.to_dict() == before


def test_layout_change_keeps_cameras_in_order_and_releases_the_rest(wall) -> None:
    provider = wall.provider
    wall.set_layout("3x3")
    for i in range(9):
        wall.assign(i, f"s/c{i}")
    wall.set_layout("2x2")
    assert wall.cameras == ["s/c0", "s/c1", "s/c2", "s/c3"]
    assert sorted(provider.released) == [f"s/c{i}" for i in range(4, 9)]
    wall.clear()
    assert sorted(provider.released) == sorted(f"s/c{i}" for i in range(9))


def test_drop_camera_onto_tile_shows_its_frames(wall, qtbot) -> None:
    cell = wall.cells[2]
    assert drop(cell, camera_mime("srv-1/cam-9"))
    assert wall.cameras[2] == "srv-1/cam-9"
    assert wall.provider.acquired == ["srv-1/cam-9"]
    tile = wall.tile(2)
    assert tile.camera_name == "srv-1/cam-9"
    wall.provider.slots["srv-1/cam-9"].put(solid_frame(320, 180, "yuv420p"))
    qtbot.waitUntil(lambda: tile.frames_received == 1 and tile.paints > 0, timeout=3000)
    assert tile.state == "live"

    bad = QMimeData()
    bad.setData(CAMERA_MIME, QByteArray(b"no-slash"))
    assert not drop(wall.cells[1], bad)
    assert wall.cameras[1] is None
    assert not drop(wall.cells[1], QMimeData())  # nothing we know: refused at enter


def test_swap_by_dragging_one_tile_onto_another(wall) -> None:
    wall.assign(0, "s/a")
    wall.assign(3, "s/b")
    slot_a = wall.cells[0].source
    mime = camera_mime("s/a")
    mime.setData(TILE_MIME, QByteArray(f"{wall.token}:0".encode()))
    assert drop(wall.cells[3], mime)
    assert wall.cameras == ["s/b", None, None, "s/a"]
    assert wall.cells[3].source is slot_a
    assert wall.provider.released == []  # sources moved, nothing restarted
    assert wall.provider.acquired == ["s/a", "s/b"]

    foreign = camera_mime("s/c")
    foreign.setData(TILE_MIME, QByteArray(b"another-wall:3"))
    assert drop(wall.cells[1], foreign)  # another wall's tile: taken as a camera
    assert wall.cameras[1] == "s/c"


def test_double_click_maximises_and_back(wall, qtbot) -> None:
    wall.set_layout("3x3")
    qtbot.mouseDClick(wall.tile(4), Qt.MouseButton.LeftButton)
    assert wall.maximised == 4
    qtbot.waitUntil(lambda: wall.cells[4].geometry() == wall.rect())
    assert not any(c.isVisible() for i, c in enumerate(wall.cells) if i != 4)
    qtbot.mouseDClick(wall.tile(4), Qt.MouseButton.LeftButton)
    assert wall.maximised is None
    assert all(c.isVisible() for c in wall.cells)
    qtbot.waitUntil(lambda: wall.cells[4].width() < wall.width() / 2)
    wall.maximise(1)
    qtbot.keyClick(wall, Qt.Key.Key_Escape)
    assert wall.maximised is None


# --- tile ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["yuv420p", "nv12"])
def test_raster_tile_paints_the_right_colour(qtbot, fmt) -> None:
    tile = VideoTile(renderer="raster")
    qtbot.addWidget(tile)
    tile.resize(320, 180)
    tile.show()
    tile.show_clock = False
    tile.set_frame(solid_frame(640, 360, fmt))
    image = tile.grab().toImage()
    # OpenCV converts with BT.601 limited range whatever the frame size (its only matrix)
    got, want = rgb_at(image, 160, 90), expected_rgb(YUV, "bt601")
    assert np.abs(got - want).max() <= 3, (got, want)
    assert tile.renderer == "raster"


def test_overlay_box_lands_where_its_coordinates_say(qtbot) -> None:
    tile = VideoTile(renderer="raster")
    qtbot.addWidget(tile)
    tile.resize(400, 300)  # 16:9 picture letterboxed: 400x225 at y=37.5
    tile.show()
    grey = (126, 128, 128)
    tile.set_frame(solid_frame(640, 360, "yuv420p", yuv=grey))
    tile.set_boxes([OverlayBox(0.25, 0.5, 0.75, 0.9, "car", 0.8, 7)])
    image = tile.grab().toImage()
    box_color = theme.label_color("car")
    want_edge = np.array([box_color.red(), box_color.green(), box_color.blue()], float)
    # left edge of the box: x = 0.25*400 = 100; a point in its height: y = 37.5 + 0.7*225
    y_mid = round(37.5 + 0.7 * 225)
    assert np.abs(rgb_at(image, 100, y_mid) - want_edge).max() <= 40
    inside, outside = rgb_at(image, 200, y_mid), rgb_at(image, 60, y_mid)
    assert np.abs(inside - outside).max() <= 3  # the box is an outline, not a fill
    assert np.abs(rgb_at(image, 200, 10) - 0).max() <= 3  # letterbox stays black
    # the same box follows the picture when zoomed 2x about the picture's centre
    tile.zoom_at(2.0, QPointF(200, 37.5 + 112.5))
    assert tile.viewport.zoom == pytest.approx(2.0)
    image = tile.grab().toImage()
    x_left = round(200 + (0.25 - 0.5) * 2 * 400)  # = 0: off picture; the right edge shows
    x_right = round(200 + (0.75 - 0.5) * 2 * 400) - 1
    assert x_left == 0
    y_in = round(37.5 + (0.6 - 0.25) * 2 * 225)
    assert np.abs(rgb_at(image, x_right, y_in) - want_edge).max() <= 40


def test_wheel_zooms_about_the_cursor_and_key_resets(qtbot) -> None:
    tile = VideoTile(renderer="raster")
    qtbot.addWidget(tile)
    tile.resize(320, 180)
    tile.show()
    tile.set_frame(solid_frame(320, 180, "yuv420p"))
    pos = QPointF(80, 45)
    before = tile.widget_to_image(pos)
    for _ in range(3):
        wheel = QWheelEvent(
            pos,
            tile.mapToGlobal(pos),
            QPoint(),
            QPoint(0, 120),
            Qt.MouseButton.NoButton,
            Qt.KeyboardModifier.NoModifier,
            Qt.ScrollPhase.NoScrollPhase,
            False,
        )
        QApplication.sendEvent(tile, wheel)
    assert tile.viewport.zoom == pytest.approx(1.25**3)
    assert tile.widget_to_image(pos) == pytest.approx(before)
    # drag pans while zoomed: the image point under the mouse follows it
    qtbot.mousePress(tile, Qt.MouseButton.LeftButton, pos=QPoint(80, 45))
    qtbot.mouseMove(tile, QPoint(100, 55))
    qtbot.mouseRelease(tile, Qt.MouseButton.LeftButton, pos=QPoint(100, 55))
    assert tile.widget_to_image(QPointF(100, 55)) == pytest.approx(before, abs=1e-6)
    tile.setFocus()
    qtbot.keyClick(tile, Qt.Key.Key_0)
    assert tile.viewport.zoom == 1.0


def test_tile_follows_a_slot_and_shows_states(qtbot) -> None:
    slot = FrameSlot("cam")
    tile = VideoTile(renderer="raster")
    qtbot.addWidget(tile)
    tile.resize(160, 90)
    tile.show()
    tile.set_source(slot)
    assert tile.frame is None and tile.state == "no_signal"
    slot.put(solid_frame(64, 36, "nv12", seq=1))
    qtbot.waitUntil(lambda: tile.frame is not None and tile.frame.seq == 1, timeout=3000)
    received = tile.frames_received
    assert not tile.poll()  # nothing new: no repaint asked
    assert tile.frames_received == received
    slot.clear()
    qtbot.waitUntil(lambda: tile.frame is None, timeout=3000)
    with pytest.raises(ValueError):
        tile.set_state("sleeping")
    for state in ("reconnecting", "keyframes_only"):
        tile.set_state(state)
        tile.grab()


# --- timeline -----------------------------------------------------------------------------


@pytest.fixture
def timeline(qtbot):
    model = ListTimelineModel(
        recorded=[(T0_US, T0_US + 3600 * 10**6), (T0_US + 4000 * 10**6, T0_US + 7200 * 10**6)],
        events=[TimelineEvent(T0_US + 600 * 10**6, T0_US + 660 * 10**6, "person")],
        bookmarks=[Bookmark(T0_US + 1800 * 10**6, "door")],
        live_edge_us=T0_US + 7200 * 10**6,
    )
    w = TimelineWidget(model=model, now_us=lambda: T0_US + 7200 * 10**6)
    qtbot.addWidget(w)
    w.resize(1000, 64)
    w.show()
    qtbot.waitExposed(w)
    w.set_view(T0_US, 2 * 3600 * 10**6)
    return w


def wheel(widget, x: float, notches: int) -> None:
    pos = QPointF(x, 30)
    QApplication.sendEvent(
        widget,
        QWheelEvent(
            pos,
            widget.mapToGlobal(pos),
            QPoint(),
            QPoint(0, 120 * notches),
            Qt.MouseButton.NoButton,
            Qt.KeyboardModifier.NoModifier,
            Qt.ScrollPhase.NoScrollPhase,
            False,
        ),
    )


def test_timeline_wheel_zooms_about_the_mouse_within_limits(timeline) -> None:
    t_at = timeline.x_to_us(250)
    wheel(timeline, 250, 1)
    assert timeline.span_us == round(2 * 3600 * 10**6 * 0.8)
    assert abs(timeline.x_to_us(250) - t_at) <= timeline.us_per_px()
    for _ in range(60):
        wheel(timeline, 250, 1)
    assert timeline.span_us == MIN_SPAN_US
    for _ in range(120):
        wheel(timeline, 250, -1)
    assert timeline.span_us == MAX_SPAN_US


def test_timeline_click_seeks_drag_pans_hover_reports(timeline, qtbot) -> None:
    seeks, hovers = [], []
    timeline.seek_requested.connect(seeks.append)
    timeline.hover.connect(hovers.append)
    qtbot.mouseClick(timeline, Qt.MouseButton.LeftButton, pos=QPoint(250, 40))
    assert seeks == [T0_US + 1800 * 10**6]  # a quarter of two hours
    start, per_px = timeline.start_us, timeline.us_per_px()
    qtbot.mousePress(timeline, Qt.MouseButton.LeftButton, pos=QPoint(500, 40))
    qtbot.mouseMove(timeline, QPoint(400, 40))
    qtbot.mouseRelease(timeline, Qt.MouseButton.LeftButton, pos=QPoint(400, 40))
    assert len(seeks) == 1  # a drag does not seek
    assert timeline.start_us == start + round(100 * per_px)
    qtbot.mouseMove(timeline, QPoint(750, 30))
    assert hovers[-1] == timeline.x_to_us(750)


def test_timeline_labels_adapt_to_zoom(timeline) -> None:
    assert tick_step(MIN_SPAN_US, 1000) == 10 * 10**6
    assert tick_step(2 * 3600 * 10**6, 1000) == 900 * 10**6
    assert tick_step(MAX_SPAN_US, 1000) >= DAY_US
    assert tick_label(T0_US, 10 * 10**6).count(":") == 2  # seconds shown
    assert tick_label(T0_US + 120 * 10**6, 900 * 10**6).count(":") == 1
    assert ":" not in tick_label(T0_US, 2 * DAY_US)
    for span in (MIN_SPAN_US, 3600 * 10**6, DAY_US, MAX_SPAN_US):
        timeline.set_view(T0_US, span)
        timeline.grab()  # paints every layer at every scale without error


# --- theme, icons, translation --------------------------------------------------------------


def test_theme_icons_and_translation(qtbot, tmp_path: Path) -> None:
    app = QApplication.instance()
    theme.apply_theme(app)
    try:
        assert app.palette().color(app.palette().ColorRole.Window) == QColor(theme.DARK.window)
        for name in (
            "camera-online",
            "camera-offline",
            "camera-error",
            "recorder",
            "play",
            "pause",
            "step-forward",
            "step-back",
            "reverse",
            "live",
            "export",
        ):
            assert not theme.icon(name).pixmap(24, 24).isNull(), name
        with pytest.raises(KeyError):
            theme.icon("nope")
        # the committed .qm is what lrelease makes of the .ts
        ts = theme.RESOURCES / "translations" / "vigia_pt_BR.ts"
        lrelease = Path(sys.executable).parent / "pyside6-lrelease"  # PySide6-Essentials ships it
        subprocess.run(
            [str(lrelease), "-silent", str(ts), "-qm", str(tmp_path / "x.qm")], check=True
        )
        assert (tmp_path / "x.qm").read_bytes() == theme.translation_file("pt_BR").read_bytes()
        assert theme.install_language(app, "pt_BR")
        tile = VideoTile(renderer="raster")
        qtbot.addWidget(tile)
        from ui.videotile import _tr

        assert _tr("No signal") == "Sem sinal"
        assert not theme.install_language(app, "en")
        assert _tr("No signal") == "No signal"
        with pytest.raises(ValueError):
            theme.install_language(app, "xx")
    finally:
        app.setStyleSheet("")


def test_spanned_layouts_have_one_large_tile(qtbot) -> None:
    from ui.wall import SPANNED

    wall = VideoWall(renderer="raster", layout="2x2")
    qtbot.addWidget(wall)
    for name, (rows, cols, spans) in SPANNED.items():
        wall.set_layout(name)
        spec = wall.layout_spec
        big = [c for c in spec.cells if (c.rowspan, c.colspan) != (1, 1)]
        assert (spec.rows, spec.cols) == (rows, cols) and len(big) == 1, name
        r, c, rs, cs = spans[0]
        assert (big[0].row, big[0].col, big[0].rowspan, big[0].colspan) == (r, c, rs, cs)
        assert len(spec.cells) == rows * cols - rs * cs + 1  # every other cell is 1×1
        saved = wall.to_dict()
        wall.set_layout("2x2")
        wall.from_dict(saved)
        assert wall.layout_spec.cells == spec.cells  # the span survives a save and restore
