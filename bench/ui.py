#!/usr/bin/env python3
"""Video wall painting cost under a real X server: what painting adds over decoding alone.

For N tiles (16 and 36 by default) a ``VideoWall`` of N ``VideoTile`` s shows N
``app.live.LiveTile`` s. One feeder thread hands every tile its next live message (320x180
H.264 sub-stream, 25 fps, a key frame a second, the recorder's live packet format) at the
camera's pace, through ``LiveTile.feed`` (the entry point the NATS callback uses; NATS is left
out: it is not what limits a wall). Two phases alternate, each the same length:

- **decode**: the tiles decode, the wall is hidden (the frame pump polls no hidden tile), the
  Qt event loop runs with the probe: the reference, decoding alone;
- **paint**: the same, with the wall shown: every new frame is painted.

Figures per phase (medians over the rounds): frames decoded and painted per second, CPU of
this process (all threads) and of the X server, in % of one core; and the UI thread's latency,
measured by a ``QTimer`` probe every 10 ms: "frame time" is the gap between two probe ticks
(p50, p99, max; the UI thread was blocked for at most ``max`` ms). Goals (issue 6): painting
adds <= 10 % CPU over decoding, the UI thread is never blocked more than 50 ms.

The renderer is what ``choose_renderer`` picks here (raster on a software GL such as Xvfb's
llvmpipe, where GL costs ten times the CPU), or ``--renderer gl|raster``.

    python bench/ui.py [--quick] [--tiles 16,36] [--seconds S] [--renderer auto|gl|raster]
                       [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/ui.py` from a checkout

FRAME_US = 40_000
PROBE_MS = 10


def start_xvfb() -> tuple[subprocess.Popen, str]:
    if shutil.which("Xvfb") is None:
        raise SystemExit("Xvfb is not installed (apt-get install xvfb)")
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1920x1080x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        number = pipe.readline().strip()
    if not number:
        raise SystemExit(f"Xvfb exited ({proc.poll()}) without announcing a display")
    return proc, f":{number}"


def cpu_s(pid: int | None = None) -> float:
    """CPU seconds (user + system) of this process, or of ``pid`` from /proc."""
    if pid is None:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return ru.ru_utime + ru.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    if not values:
        return 0.0
    k = min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))
    return values[k]


class Feeder:
    """Feeds every tile its next packet each frame interval, at the camera's pace."""

    def __init__(self, tiles, packets) -> None:
        from server.protocol.live import FLAG_KEY, LiveCodec, encode_live_packet

        self._encode, self._key, self._codec = encode_live_packet, FLAG_KEY, LiveCodec.H264
        self.tiles, self.packets = tiles, packets
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-feeder", daemon=True)
        self.late = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        i = 0
        next_t = time.monotonic()
        while not self._stop.is_set():
            data, key = self.packets[i % len(self.packets)]
            pts = time.time_ns() // 1000
            msg = self._encode(data, flags=self._key if key else 0, codec=self._codec, seq=i,
                               pts_us=pts, dts_us=pts, duration_us=FRAME_US)  # fmt: skip
            for tile in self.tiles:
                tile.feed(msg)
            i += 1
            next_t += FRAME_US / 1e6
            delay = next_t - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:
                self.late += 1


def run_phase(app, wall, tiles, views, show: bool, seconds: float, xvfb_pid: int) -> dict:
    from PySide6.QtCore import QEventLoop, Qt, QTimer

    if show:
        wall.show()
    else:
        wall.hide()
    # settle: tiles start (or stop) painting; frames of the previous phase are not counted
    loop = QEventLoop()
    QTimer.singleShot(500, loop.quit)
    loop.exec()
    gaps: list[float] = []
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        gaps.append((now - last[0]) * 1000)
        last[0] = now

    probe = QTimer()
    probe.setTimerType(Qt.TimerType.PreciseTimer)
    probe.setInterval(PROBE_MS)
    probe.timeout.connect(tick)
    decoded0 = sum(t.stats().frames_decoded for t in tiles)
    painted0 = sum(v.paints for v in views)
    cpu0, x0, t0 = cpu_s(), cpu_s(xvfb_pid), time.perf_counter()
    last[0] = t0
    probe.start()
    loop = QEventLoop()
    QTimer.singleShot(round(seconds * 1000), loop.quit)
    loop.exec()
    probe.stop()
    elapsed = time.perf_counter() - t0
    cpu, xcpu = cpu_s() - cpu0, cpu_s(xvfb_pid) - x0
    decoded = sum(t.stats().frames_decoded for t in tiles) - decoded0
    painted = sum(v.paints for v in views) - painted0
    return {
        "decoded_fps": decoded / elapsed,
        "painted_fps": painted / elapsed,
        "cpu_pct": 100 * cpu / elapsed,
        "x_cpu_pct": 100 * xcpu / elapsed,
        "frame_ms_p50": pct(gaps, 50),
        "frame_ms_p99": pct(gaps, 99),
        "frame_ms_max": max(gaps, default=0.0),
        "keyframes_only_tiles": sum(t.stats().keyframes_only for t in tiles),
    }


def run_count(app, n: int, packets, renderer: str, seconds: float, rounds: int, xvfb_pid: int):
    import shiboken6

    from app.live import LiveTile
    from ui.wall import VideoWall, WallLayout

    side = {16: 4, 36: 6, 64: 8}.get(n) or round(n**0.5)
    wall = VideoWall(renderer=renderer, layout=WallLayout.grid(side, (n + side - 1) // side))
    wall.resize(1920, 1080)
    tiles = [LiveTile(None, None, "bench", f"cam{i}", "sub", ["software"]) for i in range(n)]
    views = [wall.tile(i) for i in range(n)]
    for live, view in zip(tiles, views, strict=True):
        live.start()
        view.set_camera_name(live.camera_id)
        view.set_source(live.slot)
    feeder = Feeder(tiles, packets)
    feeder.start()
    runs: dict[str, list[dict]] = {"decode": [], "paint": []}
    try:
        for r in range(rounds):
            order = ("decode", "paint") if r % 2 == 0 else ("paint", "decode")
            for phase in order:
                runs[phase].append(
                    run_phase(app, wall, tiles, views, phase == "paint", seconds, xvfb_pid)
                )
    finally:
        feeder.stop()
        for live in tiles:
            live.stop()
        wall.clear()
        shiboken6.delete(wall)

    def med(phase: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[phase])

    decode_cpu, paint_cpu = med("decode", "cpu_pct"), med("paint", "cpu_pct")
    decode_x, paint_x = med("decode", "x_cpu_pct"), med("paint", "x_cpu_pct")
    return {
        "tiles": n,
        "renderer": views[0].renderer,
        "decoded_fps": med("paint", "decoded_fps"),
        "painted_fps": med("paint", "painted_fps"),
        "painted_over_decoded": med("paint", "painted_fps") / max(med("paint", "decoded_fps"), 1),
        "decode_only_fps": med("decode", "decoded_fps"),
        "cpu_decode_pct": decode_cpu,
        "cpu_paint_pct": paint_cpu,
        "paint_overhead_pct": 100 * (paint_cpu - decode_cpu) / max(decode_cpu, 1e-9),
        "x_cpu_decode_pct": decode_x,
        "x_cpu_paint_pct": paint_x,
        "paint_overhead_with_x_pct": 100
        * ((paint_cpu + paint_x) - (decode_cpu + decode_x))
        / max(decode_cpu + decode_x, 1e-9),
        "frame_ms_p50": med("paint", "frame_ms_p50"),
        "frame_ms_p99": med("paint", "frame_ms_p99"),
        "frame_ms_max": max(r["frame_ms_max"] for r in runs["paint"]),
        "decode_frame_ms_p99": med("decode", "frame_ms_p99"),
        "keyframes_only_tiles": max(r["keyframes_only_tiles"] for r in runs["paint"]),
        "feeder_late_ticks": feeder.late,
        "runs": runs,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="short phases, one round (~1 min)")
    ap.add_argument("--tiles", default="16,36", help="tile counts, comma separated")
    ap.add_argument("--seconds", type=float, default=None, help="length of each phase")
    ap.add_argument("--rounds", type=int, default=None, help="decode/paint rounds")
    ap.add_argument("--renderer", default="auto", choices=("auto", "gl", "raster"))
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = ap.parse_args()
    counts = [int(x) for x in args.tiles.split(",") if x]
    seconds = args.seconds or (6.0 if args.quick else 15.0)
    rounds = args.rounds or (1 if args.quick else 3)

    xvfb, display = start_xvfb()
    os.environ.update(DISPLAY=display, QT_QPA_PLATFORM="xcb")
    os.environ.pop("VIGIA_RENDERER", None)
    try:
        from client_wall import clip_packets  # bench/ is on sys.path when run as a script
        from PySide6.QtWidgets import QApplication

        from ui.theme import apply_theme
        from ui.videotile import gl_renderer_name

        app = QApplication([])
        apply_theme(app)
        with tempfile.TemporaryDirectory(prefix="vigia-ui-bench-") as tmp:
            packets = clip_packets(Path(tmp))
        gl = gl_renderer_name()
        print(f"Xvfb {display}, GL: {gl or 'none'}; {seconds:g} s phases, {rounds} round(s)")
        print(
            f"{'tiles':>5} {'render':>6} {'dec fps':>8} {'paint fps':>9} {'p/d':>5} "
            f"{'cpu dec%':>8} {'cpu +paint%':>11} {'overhead':>8} {'+X':>7} "
            f"{'p50 ms':>6} {'p99 ms':>6} {'max ms':>6}"
        )
        results = []
        for n in counts:
            row = run_count(app, n, packets, args.renderer, seconds, rounds, xvfb.pid)
            results.append(row)
            print(
                f"{n:>5} {row['renderer']:>6} {row['decoded_fps']:>8.0f} "
                f"{row['painted_fps']:>9.0f} {row['painted_over_decoded']:>5.2f} "
                f"{row['cpu_decode_pct']:>8.1f} {row['cpu_paint_pct']:>11.1f} "
                f"{row['paint_overhead_pct']:>7.1f}% {row['paint_overhead_with_x_pct']:>6.1f}% "
                f"{row['frame_ms_p50']:>6.1f} {row['frame_ms_p99']:>6.1f} "
                f"{row['frame_ms_max']:>6.1f}",
                flush=True,
            )
        print(
            "goals: overhead (painting CPU over decoding alone, this process) <= 10 %; "
            "max ms (longest UI-thread gap between 10 ms probe ticks) <= 50"
        )
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(
                json.dumps(
                    {
                        "benchmark": "ui",
                        "date": datetime.now().isoformat(timespec="seconds"),
                        "gl": gl,
                        "seconds": seconds,
                        "rounds": rounds,
                        "cpus": os.cpu_count(),
                        "results": results,
                    },
                    indent=2,
                )
            )
    finally:
        xvfb.terminate()
        xvfb.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
