"""The GL tile under a real X server (Xvfb + Mesa): YUV→RGB in the shader gives the right colours.

Qt picks its platform once per process and the other UI tests run offscreen (where a
QOpenGLWidget never paints), so the GL rendering runs in a child process on our own Xvfb
display; it saves screenshots to tests/artifacts/ and reports the pixels it read back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"


def test_gl_tile_converts_yuv420p_and_nv12(xvfb_display) -> None:
    env = {k: v for k, v in os.environ.items() if k != "VIGIA_RENDERER"}
    env.update(DISPLAY=xvfb_display, QT_QPA_PLATFORM="xcb", PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, __file__, str(ARTIFACTS)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "not been destroyed" not in out.stderr  # GL textures freed with their context
    report = json.loads(out.stdout.strip().splitlines()[-1])
    if report["gl"] is None:
        pytest.skip(f"no OpenGL context on the Xvfb display: {out.stderr.strip()[-500:]}")
    assert report["renderer"] == "gl", report
    for case in report["cases"]:
        got, want = np.array(case["got"]), np.array(case["want"])
        assert np.abs(got - want).max() <= 3, case
        assert np.abs(np.array(case["edge"]) - np.array(case["box_color"])).max() <= 40, case
        assert max(case["letterbox"]) <= 3, case
        assert Path(case["png"]).stat().st_size > 0
    assert Path(report["wall_png"]).stat().st_size > 0


def _child(artifacts: Path) -> None:
    """Runs under Xvfb: render GL tiles, read the framebuffer back, print a JSON report."""
    import shiboken6
    from PySide6.QtWidgets import QApplication

    from app.frames import VideoFrame
    from ui.theme import apply_theme, label_color
    from ui.timeline import ListTimelineModel, TimelineEvent, TimelineWidget
    from ui.videotile import OverlayBox, VideoTile, gl_renderer_name, yuv_matrix
    from ui.wall import VideoWall

    app = QApplication([])
    apply_theme(app)
    artifacts.mkdir(parents=True, exist_ok=True)
    yuv = (81, 90, 240)
    t0 = 1_700_000_000_000_000

    def frame(w: int, h: int, fmt: str, seq: int = 1) -> VideoFrame:
        y, u, v = yuv
        luma = np.full((h, w), y, np.uint8)
        if fmt == "nv12":
            uv = np.empty((h // 2, w), np.uint8)
            uv[:, 0::2], uv[:, 1::2] = u, v
            return VideoFrame(w, h, fmt, (luma, uv), t0, seq=seq)
        chroma = (np.full((h // 2, w // 2), u, np.uint8), np.full((h // 2, w // 2), v, np.uint8))
        return VideoFrame(w, h, fmt, (luma, *chroma), t0, seq=seq)

    def rgb(image, x: int, y: int) -> list[int]:
        c = image.pixelColor(x, y)
        return [c.red(), c.green(), c.blue()]

    report: dict = {"gl": gl_renderer_name(), "cases": []}
    if report["gl"] is None:  # the parent skips: nothing here could be drawn with GL
        print(json.dumps(report))
        return
    # SD is BT.601, HD is BT.709 (what players assume when the stream does not say)
    for fmt, w, h, standard in (("yuv420p", 320, 180, "bt601"), ("nv12", 1280, 720, "bt709")):
        tile = VideoTile(renderer="gl")
        report["renderer"] = tile.renderer
        tile.resize(400, 300)  # letterboxed: picture 400x225 from y=37.5
        tile.set_camera_name(f"GL {fmt}")
        tile.set_recording(True)
        tile.set_boxes([OverlayBox(0.25, 0.5, 0.75, 0.9, "car", 0.8, 7)])
        tile.show()
        tile.set_frame(frame(w, h, fmt))
        app.processEvents()
        image = tile.view.grabFramebuffer()
        png = artifacts / f"gl_tile_{fmt}.png"
        image.save(str(png))
        m, off = yuv_matrix(standard)
        want = np.clip(m @ (np.array(yuv) / 255 - off), 0, 1) * 255
        box = label_color("car")
        report["cases"].append(
            {
                "format": fmt,
                "got": rgb(image, 200, 100),
                "want": want.round(1).tolist(),
                "edge": rgb(image, 100, round(37.5 + 0.7 * 225)),
                "box_color": [box.red(), box.green(), box.blue()],
                "letterbox": rgb(image, 200, 10),
                "png": str(png),
            }
        )
        tile.release()
        shiboken6.delete(tile)
    wall = VideoWall(renderer="gl", layout="2x2")
    wall.resize(800, 450)
    wall.show()
    for i in range(4):
        wall.assign(i, f"demo/cam{i}")
        wall.tile(i).set_frame(frame(640, 360, "nv12" if i % 2 else "yuv420p", seq=i + 1))
    wall.tile(0).set_boxes([OverlayBox(0.3, 0.3, 0.6, 0.8, "person", 0.91, 12)])
    app.processEvents()
    report["wall_png"] = str(artifacts / "gl_wall_2x2.png")
    # what the X server shows (QWidget.grab of GL children can miss their QPainter overlays)
    wall.screen().grabWindow(wall.winId()).save(report["wall_png"])
    timeline = TimelineWidget(
        model=ListTimelineModel(
            recorded=[(t0, t0 + 3_000 * 10**6), (t0 + 3_600 * 10**6, t0 + 7_200 * 10**6)],
            events=[TimelineEvent(t0 + 900 * 10**6, t0 + 1_000 * 10**6, "person")],
            live_edge_us=t0 + 7_200 * 10**6,
        ),
        now_us=lambda: t0 + 7_200 * 10**6,
    )
    timeline.resize(1000, 64)
    timeline.set_view(t0, 8_000 * 10**6)
    timeline.set_cursor(t0 + 1_200 * 10**6)
    timeline.show()
    app.processEvents()
    timeline.grab().save(str(artifacts / "timeline.png"))
    wall.clear()  # frees GL textures while their contexts can still be made current
    shiboken6.delete(wall)
    print(json.dumps(report))


if __name__ == "__main__":
    _child(Path(sys.argv[1]))
