"""Screenshots under a real X server (Xvfb + Mesa OpenGL) of the workstation against a recorder.

The recorder serves four ``file://`` cameras: OpenCV's ``vtest`` clip (people walking; analytics
on for this camera only) and three synthetic scenes. A child process on our own Xvfb display
(Qt picks its platform once per process and the other UI tests run offscreen, where a
QOpenGLWidget never paints) logs in with the real ``Workstation``, fills a 4×4 GL wall through
``ui.sources.LiveSources``, waits for live frames in all 16 tiles and for a detection box
matched to a vtest frame, and draws vtest's timeline with its recorded range and events. The
PNGs go to tests/artifacts/ for a person to look at; the child reports what it read back.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
ADMIN_PASSWORD = "admin-password-1"
CAMERAS = ("vt", "cam0", "cam1", "cam2")


@pytest.mark.timeout(600)  # its waits end on events; generous for a loaded machine
def test_wall_and_timeline_screenshots(
    xvfb_display: str, server_process, camera_clips, tmp_path: Path, monkeypatch
) -> None:
    from server.sim.clips import transcode_to_h264
    from server.sim.footage import VTEST
    from tests.conftest import EVERY_FRAME, camera_toml

    clip = transcode_to_h264(VTEST, tmp_path / "vtest.mp4", max_seconds=20)
    # vtest has no sub stream: its small tiles must show the main stream
    cams = [("vt", f"file://{clip}", None)] + [
        (f"cam{i}", f"file://{main}", f"file://{sub}")
        for i, (main, sub) in enumerate(camera_clips[:3])
    ]
    # analytics only where someone walks: the camera's own setting turns it on (child)
    toml = camera_toml(cams, analytics=f"enabled = false\nfps = 5\n{EVERY_FRAME}")
    monkeypatch.setenv("VIGIA_ADMIN_PASSWORD", ADMIN_PASSWORD)
    server = server_process(toml)
    server.start()
    env = {k: v for k, v in os.environ.items() if k != "VIGIA_RENDERER"}
    env.update(DISPLAY=xvfb_display, QT_QPA_PLATFORM="xcb", PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, __file__, server.base_url, str(ARTIFACTS)],
        env=env,
        capture_output=True,
        text=True,
        timeout=480,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-4000:] + "\n" + server.log()[-2000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["renderer"] == "gl", report
    assert len(report["tiles"]) == 16
    for tile in report["tiles"]:
        assert tile["frames"] > 0, tile  # live video in every tile
        assert tile["spread"] > 8, tile  # a picture, not a flat fill
        assert tile["clock_text_pixels"] > 20, tile  # the overlay's clock is legible
    boxed = [t for t in report["tiles"] if t["boxes"]]
    assert boxed and all(t["camera"].endswith("/vt") for t in boxed), report["tiles"]
    assert report["box_pixels"] > 50, report  # the box is on screen in its label's colour
    assert report["timeline_events"] > 0 and report["timeline_ranges"] > 0, report
    assert report["timeline_event_pixels"] > 0, report["timeline_event_pixels_by_label"]
    for png in (report["wall_png"], report["timeline_png"], *report["dialog_pngs"]):
        assert Path(png).stat().st_size > 0
    assert len(report["dialog_pngs"]) == 7  # six settings pages and the export dialog
    assert all(spread > 5 for spread in report["dialog_spreads"]), report["dialog_spreads"]


def _child(base_url: str, artifacts: Path) -> None:
    """Runs under Xvfb: the real workstation, a GL wall and a timeline; prints a JSON report."""
    import shiboken6
    from keyring.backends import fail
    from PySide6.QtGui import QImage
    from PySide6.QtWidgets import QApplication

    from app.settings import SecretStore, Settings
    from app.workstation import Workstation
    from ui.sources import LiveSources
    from ui.theme import apply_theme, label_color
    from ui.timeline import ListTimelineModel, TimelineEvent, TimelineWidget
    from ui.wall import VideoWall

    app = QApplication([])
    apply_theme(app)
    artifacts.mkdir(parents=True, exist_ok=True)
    config = Path(tempfile.mkdtemp(prefix="vigia-screens-"))
    ws = Workstation(Settings(config, SecretStore(fail.Keyring())), start_discovery=False)

    def pump_until(predicate, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while True:
            app.processEvents()
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                what = what() if callable(what) else what
                raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
            time.sleep(0.02)

    def connect():
        try:
            return ws.connect(base_url, "admin", ADMIN_PASSWORD, timeout=5)
        except Exception:
            return None

    session = pump_until(connect, 60, "a logged-in workstation")
    sid = session.server_id
    session.call_sync(lambda api: api.patch_json("/cameras/vt/analytics", {"enabled": True}))

    sources = LiveSources(ws)
    wall = VideoWall(provider=sources, renderer="gl", layout="4x4")
    sources.attach(wall)
    wall.resize(1280, 720)
    wall.show()
    for i in range(16):
        wall.assign(i, f"{sid}/{CAMERAS[i % 4]}")
    tiles = [wall.tile(i) for i in range(16)]
    pump_until(
        lambda: all(t.frames_received > 0 for t in tiles),
        60,
        lambda: f"frames in all 16 tiles: {[t.frames_received for t in tiles]}",
    )
    # boxes belong to the frame they were matched to and go with the next: grab the wall
    # again until the grabbed picture is one with a box (taken at that moment, not later)
    deadline = time.monotonic() + 150
    while True:
        left = deadline - time.monotonic()
        pump_until(lambda: any(t.boxes for t in tiles), max(left, 1),
                   "a detection box on a vtest tile")  # fmt: skip
        image = wall.screen().grabWindow(wall.winId())
        boxes_at = {i: list(t.boxes) for i, t in enumerate(tiles) if t.boxes}
        if boxes_at or time.monotonic() > deadline:
            break
    wall_png = artifacts / "wall_4x4_live.png"
    image.save(str(wall_png))
    rgb = _rgb(image)
    report: dict = {"renderer": tiles[0].renderer, "tiles": [], "wall_png": str(wall_png)}
    box_pixels = 0
    for i, tile in enumerate(tiles):
        g = tile.geometry()
        top_left = tile.mapTo(wall, tile.rect().topLeft())
        x, y = top_left.x(), top_left.y()
        region = rgb[y + g.height() // 4 : y + 3 * g.height() // 4, x + g.width() // 4 :
                     x + 3 * g.width() // 4]  # fmt: skip
        # the clock's plate at the bottom right: light text on a dark plate (drawn on top of
        # the GL picture; a broken overlay path leaves a blank plate)
        plate = rgb[
            y + g.height() - 22 : y + g.height() - 4, x + g.width() - 110 : x + g.width() - 4
        ]
        report["tiles"].append(
            {
                "camera": wall.cameras[i],
                "frames": tile.frames_received,
                "boxes": len(boxes_at.get(i, [])),
                "spread": float(region.std()),
                "clock_text_pixels": int((plate.min(axis=2) > 170).sum()),
            }
        )
        if boxes_at.get(i):
            color = label_color(boxes_at[i][0].label or "object")
            want = np.array([color.red(), color.green(), color.blue()])
            cell = rgb[y : y + g.height(), x : x + g.width()].astype(int)
            box_pixels += int((np.abs(cell - want).max(axis=2) <= 40).sum())
    report["box_pixels"] = box_pixels

    # vtest's timeline: the recorded range and its events, as the app's timeline model has them
    model = ws.timeline(sid, "vt")
    now = time.time_ns() // 1000
    start, end = now - 60_000_000, now + 5_000_000

    def view_with_events():
        view = model.set_window(start, end, 1200)
        return view if view.events and view.ranges else None

    view = pump_until(view_with_events, 60, "recorded ranges and events on the timeline")
    # zoom to what was recorded (a few seconds), so the events are wide enough to see
    now = time.time_ns() // 1000
    start, end = view.ranges[0][0] - 1_000_000, now + 1_000_000
    view = model.set_window(start, end, 1200)
    events = [
        TimelineEvent(int(e["start_us"]), int(e.get("end_us") or now), e.get("label") or e["kind"])
        for e in view.events
    ]
    timeline = TimelineWidget(
        model=ListTimelineModel(recorded=view.ranges, events=events, live_edge_us=now),
        now_us=lambda: now,
    )
    timeline.resize(1200, 72)
    timeline.set_view(start, end - start)
    timeline.set_cursor(events[0].start_us)
    timeline.show()
    app.processEvents()
    shot = timeline.grab()
    timeline_png = artifacts / "timeline_events.png"
    shot.save(str(timeline_png))
    trgb = _rgb(shot.toImage())

    def pixels_of(label: str) -> int:
        c = label_color(label)
        want = np.array([c.red(), c.green(), c.blue()])
        return int((np.abs(trgb.astype(int) - want).max(axis=2) <= 30).sum())

    report.update(
        timeline_png=str(timeline_png),
        timeline_events=len(events),
        timeline_ranges=len(view.ranges),
        # per label too: a failure says which colours were drawn
        # the most frequent label: a rare one's few short events may all lie under others
        timeline_event_pixels=pixels_of(
            collections.Counter(e.label for e in events).most_common(1)[0][0]
        ),
        timeline_event_pixels_by_label={e.label: pixels_of(e.label) for e in events},
    )
    # every settings page and the export dialog, on the same X server, with the recorder's data
    from ui.dialogs import open_export_dialog, open_settings
    from ui.dialogs.settings import PAGES

    settings = open_settings(None, ws, "recorders")
    settings.resize(1000, 640)
    dialog_pngs = []
    for page in PAGES:
        shown = settings.show_page(page)
        pump_until(lambda shown=shown: shown.tasks.pending == 0, 30, f"the {page} page")
        app.processEvents()
        png = artifacts / f"xvfb-dialog-{page}.png"
        settings.screen().grabWindow(settings.winId()).save(str(png))
        dialog_pngs.append(str(png))
    export = open_export_dialog(None, ws, wall)
    app.processEvents()
    png = artifacts / "xvfb-dialog-export.png"
    export.screen().grabWindow(export.winId()).save(str(png))
    dialog_pngs.append(str(png))
    report["dialog_spreads"] = [float(_rgb(QImage(p)).std()) for p in dialog_pngs]
    report["dialog_pngs"] = dialog_pngs
    settings.close()
    export.close()

    wall.clear()  # frees GL textures while their contexts can still be made current
    sources.close()
    shiboken6.delete(wall)
    shiboken6.delete(timeline)
    ws.close()
    print(json.dumps(report))


def _rgb(image) -> np.ndarray:
    """A QImage (or QPixmap's image) as an (h, w, 3) uint8 array."""
    from PySide6.QtGui import QImage

    if not isinstance(image, QImage):
        image = image.toImage()
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    w, h, stride = image.width(), image.height(), image.bytesPerLine()
    buf = np.frombuffer(image.constBits(), np.uint8, count=stride * h).reshape(h, stride)
    return buf[:, : w * 3].reshape(h, w, 3).copy()


if __name__ == "__main__":
    _child(sys.argv[1], Path(sys.argv[2]))
